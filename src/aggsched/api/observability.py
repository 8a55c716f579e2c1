"""Per-request telemetry: a request id and the organization on every log line of the
request (uvicorn's access line included), and HTTP metrics by route template.

A pure ASGI middleware, so it sees every response, including the 413s and 500s other
layers produce. The route template (``/org/{orgId}/...``) is what FastAPI matched, never
the raw path, so the metric's label set stays small; unmatched paths share one label.
"""

from __future__ import annotations

import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aggsched import telemetry

REQUEST_ID_HEADER = b"x-request-id"
_GOOD_ID = re.compile(rb"[A-Za-z0-9._:-]{1,64}")
_ORG_PATH = re.compile(r"^/(?:org/([^/]+)(?:/|$)|aggregates/orgId/([^/]+)(?:/|$)|([^/]+)/auth$)")
UNMATCHED = "<unmatched>"


def org_of(path: str) -> str | None:
    """The organization a path addresses (``/org/{orgId}/...``, ``/aggregates/orgId/
    {orgId}...``, ``/{orgId}/auth``), or None."""
    found = _ORG_PATH.match(path)
    return next((g for g in found.groups() if g), None) if found else None


class RequestTelemetry:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(REQUEST_ID_HEADER, b"")
        request_id = given.decode() if _GOOD_ID.fullmatch(given) else uuid.uuid4().hex
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER, request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        started = time.perf_counter()
        with telemetry.log_context(request_id=request_id, org_id=org_of(scope["path"])):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                route = getattr(scope.get("route"), "path", None) or UNMATCHED
                elapsed = time.perf_counter() - started
                telemetry.http_request(scope["method"], route, status, elapsed)
