"""The FastAPI application: ``create_app(settings, store)``; no global state.

Everything a request needs (store, settings, authenticator) hangs off ``app.state``, so
tests and embedded servers can run several apps side by side.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from aggsched.api import errors
from aggsched.api.auth import Authenticator
from aggsched.api.bookmarks import HistoryBookmarks
from aggsched.api.envelope import ErrorEnvelope
from aggsched.api.guard import RequestGuard
from aggsched.api.observability import RequestTelemetry
from aggsched.api.routers import (
    advisor,
    aggregates,
    builds,
    catalog,
    maintenance,
    metrics,
    queries,
    schedules,
    system,
    tokens,
)
from aggsched.api.totals import TotalCounter
from aggsched.config import Settings
from aggsched.engine.node import freeze_startup_heap
from aggsched.engine.queries import QueryService
from aggsched.store import Store
from aggsched.store import catalog as store_catalog
from aggsched.store.models import DEFAULT_ORG_ID

_UPLOAD_PATH = re.compile(r"^/org/[^/]+/projects$")  # after the guard strips a final "/"

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorEnvelope, "description": what}
    for code, what in (
        (400, "bad input"), (401, "not authenticated"), (403, "role lacks the right"),
        (404, "unknown or not yours"), (413, "body too large"), (500, "server error"),
    )
}  # fmt: skip


def _bootstrap(store: Store) -> None:
    """The ``default`` organization exists from the start (idempotent)."""
    with store.session() as session:
        store_catalog.ensure_org(session, DEFAULT_ORG_ID)


def create_app(settings: Settings, store: Store | None = None) -> FastAPI:
    """The REST API on ``store`` (opened from ``settings`` when not given)."""
    store = store or Store.from_settings(settings)
    _bootstrap(store)
    query_service = QueryService(store)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        freeze_startup_heap()  # full collections would walk the whole app mid-request
        yield
        query_service.close()

    app = FastAPI(
        title="aggsched",
        summary="AtScale-compatible Aggregate Creation Schedule API",
        version="0.1.0",
        responses=ERROR_RESPONSES,
        lifespan=lifespan,
    )
    app.state.queries = query_service
    app.state.settings = settings
    app.state.store = store
    app.state.authenticator = Authenticator.from_settings(settings, store)
    app.state.totals = TotalCounter(store)
    app.state.gauges = metrics.store_registry(store)
    app.router.redirect_slashes = False  # the guard answers "/x/" as "/x" (no 307)
    app.state.bookmarks = HistoryBookmarks(store)
    errors.install(app)
    for module in (
        system,
        metrics,
        builds,
        schedules,
        aggregates,
        catalog,
        maintenance,
        queries,
        advisor,
        tokens,
    ):
        app.include_router(module.router)

    def is_upload(path: str) -> bool:
        return _UPLOAD_PATH.match(path) is not None

    def limit_for(path: str) -> int:
        return settings.max_upload_bytes if is_upload(path) else settings.max_json_bytes

    app.add_middleware(RequestGuard, limit_for=limit_for, streamed=is_upload)
    app.add_middleware(RequestTelemetry)  # outermost: sees every response, 413s included
    return app
