"""One process's share of the cluster: its scheduler loop, build workers and recovery.

``aggsched serve`` (with the API), ``aggsched scheduler`` and ``aggsched worker`` all run a
``Node``; what differs is which parts are on. Every node, whatever it runs, also recovers
batches of lost workers, so a cluster recovers as long as one node is alive.

    node = Node(settings, store, scheduler=True, workers=True)
    node.start()          # raises LeaseHeldError on SQLite if another node schedules
    ...
    node.stop(grace=30)   # stop firing and claiming, let builds finish, then cancel them
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import socket
import threading
import uuid
from collections.abc import Mapping
from datetime import timedelta
from types import FrameType
from typing import Any

from aggsched import telemetry
from aggsched.config import Settings
from aggsched.engine.builds import WarehouseOpener
from aggsched.engine.maintenance import MaintenanceScheduler
from aggsched.engine.presence import Presence
from aggsched.engine.scheduler import Clock, Scheduler, SchedulerOptions
from aggsched.engine.workers import Housekeeper, WorkerOptions, WorkerPool
from aggsched.store import Store, utcnow
from aggsched.store.notify import ChangeFeed
from aggsched.warehouse import open_warehouse

__all__ = ["Node", "default_node_id", "freeze_startup_heap"]

log = logging.getLogger(__name__)


def freeze_startup_heap() -> None:
    """Exclude what a server process has loaded by the time it serves (modules, settings,
    the ORM's mappings, the app) from garbage collection: it lives as long as the process.

    Unfrozen, every full collection walks those ~200,000 objects: 80-200 ms at once, in
    the middle of a scheduler pass (most of its p99 lateness, bench_scheduler) or of an
    API request that allocates a lot (the 1,000-schedule list, bench_api). Frozen, a
    full collection takes about a millisecond. Called once at process start-up
    (``run_forever``, the API's lifespan), never per request."""
    gc.collect()
    gc.freeze()


def default_node_id() -> str:
    """Unique per process and readable in ``worker_id``s: host, pid and a random tag."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class Node:
    """Scheduler + workers + recovery of one process, started and stopped together."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        scheduler: bool = True,
        workers: bool = True,
        clock: Clock = utcnow,
        env: Mapping[str, str] | None = None,
        opener: WarehouseOpener | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.node_id = settings.node_id or default_node_id()
        environ = os.environ if env is None else env
        self.opener: WarehouseOpener = opener or (lambda url: open_warehouse(url, environ))
        self.feed = ChangeFeed(store)
        self._stop = threading.Event()
        self._stop_requested = threading.Event()
        self._threads: list[threading.Thread] = []
        self._started = False
        # operations: each organization's maintenance fires with the schedules, and the
        # node's presence lease counts it in aggsched_nodes_alive
        s_after = settings.stale_after_seconds
        self.maintenance = (
            MaintenanceScheduler(store, node_id=self.node_id, opener=self.opener, clock=clock,
                                 heartbeat_seconds=settings.heartbeat_seconds)
            if scheduler else None
        )  # fmt: skip
        self.presence = Presence(store, self.node_id, timedelta(seconds=s_after))
        self.scheduler = self._make_scheduler(clock) if scheduler else None
        self.workers = (
            self._make_workers(environ) if workers and settings.max_concurrent_builds else None
        )
        self.housekeeper = Housekeeper(
            store, stale_after=timedelta(seconds=settings.stale_after_seconds), opener=self.opener
        )

    def _make_scheduler(self, clock: Clock) -> Scheduler:
        s = self.settings
        options = SchedulerOptions(
            misfire_threshold=timedelta(seconds=s.misfire_threshold_seconds),
            batch_size=s.scheduler_batch_size,
            idle_seconds=s.scheduler_idle_seconds,
            lease_ttl=timedelta(seconds=s.scheduler_lease_seconds),
            stale_after=timedelta(seconds=s.stale_after_seconds),
        )
        also_due = [self.maintenance.tick] if self.maintenance else []
        return Scheduler(self.store, node_id=self.node_id, options=options, clock=clock,
                         feed=self.feed, on_fired=telemetry.schedules_fired,
                         also_due=also_due)  # fmt: skip

    def _make_workers(self, env: Mapping[str, str]) -> WorkerPool:
        s = self.settings
        options = WorkerOptions(
            max_concurrent=s.max_concurrent_builds,
            max_per_connection=s.max_builds_per_connection,
            heartbeat_seconds=s.heartbeat_seconds,
            stale_after=timedelta(seconds=s.stale_after_seconds),
            poll_seconds=s.worker_poll_seconds,
        )
        return WorkerPool(self.store, node_id=self.node_id, options=options, env=env,
                          opener=self.opener, feed=self.feed)  # fmt: skip

    @property
    def running(self) -> bool:
        return self._started

    def start(self) -> None:
        """Start every enabled part; ``LeaseHeldError`` (nothing started) on a SQLite DB
        whose scheduler already runs in another process."""
        if self._started:
            return
        if self.scheduler is not None and self.scheduler.uses_lease:
            self.scheduler.acquire_lease()
        self._stop.clear()
        if self.maintenance is not None:
            self.maintenance.start()
        self.presence.start()
        self.feed.start()
        if self.scheduler is not None:
            thread = threading.Thread(target=self.scheduler.run, args=(self._stop,),
                                      name=f"scheduler-{self.node_id}")  # fmt: skip
            thread.start()
            self._threads.append(thread)
        if self.workers is not None:
            self.workers.start()
        self.housekeeper.start()
        self._started = True
        log.info("node %s started (scheduler: %s, workers: %d)", self.node_id,
                 self.scheduler is not None,
                 self.workers.options.max_concurrent if self.workers else 0)  # fmt: skip

    def stop(self, grace: float | None = None) -> None:
        """Stop firing and claiming at once; running builds get ``grace`` seconds (default
        ``settings.shutdown_grace_seconds``) to finish, then are cancelled and re-queued."""
        if not self._started:
            return
        self._stop.set()
        if self.maintenance is not None:  # stops after its current item, alongside builds
            self.maintenance.request_stop()
        if self.scheduler is not None:
            self.scheduler.wake()
        for thread in self._threads:
            thread.join()
        self._threads.clear()
        if self.workers is not None:
            wait = self.settings.shutdown_grace_seconds if grace is None else grace
            cancelled = self.workers.stop(wait)
            if cancelled:
                log.warning("node %s: cancelled %d build(s) at shutdown", self.node_id,
                            len(cancelled))  # fmt: skip
        self.housekeeper.stop()
        if self.maintenance is not None:
            self.maintenance.stop(self.settings.shutdown_grace_seconds if grace is None else grace)
        self.presence.stop()
        if self.scheduler is not None:
            self.scheduler.release_lease()
        self.feed.stop()
        self._started = False
        log.info("node %s stopped", self.node_id)

    def request_stop(self) -> None:
        """Ask ``run_forever`` to return (safe from a signal handler)."""
        self._stop_requested.set()

    def run_forever(self, *, handle_signals: bool = True) -> None:
        """Start, run until SIGTERM/SIGINT (or ``request_stop``), then stop gracefully."""
        self._stop_requested.clear()
        previous = self._install_signals() if handle_signals else {}
        freeze_startup_heap()
        try:
            self.start()
            while not self._stop_requested.wait(0.5):
                pass
        finally:
            self.stop()
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _install_signals(self) -> dict[int, Any]:
        def handle(signum: int, _frame: FrameType | None) -> None:
            log.info("node %s: signal %d, shutting down", self.node_id, signum)
            self.request_stop()

        previous = {}
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.getsignal(signum)
            signal.signal(signum, handle)
        return previous
