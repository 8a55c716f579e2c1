"""Store reads for what the REST API has no endpoint for (``store.console_views``), run
off the event loop. Callers have already been checked by the API (``visitor``), and
every read is scoped to the visitor's organization."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from aggsched.web.context import console

T = TypeVar("T")


async def in_store(request: Request, read: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``read(session, *args, **kwargs)`` in one store transaction, in a worker thread."""
    store = console(request).store

    def work() -> T:
        session: Session
        with store.session() as session:
            return read(session, *args, **kwargs)

    return await run_in_threadpool(work)
