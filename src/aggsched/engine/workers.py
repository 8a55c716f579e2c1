"""Build workers: claim pending batches, run them, and recover batches of lost workers.

A node runs a small pool of worker threads (``max_concurrent``). Each claims the oldest
claimable batch (``SKIP LOCKED``; never a cube that already has a batch in progress),
skipping cubes whose SML connections already run ``max_per_connection`` builds on this
node, and runs it through ``BatchRunner``, which heartbeats while it runs.

Any live node also recovers batches whose worker stopped heartbeating (its process was
killed): the instances it left ``inprogress`` become ``failed`` ("worker lost") with their
tables due for dropping now, and the batch is re-queued, until it has been claimed
``aggregates.batch.maxAttempts`` times; then it is failed ("worker lost"). So nothing
stays ``inprogress`` forever and no partial table survives.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from aggsched.engine.builds import BatchRunner, CancelToken, WarehouseOpener, drop_expired_tables
from aggsched.engine.queueing import queue_batch
from aggsched.engine.recovery import WORKER_LOST, Recovered, recover
from aggsched.store import Store, aggregates, batches, catalog, queue, utcnow
from aggsched.store.errors import ConflictError, StoreError
from aggsched.store.models import BatchStatus
from aggsched.store.notify import BATCHES_CHANNEL, ChangeFeed, notify_batches_queued

__all__ = [
    "SHUTDOWN_REASON",
    "WORKER_LOST",
    "Housekeeper",
    "Recovered",
    "WorkerOptions",
    "WorkerPool",
    "recover_lost_batches",
]

SHUTDOWN_REASON = "cancelled: the node shut down before the build finished"
log = logging.getLogger(__name__)
ConnectionKey = tuple[str, str]  # (org id, SML connection name)


@dataclass(frozen=True)
class WorkerOptions:
    """How one node's workers behave (see ``Settings`` for the meaning of each)."""

    max_concurrent: int = 2
    max_per_connection: int = 1
    heartbeat_seconds: float = 2.0
    stale_after: timedelta = timedelta(seconds=15)
    poll_seconds: float = 1.0


def recover_lost_batches(
    store: Store,
    *,
    stale_after: timedelta,
    now: datetime | None = None,
    opener: WarehouseOpener | None = None,
) -> list[Recovered]:
    """Recover every batch without a heartbeat for ``stale_after``; drop its partial tables
    when ``opener`` can reach the warehouse (otherwise the next batch run drops them)."""
    when = now or utcnow()
    recovered: list[Recovered] = []
    with store.session() as s:
        for org in catalog.list_orgs(s):
            recovered += recover(s, org.id, stale_before=when - stale_after, now=when)
    for item in recovered:
        log.warning("recovered batch %s from a lost worker: now %s", item.batch_id, item.status)
    if recovered and opener is not None:
        drop_expired_tables(store, opener)
    return recovered


@dataclass(frozen=True)
class _Claimed:
    batch_id: uuid.UUID
    org_id: str
    cube_id: uuid.UUID
    batch_type: str
    connections: frozenset[ConnectionKey]


