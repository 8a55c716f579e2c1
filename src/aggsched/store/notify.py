"""Change notifications: wake schedulers and workers when schedules or batches change.

A writer calls ``notify(session, channel)`` inside its transaction. On PostgreSQL that is
``pg_notify``, which the server delivers to every listening node only when the
transaction commits (so a woken scheduler sees the change). In the same process a commit
hook on the store's engine delivers it too, which is all SQLite has (one node per file).
``ChangeFeed`` is the receiving side: one per process and store, with subscribers per
channel. Notifications are hints that something changed, never the data itself: a
missed one only delays the receiver until its next safety poll.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import psycopg
from sqlalchemy import Engine, event, text
from sqlalchemy.orm import Session

from aggsched.store.db import Store

SCHEDULES_CHANNEL = "aggsched_schedules"
BATCHES_CHANNEL = "aggsched_batches"
CHANNELS = (SCHEDULES_CHANNEL, BATCHES_CHANNEL)
_PENDING_KEY = "aggsched_notify_pending"
RECONNECT_SECONDS = 1.0

log = logging.getLogger(__name__)

Callback = Callable[[], None]


def notify(session: Session, channel: str) -> None:
    """Announce, at commit of ``session``'s transaction, that ``channel``'s data changed."""
    if channel not in CHANNELS:
        raise ValueError(f"unknown notification channel {channel!r}; known: {CHANNELS}")
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": channel})
    connection.info.setdefault(_PENDING_KEY, set()).add(channel)


def notify_schedules_changed(session: Session) -> None:
    """Call after creating, deleting, pausing or resuming a schedule (same transaction)."""
    notify(session, SCHEDULES_CHANNEL)


def notify_batches_queued(session: Session) -> None:
    """Call after queueing a batch, so idle workers look at once instead of at next poll."""
    notify(session, BATCHES_CHANNEL)


class ChangeFeed:
    """Delivers notifications of one store to in-process subscribers.

    Same-process commits arrive through an engine commit hook; on PostgreSQL a thread
    also LISTENs on a connection of its own, so commits on other nodes arrive too.
    """

    def __init__(self, store: Store) -> None:
        self._engine: Engine = store.engine
        self._subscribers: dict[str, list[Callback]] = {c: [] for c in CHANNELS}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = False

    def subscribe(self, channel: str, callback: Callback) -> None:
        if channel not in self._subscribers:
            raise ValueError(f"unknown notification channel {channel!r}; known: {CHANNELS}")
        with self._lock:
            self._subscribers[channel].append(callback)

    def start(self) -> None:
        """Install the commit hook and, on PostgreSQL, start listening."""
        if self._started:
            return
        self._started = True
        self._stop.clear()
        event.listen(self._engine, "begin", _forget_pending)
        event.listen(self._engine, "commit", self._on_commit)
        if self._engine.dialect.name == "postgresql":
            self._thread = threading.Thread(target=self._listen, name="change-feed", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        self._stop.set()
        event.remove(self._engine, "begin", _forget_pending)
        event.remove(self._engine, "commit", self._on_commit)
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def deliver(self, channel: str) -> None:
        with self._lock:
            callbacks = list(self._subscribers.get(channel, ()))
        for callback in callbacks:
            callback()

    def _on_commit(self, connection: Any) -> None:
        for channel in connection.info.pop(_PENDING_KEY, set()):
            self.deliver(channel)

    def _dsn(self) -> str:
        url = self._engine.url.set(drivername="postgresql")
        return url.render_as_string(hide_password=False)

    def _listen(self) -> None:
        """LISTEN until stopped, reconnecting after a lost connection."""
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._dsn(), autocommit=True, connect_timeout=5) as conn:
                    for channel in CHANNELS:
                        conn.execute(f"LISTEN {channel}")
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=0.5):
                            self.deliver(note.channel)
            except psycopg.Error as exc:
                log.warning("change feed: lost the LISTEN connection (%s); reconnecting", exc)
                self._stop.wait(RECONNECT_SECONDS)


def _forget_pending(connection: Any) -> None:
    """A new transaction starts with nothing to announce (a rolled-back one announced none)."""
    connection.info.pop(_PENDING_KEY, None)
