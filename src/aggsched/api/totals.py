"""``total`` of big lists without counting a million rows on every request.

A count is exact when it is small (counting stops at ``exact_up_to + 1`` rows, which
the history indexes answer in about a millisecond). Above that, the last exact count of
the same query is served and refreshed in the background once it is older than
``max_age`` seconds, so a page of a huge history costs what a page of a small one does;
``total`` then lags behind new batches by at most ``max_age`` plus one count.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import Select
from sqlalchemy.orm import Session

from aggsched.store import Store, api_views


class TotalCounter:
    """Per-app cache of large counts, refreshed by one background thread."""

    def __init__(self, store: Store, *, exact_up_to: int = 1_000, max_age: float = 10.0):
        self.store = store
        self.exact_up_to = exact_up_to
        self.max_age = max_age
        self._cache: dict[Hashable, tuple[int, float]] = {}
        self._refreshing: set[Hashable] = set()
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aggsched-totals")

    def total(self, session: Session, key: Hashable, stmt: Select[Any]) -> int:
        small = api_views.count_rows(session, stmt, cap=self.exact_up_to)
        if small <= self.exact_up_to:
            return small
        with self._lock:
            cached = self._cache.get(key)
        if cached is None:
            return self._count(key, stmt, session)
        value, at = cached
        if time.monotonic() - at > self.max_age:
            self._refresh_later(key, stmt)
        return value

    def _count(self, key: Hashable, stmt: Select[Any], session: Session) -> int:
        value = api_views.count_rows(session, stmt)
        with self._lock:
            self._cache[key] = (value, time.monotonic())
        return value

    def _refresh_later(self, key: Hashable, stmt: Select[Any]) -> None:
        with self._lock:
            if key in self._refreshing:
                return
            self._refreshing.add(key)
        self._executor.submit(self._refresh, key, stmt)

    def _refresh(self, key: Hashable, stmt: Select[Any]) -> None:
        try:
            with self.store.session() as session:
                self._count(key, stmt, session)
        finally:
            with self._lock:
                self._refreshing.discard(key)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
