"""Deep pages of the build history without walking every newer row.

``builds/history`` pages with ``offset`` (AtScale's API); ``OFFSET 500000`` makes the
database step over half a million index entries on every request. Instead, a background
thread records, now and then, where every ``every``-th row of a listing lies (its
``(create_date, id)``); a deep page then seeks to the nearest bookmark (a keyset) and
walks fewer than ``every`` rows.

Exactness. Bookmarks only describe the *settled* history: rows created more than
``settle`` before the bookmarks were taken. The rows of a listing above that line are
counted on each request (the recent head, a short index range), so positions are exact
as long as the settled history does not change. It does not: batches are never deleted,
and a batch's ``create_date`` is stamped in the transaction that creates it, which
commits well within ``settle`` (10 minutes, more than any transaction here and any sane
clock skew between nodes). Only listings over columns a batch never changes (the
organization, project and cube) use bookmarks; a ``status`` or ``batchType`` filter
pages the plain way, because rows move in and out of those.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select
from sqlalchemy.orm import Session

from aggsched.store import Store, api_views, utcnow
from aggsched.store.models import BuildBatch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Marks:
    settled_before: datetime
    keys: list[api_views.HistoryKey]
    taken: float  # time.monotonic()


class HistoryBookmarks:
    """Per-app bookmarks of large history listings, taken by one background thread."""

    def __init__(
        self,
        store: Store,
        *,
        every: int = 1_000,
        from_offset: int = 10_000,
        settle: timedelta = timedelta(minutes=10),
        max_age: float = 60.0,
    ) -> None:
        self.store = store
        self.every = every
        self.from_offset = from_offset  # shallower pages are cheap as they are
        self.settle = settle
        self.max_age = max_age
        self._marks: dict[Hashable, _Marks] = {}
        self._taking: set[Hashable] = set()
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aggsched-marks")

    def page(
        self,
        session: Session,
        key: Hashable,
        stmt: Select[tuple[BuildBatch]],
        limit: int,
        offset: int,
    ) -> list[BuildBatch]:
        """Rows ``offset .. offset + limit`` of ``stmt`` newest first, exactly as
        ``OFFSET`` would give them (``key`` names the listing; see the module)."""
        if offset < self.from_offset:
            return api_views.batch_history_page(session, stmt, limit, offset)
        with self._lock:
            marks = self._marks.get(key)
        if marks is None or time.monotonic() - marks.taken > self.max_age:
            self._take_later(key, stmt)
        if marks is None:
            return api_views.batch_history_page(session, stmt, limit, offset)
        settled_offset = offset - api_views.count_since(session, stmt, marks.settled_before)
        if settled_offset < 0 or not marks.keys:
            return api_views.batch_history_page(session, stmt, limit, offset)
        index = min(settled_offset // self.every, len(marks.keys) - 1)
        return api_views.batch_history_page(session, stmt, limit,
                                            settled_offset - index * self.every,
                                            start=marks.keys[index])  # fmt: skip

    def _take_later(self, key: Hashable, stmt: Select[Any]) -> None:
        with self._lock:
            if key in self._taking:
                return
            self._taking.add(key)
        self._executor.submit(self._take, key, stmt)

    def _take(self, key: Hashable, stmt: Select[Any]) -> None:
        try:
            before = utcnow() - self.settle
            with self.store.session() as session:
                keys = api_views.history_bookmarks(session, stmt, before, self.every)
            with self._lock:
                self._marks[key] = _Marks(before, keys, time.monotonic())
        except Exception:  # a failed refresh keeps the old bookmarks (still exact)
            log.exception("history bookmarks for %r could not be taken", key)
        finally:
            with self._lock:
                self._taking.discard(key)

    def wait_idle(self, timeout: float = 30.0) -> None:
        """Block until no bookmarks are being taken (tests)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if not self._taking:
                    return
            time.sleep(0.01)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
