"""Every failure becomes the AtScale error envelope with the right status code.

Handlers cover our own ``ApiError``, the store's errors, FastAPI validation errors (400,
not FastAPI's 422, because AtScale clients expect 400 for bad input), Starlette's 404/405
for unknown routes and methods, and any unexpected exception (500, logged, no trace in
the body).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from aggsched.api.envelope import FieldProblem
from aggsched.store.errors import ConflictError, InvalidValueError, NotFoundError

log = logging.getLogger("aggsched.api")

_I18N = {
    400: "response.error.bad_request",
    401: "response.error.unauthorized",
    403: "response.error.forbidden",
    404: "response.error.not_found",
    405: "response.error.method_not_allowed",
    409: "response.error.conflict",
    413: "response.error.payload_too_large",
    500: "response.error.internal",
    502: "response.error.bad_gateway",
    504: "response.error.gateway_timeout",
}


class ApiError(Exception):
    """An error answer: HTTP status, message, optional field problems and headers."""

    def __init__(
        self,
        status_code: int,
        message: str,
        *,
        errors: Sequence[FieldProblem] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.errors = list(errors)
        self.headers = dict(headers or {})


def bad_request(field: str, problem: str) -> ApiError:
    """A 400 naming one bad field."""
    return ApiError(400, f"{field}: {problem}", errors=[FieldProblem(field=field, problem=problem)])


class BodyTooLargeError(Exception):
    """The request body is larger than the endpoint accepts (raised while reading it)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"request body larger than {limit} bytes")
        self.limit = limit


def encodable(text: str) -> str:
    """``text`` with anything UTF-8 cannot encode (a lone surrogate echoed from the input)
    written as a ``\\udXXX`` escape: an error message must never fail to render."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def error_response(
    status_code: int,
    message: str,
    errors: Sequence[FieldProblem] = (),
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """The error envelope as a response (always encodable, whatever the input was)."""
    body = {
        "response": None,
        "status": {
            "i18n_message": _I18N.get(status_code, "response.error"),
            "message": encodable(message),
        },
        "errors": [{"field": encodable(e.field), "problem": encodable(e.problem)} for e in errors],
    }
    return JSONResponse(body, status_code=status_code, headers=dict(headers or {}))


def _location(loc: Sequence[Any]) -> str:
    """``("query", "limit")`` -> ``limit``; body paths keep their dots (``body.path``)."""
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("query", "path", "header", "cookie"):
        parts = parts[1:]
    return ".".join(parts) or "request"


def _validation_problems(exc: RequestValidationError) -> list[FieldProblem]:
    problems = []
    for error in exc.errors():
        message = str(error.get("msg", "invalid value"))
        if error.get("type") == "uuid_parsing":
            message = f"not a UUID: {error.get('input')!r}"
        elif error.get("type") == "value_error" and "error" in error.get("ctx", {}):
            message = str(error["ctx"]["error"])  # our validators' words, no "Value error, "
        problems.append(FieldProblem(field=_location(error.get("loc", ())), problem=message))
    return problems


async def _api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status_code, exc.message, exc.errors, exc.headers)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = _validation_problems(exc)
    message = "; ".join(f"{p.field}: {p.problem}" for p in problems) or "invalid request"
    return error_response(400, message, problems)


_METHODS = ("DELETE", "GET", "HEAD", "PATCH", "POST", "PUT")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves on this path. Starlette's 405 names only those of
    the first route that matched the path (GET but not POST of ``.../scheduler``), so each
    method is tried against the routes (their public ``matches``: FastAPI nests included
    routers, so the routes cannot simply be listed)."""
    routes = request.app.router.routes
    allowed = []
    for method in _METHODS:
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] == Match.FULL for route in routes):
            allowed.append(method)
    return allowed


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    message = exc.detail if isinstance(exc.detail, str) else "error"
    headers = dict(exc.headers or {})
    if exc.status_code == 404 and message == "Not Found":
        message = "no such endpoint"
    if exc.status_code == 405:
        allowed = allowed_methods(request)
        headers["Allow"] = ", ".join(allowed)
        message = f"method {request.method} not allowed here; allowed: {', '.join(allowed)}"
    return error_response(exc.status_code, message, headers=headers)


async def _not_found(_request: Request, exc: Exception) -> JSONResponse:
    return error_response(404, str(exc))


async def _invalid(_request: Request, exc: Exception) -> JSONResponse:
    return error_response(400, str(exc), [FieldProblem(field="request", problem=str(exc))])


async def _conflict(_request: Request, exc: Exception) -> JSONResponse:
    return error_response(409, str(exc))


async def _too_large(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, BodyTooLargeError)
    return error_response(413, str(exc), [FieldProblem(field="body", problem=str(exc))])


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal server error; see the server log")


def install(app: FastAPI) -> None:
    """Register every handler on ``app``."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(NotFoundError, _not_found)
    app.add_exception_handler(InvalidValueError, _invalid)
    app.add_exception_handler(ConflictError, _conflict)
    app.add_exception_handler(BodyTooLargeError, _too_large)
    app.add_exception_handler(Exception, _unexpected)