class WorkerPool:
    """``max_concurrent`` threads claiming and running batches until stopped."""

    def __init__(
        self,
        store: Store,
        *,
        node_id: str,
        options: WorkerOptions | None = None,
        env: Mapping[str, str] | None = None,
        opener: WarehouseOpener | None = None,
        feed: ChangeFeed | None = None,
    ) -> None:
        self.store = store
        self.node_id = node_id
        self.options = options or WorkerOptions()
        self.env = env
        self.opener = opener
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._per_connection: Counter[ConnectionKey] = Counter()
        self._running: dict[uuid.UUID, CancelToken] = {}
        self._threads: list[threading.Thread] = []
        if feed is not None:
            feed.subscribe(BATCHES_CHANNEL, self.wake)

    def wake(self) -> None:
        """Look for batches now (one was queued)."""
        self._wake.set()

    def running(self) -> list[uuid.UUID]:
        with self._lock:
            return list(self._running)

    def start(self) -> None:
        self._stopping.clear()
        for index in range(self.options.max_concurrent):
            worker_id = f"{self.node_id}/w{index}"
            thread = threading.Thread(target=self._work, args=(worker_id,), name=worker_id)
            thread.start()
            self._threads.append(thread)

    def stop(self, grace: float = 30.0) -> list[uuid.UUID]:
        """Stop claiming; let running builds finish for ``grace`` seconds, then cancel them
        (their tables are dropped, the batch is re-queued). Returns the cancelled batches."""
        self._stopping.set()
        self._wake.set()
        deadline = time.monotonic() + grace
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            cancelled = list(self._running.items())
        for _, token in cancelled:
            token.cancel(SHUTDOWN_REASON)
        for thread in self._threads:
            thread.join()
        self._threads.clear()
        return [batch_id for batch_id, _ in cancelled]

    # ------------------------------------------------------------------ one worker
    def _work(self, worker_id: str) -> None:
        # one runner per worker thread, keeping its warehouse connections between batches
        with BatchRunner(self.store, env=self.env, worker_id=worker_id,
                         heartbeat_seconds=self.options.heartbeat_seconds,
                         opener=self.opener, keep_connections=True) as runner:  # fmt: skip
            while not self._stopping.is_set():
                try:
                    claimed = self._claim(worker_id)
                except Exception:
                    log.exception("%s: claiming a batch failed; retrying", worker_id)
                    claimed = None
                if claimed is None:
                    if self._wake.wait(self.options.poll_seconds):
                        self._wake.clear()
                    continue
                self._run(runner, claimed)

    def _saturated_cubes(self, session: Session) -> set[uuid.UUID]:
        """Cubes building on a connection that already runs its limit on this node."""
        full: dict[str, list[str]] = {}
        for (org, name), count in self._per_connection.items():
            if count >= self.options.max_per_connection:
                full.setdefault(org, []).append(name)
        cubes: set[uuid.UUID] = set()
        for org, names in full.items():
            cubes |= aggregates.cubes_using_connections(session, org, names)
        return cubes

    def _claim(self, worker_id: str) -> _Claimed | None:
        with self._lock, self.store.session() as s:
            exclude = self._saturated_cubes(s)
            batch = queue.claim_next_batch(s, worker_id, exclude_cube_ids=exclude)
            if batch is None:
                return None
            names = aggregates.cube_connection_names(s, batch.cube_id)
            claimed = _Claimed(batch.id, batch.org_id, batch.cube_id, batch.batch_type,
                               frozenset((batch.org_id, n) for n in names))  # fmt: skip
            self._per_connection.update(claimed.connections)
            self._running[claimed.batch_id] = CancelToken()
            return claimed

    def _run(self, runner: BatchRunner, claimed: _Claimed) -> None:
        with self._lock:
            token = self._running[claimed.batch_id]
        try:
            report = runner.run(claimed.batch_id, token)
            log.info("batch %s: %s (%s)", claimed.batch_id, report.status, report.message)
        except Exception as exc:
            log.exception("batch %s: the run broke", claimed.batch_id)
            self._fail(claimed, runner.worker_id, f"worker error: {exc}")
        finally:
            with self._lock:
                self._running.pop(claimed.batch_id, None)
                self._per_connection.subtract(claimed.connections)
                self._per_connection += Counter()  # drop zero counts
        if token.cancelled and token.reason == SHUTDOWN_REASON:
            self._requeue(claimed)

    def _fail(self, claimed: _Claimed, worker_id: str, message: str) -> None:
        with suppress(StoreError), self.store.session() as s:
            aggregates.fail_unfinished_instances(s, claimed.batch_id, message)
            with suppress(ConflictError):
                batches.finish_batch(s, claimed.batch_id, BatchStatus.FAILED,
                                     worker_id=worker_id, message=message[:4000])  # fmt: skip

    def _requeue(self, claimed: _Claimed) -> None:
        """A build cut short by shutdown is not lost: its cube gets a batch again."""
        try:
            with self.store.session() as s:
                cube = catalog.get_cube_by_id(s, claimed.org_id, claimed.cube_id)
                queued = queue_batch(s, cube, claimed.batch_type,
                                     requested_by=f"re-queued: batch {claimed.batch_id} was "
                                     f"cancelled when node {self.node_id} shut down")  # fmt: skip
                notify_batches_queued(s)
            log.info("batch %s cancelled by shutdown; re-queued as %s",
                     claimed.batch_id, queued.batch.id)  # fmt: skip
        except StoreError as exc:
            log.warning("batch %s cancelled by shutdown, not re-queued: %s", claimed.batch_id, exc)


class Housekeeper:
    """Periodic recovery of lost workers' batches (and their partial tables)."""

    def __init__(
        self,
        store: Store,
        *,
        stale_after: timedelta,
        opener: WarehouseOpener | None = None,
        on_recovered: Callable[[list[Recovered]], None] | None = None,
    ) -> None:
        self.store = store
        self.stale_after = stale_after
        self.opener = opener
        self.on_recovered = on_recovered
        self.interval = max(0.2, stale_after.total_seconds() / 4)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> list[Recovered]:
        recovered = recover_lost_batches(self.store, stale_after=self.stale_after,
                                         opener=self.opener)  # fmt: skip
        if recovered and self.on_recovered is not None:
            self.on_recovered(recovered)
        return recovered

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="housekeeper", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.run_once()
            except Exception:
                log.exception("recovering lost batches failed; retrying")
