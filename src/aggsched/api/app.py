"""The FastAPI application: ``create_app(settings, store)``; no global state.

Everything a request needs (store, settings, authenticator) hangs off ``app.state``, so
tests and embedded servers can run several apps side by side.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aggsched.api import errors
from aggsched.api.auth import Authenticator
from aggsched.api.bookmarks import HistoryBookmarks
from aggsched.api.envelope import ErrorEnvelope
from aggsched.api.routers import aggregates, builds, catalog, schedules, system
from aggsched.api.totals import TotalCounter
from aggsched.config import Settings
from aggsched.store import Store
from aggsched.store import catalog as store_catalog
from aggsched.store.models import DEFAULT_ORG_ID

_UPLOAD_PATH = re.compile(r"^/org/[^/]+/projects/?$")

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorEnvelope, "description": what}
    for code, what in (
        (400, "bad input"), (401, "not authenticated"), (403, "role lacks the right"),
        (404, "unknown or not yours"), (413, "body too large"), (500, "server error"),
    )
}  # fmt: skip


class BodyLimitMiddleware:
    """413 for bodies above the limit: at once from ``Content-Length``, else while the
    body streams in (so nothing is parsed, stored or changed)."""

    def __init__(self, app: ASGIApp, limit_for: Callable[[str], int]) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            response = errors.error_response(413, f"request body larger than {limit} bytes")
            await response(scope, receive, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise StarletteHTTPException(413, f"request body larger than {limit} bytes")
            return message

        await self.app(scope, limited, send)


def _bootstrap(store: Store) -> None:
    """The ``default`` organization exists from the start (idempotent)."""
    with store.session() as session:
        store_catalog.ensure_org(session, DEFAULT_ORG_ID)


def create_app(settings: Settings, store: Store | None = None) -> FastAPI:
    """The REST API on ``store`` (opened from ``settings`` when not given)."""
    store = store or Store.from_settings(settings)
    _bootstrap(store)
    app = FastAPI(
        title="aggsched",
        summary="AtScale-compatible Aggregate Creation Schedule API",
        version="0.1.0",
        responses=ERROR_RESPONSES,
    )
    app.state.settings = settings
    app.state.store = store
    app.state.authenticator = Authenticator.from_settings(settings)
    app.state.totals = TotalCounter(store)
    app.state.bookmarks = HistoryBookmarks(store)
    errors.install(app)
    for module in (system, builds, schedules, aggregates, catalog):
        app.include_router(module.router)

    def limit_for(path: str) -> int:
        return settings.max_upload_bytes if _UPLOAD_PATH.match(path) else settings.max_json_bytes

    app.add_middleware(BodyLimitMiddleware, limit_for=limit_for)
    return app
