"""What happens to every request before routing: the checks no single route should have
to remember, and the leniencies AtScale's clients rely on.

- Control characters (NUL...) and lone surrogates in the path or in a query parameter:
  400 naming the segment or parameter. PostgreSQL refuses NUL in text (a 500 when it got
  that far); SQLite would store it.
- A trailing slash is answered by the route without it (no 307 redirect, whose empty body
  scripts choke on).
- A body larger than the endpoint's limit: 413, at once from ``Content-Length`` or while it
  streams in (nothing is parsed, stored or changed).
- A JSON body is read as JSON whatever the ``Content-Type`` says: ``curl -d '{...}'``
  sends ``application/x-www-form-urlencoded``, and AtScale's own scripts do exactly that.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from urllib.parse import parse_qsl

from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aggsched.api import errors
from aggsched.api.envelope import FieldProblem
from aggsched.api.validation import unsafe_character

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _strip_trailing_slash(scope: Scope) -> Scope:
    path: str = scope["path"]
    if len(path) <= 1 or not path.endswith("/"):
        return scope
    changed = dict(scope)
    changed["path"] = path.rstrip("/") or "/"
    raw = scope.get("raw_path")
    if isinstance(raw, bytes):
        changed["raw_path"] = raw.rstrip(b"/") or b"/"
    return changed


def location_problem(scope: Scope) -> FieldProblem | None:
    """The first path segment or query parameter holding a refused character."""
    for index, segment in enumerate(scope["path"].split("/")):
        problem = unsafe_character(segment)
        if problem:
            return FieldProblem(field=f"path segment {index}", problem=problem)
    query = scope.get("query_string", b"").decode("latin-1")
    for name, value in parse_qsl(query, keep_blank_values=True):
        problem = unsafe_character(name)
        if problem:
            return FieldProblem(field="query parameter name", problem=problem)
        problem = unsafe_character(value)
        if problem:
            return FieldProblem(field=name, problem=problem)
    return None


def _content_type(scope: Scope) -> str:
    for key, value in scope["headers"]:
        if key == b"content-type":
            return str(value.decode("latin-1").split(";", 1)[0].strip().lower())
    return ""


def _is_json_type(content_type: str) -> bool:
    return content_type == "application/json" or (
        content_type.startswith("application/") and content_type.endswith("+json")
    )


def _parses_as_json(body: bytes) -> bool:
    """Whether ``body`` is JSON (too deep to parse still counts: FastAPI then answers 400)."""
    try:
        json.loads(body)
    except RecursionError:
        return True
    except ValueError:
        return False
    return True


def _with_json_type(scope: Scope) -> Scope:
    changed = dict(scope)
    headers = [(k, v) for k, v in scope["headers"] if k != b"content-type"]
    changed["headers"] = [*headers, (b"content-type", b"application/json")]
    return changed


class RequestGuard:
    """ASGI middleware applying the rules of the module docstring. ``limit_for(path)``
    gives the body limit; ``streamed(path)`` says whether the body is an upload that must
    stream (never buffered, never reinterpreted as JSON)."""

    def __init__(
        self, app: ASGIApp, limit_for: Callable[[str], int], streamed: Callable[[str], bool]
    ) -> None:
        self.app = app
        self.limit_for = limit_for
        self.streamed = streamed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope = _strip_trailing_slash(scope)
        bad = location_problem(scope)
        if bad is not None:
            message = f"{bad.field}: {bad.problem}"
            await errors.error_response(400, message, [bad])(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._too_large(limit, scope, receive, send)
            return
        content_type = _content_type(scope)
        if (
            self.streamed(scope["path"])
            or scope["method"] not in _BODY_METHODS
            or _is_json_type(content_type)
        ):
            await self.app(scope, _counting(receive, limit), send)
            return
        body = await _read_body(receive, limit)
        if body is None:
            await self._too_large(limit, scope, receive, send)
            return
        if body and _parses_as_json(body):
            scope = _with_json_type(scope)
        await self.app(scope, _replay(body, receive), send)

    @staticmethod
    async def _too_large(limit: int, scope: Scope, receive: Receive, send: Send) -> None:
        message = f"request body larger than {limit} bytes"
        problem = FieldProblem(field="body", problem=message)
        await errors.error_response(413, message, [problem])(scope, receive, send)


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole body, or None as soon as it passes ``limit`` bytes."""
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        parts.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(parts)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the buffered body over once, then waits as the original."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _counting(receive: Receive, limit: int) -> Receive:
    """A ``receive`` that stops a streamed body (an upload) once it passes ``limit``."""
    seen = 0

    async def limited() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise StarletteHTTPException(413, f"request body larger than {limit} bytes")
        return message

    return limited
