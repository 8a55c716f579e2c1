"""Change notifications are delivered after the database commit (issue 12, item 1)."""

from __future__ import annotations

import threading

from sqlalchemy import select

from aggsched.store import Store
from aggsched.store.models import Organization
from aggsched.store.notify import SCHEDULES_CHANNEL, ChangeFeed, notify_schedules_changed


def test_item01_change_feed_delivers_after_the_commit(store: Store) -> None:
    """A woken scheduler re-reads at once: what it reads must include the change. The
    callback looks with a connection of its own, as the scheduler does."""
    other = Store(store.engine)
    seen: list[bool] = []
    delivered = threading.Event()

    def look() -> None:
        with other.session() as s:
            seen.append(s.scalar(select(Organization).where(Organization.id == "late")) is not None)
        delivered.set()

    feed = ChangeFeed(store)
    feed.subscribe(SCHEDULES_CHANNEL, look)
    feed.start()
    try:
        with store.session() as s:
            s.add(Organization(id="late", name="late"))
            notify_schedules_changed(s)
        assert delivered.wait(2)
        assert seen[0] is True, "woken before the commit: the change was not visible yet"
    finally:
        feed.stop()
