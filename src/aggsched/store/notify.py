"""Change notifications: wake schedulers and workers when schedules or batches change.

A writer calls ``notify(session, channel)`` inside its transaction. On PostgreSQL that is
``pg_notify``, which the server delivers to every listening node only when the
transaction commits (so a woken scheduler sees the change). In the same process the
session's ``after_commit`` event delivers it too, which is all SQLite has (one node per
file). It must be *after* the commit: the engine's ``commit`` event runs before the
database commits, and a scheduler woken then re-reads too early, misses the new row and
sleeps its whole idle period (issue 12, item 1).
``ChangeFeed`` is the receiving side: one per process and store, with subscribers per
channel. Notifications are hints that something changed, never the data itself: a
missed one only delays the receiver until its next safety poll.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import psycopg
from sqlalchemy import Engine, event, text
from sqlalchemy.orm import Session, SessionTransaction

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
    session.info.setdefault(_PENDING_KEY, set()).add(channel)


def notify_schedules_changed(session: Session) -> None:
    """Call after creating, deleting, pausing or resuming a schedule (same transaction)."""
    notify(session, SCHEDULES_CHANNEL)


def notify_batches_queued(session: Session) -> None:
    """Call after queueing a batch, so idle workers look at once instead of at next poll."""
    notify(session, BATCHES_CHANNEL)


class ChangeFeed:
    """Delivers notifications of one store to in-process subscribers.

    Same-process commits arrive through the sessions' ``after_commit`` event (sessions
    of any ``Store`` on this feed's engine); on PostgreSQL a thread also LISTENs on a
    connection of its own, so commits on other nodes arrive too.
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
        event.listen(Session, "after_transaction_create", self._forget_pending)
        event.listen(Session, "after_commit", self._on_commit)
        if self._engine.dialect.name == "postgresql":
            self._thread = threading.Thread(target=self._listen, name="change-feed", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        self._stop.set()
        event.remove(Session, "after_transaction_create", self._forget_pending)
        event.remove(Session, "after_commit", self._on_commit)
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def deliver(self, channel: str) -> None:
        with self._lock:
            callbacks = list(self._subscribers.get(channel, ()))
        for callback in callbacks:
            callback()

    def _on_commit(self, session: Session) -> None:
        """After the database committed: what this transaction announced is visible now.
        Several feeds may watch one engine, so the pending set is read, not consumed; the
        next transaction of the session starts it afresh (``_forget_pending``)."""
        if session.bind is not self._engine:
            return
        for channel in sorted(session.info.get(_PENDING_KEY, ())):
            self.deliver(channel)

    def _forget_pending(self, session: Session, transaction: SessionTransaction) -> None:
        """A new outermost transaction starts with nothing to announce (a rolled-back one
        announced none; a committed one was delivered at its commit). A method, not a
        function, so each feed's listener is its own and ``stop`` removes only that one."""
        if transaction.parent is None and session.bind is self._engine:
            session.info.pop(_PENDING_KEY, None)

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
