"""The scheduler: fires due schedules exactly once, across restarts and cluster nodes.

Each schedule keeps ``next_fire_at`` (UTC, computed by ``aggsched.cron`` in the schedule's
time zone). A pass locks the due rows (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so
several nodes share the work and never fire the same row) and, in the same transaction,
queues their batches (coalescing into each cube's pending one), records their executions
(unique on job + scheduled fire time: a double fire cannot be stored) and moves their
``next_fire_at`` on. It does so set-based, a few statements per pass rather than a few
per fire (a pass of 500 fires costs about what one fire used to), so one cube's 300
schedules firing each second are one cube lock per pass, not 300 in a row. If the
process dies mid-pass the transaction rolls back and another node (or the restart)
fires those schedules. On SQLite one process holds a lease.

Misfires follow Quartz's cron-trigger default ("fire once now"): a fire found more than
the threshold late fires once, flagged ``misfire`` with the time it was due, and the
schedule resumes from now; there is never a burst of catch-up fires.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import Row
from sqlalchemy.orm import Session

from aggsched import telemetry
from aggsched.cron import CronError, CronExpression
from aggsched.engine.queueing import BatchRequest, queue_batches
from aggsched.engine.recovery import recover_cubes
from aggsched.planning.plan import BatchType
from aggsched.store import Store, catalog, leases, schedules, utcnow
from aggsched.store.models import Schedule
from aggsched.store.notify import (
    SCHEDULES_CHANNEL,
    ChangeFeed,
    notify_batches_queued,
    notify_schedules_changed,
)

__all__ = [
    "Firing",
    "LeaseHeldError",
    "Scheduler",
    "SchedulerOptions",
    "fire_due",
    "next_fire_time",
    "notify_schedules_changed",
    "pause_schedule",
    "resume_schedule",
]

LEASE_NAME = "scheduler"
Clock = Callable[[], datetime]
log = logging.getLogger(__name__)


class LeaseHeldError(RuntimeError):
    """Another node holds the single-scheduler lease of a SQLite metadata DB."""


@dataclass(frozen=True)
class SchedulerOptions:
    """How one scheduler node behaves (see ``Settings`` for the meaning of each)."""

    misfire_threshold: timedelta = timedelta(seconds=60)
    batch_size: int = 1000
    idle_seconds: float = 10.0
    lease_ttl: timedelta = timedelta(seconds=30)
    # a fired cube's batch in progress without a heartbeat this long is recovered first
    stale_after: timedelta | None = None


@dataclass(frozen=True)
class Firing:
    """What one fire did: its execution and batch, and when the schedule fires next."""

    job_id: uuid.UUID
    execution_id: uuid.UUID
    scheduled_fire_time: datetime
    executed_at: datetime
    batch_id: uuid.UUID
    misfire: bool
    coalesced: bool
    next_fire_at: datetime | None


@lru_cache(maxsize=4096)
def _cron(text: str, time_zone: str) -> CronExpression:
    return CronExpression.parse(text, time_zone)


def next_fire_time(time_expression: str, time_zone: str, after: datetime) -> datetime | None:
    """The first fire strictly after ``after`` (None: the expression has no more)."""
    return _cron(time_expression, time_zone).next_after(after)


def _batch_type(full_build: bool) -> BatchType:
    return BatchType.FULL_REBUILD if full_build else BatchType.INCREMENTAL_REBUILD


@dataclass(frozen=True)
class _Due:
    """A claimed schedule that will fire in this pass, and what it fires."""

    row: Row[Any]
    misfire: bool
    upcoming: datetime | None


def _plan(
    claimed: list[Row[Any]], now: datetime, misfire_threshold: timedelta
) -> tuple[list[_Due], dict[uuid.UUID, datetime | None]]:
    """Pure part of a pass: which rows fire (misfire or not) and each one's next fire.

    A row whose stored expression no longer parses stops firing (next fire None). Rows
    due at the same time with the same expression and zone (common: a pass holds the
    fires of one instant) share one next-fire computation.
    """
    due: list[_Due] = []
    advance: dict[uuid.UUID, datetime | None] = {}
    computed: dict[tuple[str, str, datetime], datetime | None] = {}
    for row in claimed:
        misfire = now - row.next_fire_at > misfire_threshold
        key = (row.time_expression, row.time_zone, now if misfire else row.next_fire_at)
        try:
            if key in computed:
                upcoming = computed[key]
            else:
                upcoming = computed[key] = next_fire_time(*key)
        except CronError as exc:
            with telemetry.log_context(job_id=row.job_id, org_id=row.org_id):
                log.error("schedule %s: stored expression %r is invalid (%s); it stops firing",
                          row.job_id, row.time_expression, exc)  # fmt: skip
            advance[row.job_id] = None
            continue
        advance[row.job_id] = upcoming
        due.append(_Due(row, misfire, upcoming))
    return due, advance


def _record(
    session: Session, due: list[_Due], now: datetime
) -> tuple[list[Firing], set[tuple[uuid.UUID, datetime]]]:
    """Queue or coalesce the batches and store the executions of ``due``, set-based.

    Ids are chosen here so batches and executions point at each other from the first
    INSERT. The executions' INSERT skips a (job, fire time) already recorded; then the
    savepoint rolls back and the caller tries again without those fires, so a double
    fire is never stored and never queues a batch. Returns the firings and the fires
    found already recorded.
    """
    ids = [uuid.uuid4() for _ in due]
    requests = [
        BatchRequest(
            d.row.cube_id,
            d.row.org_id,
            d.row.project_id,
            _batch_type(d.row.full_build),
            f"schedule {d.row.job_id}",
            d.row.job_id,
            execution_id,
        )
        for d, execution_id in zip(due, ids, strict=True)
    ]
    savepoint = session.begin_nested()
    queued = queue_batches(session, requests, now)
    stored = schedules.record_executions(session, [
        {"id": execution_id, "job_id": d.row.job_id, "org_id": d.row.org_id,
         "cube_id": d.row.cube_id, "scheduled_fire_time": d.row.next_fire_at,
         "executed_at": now, "batch_id": q.batch_id, "misfire": d.misfire,
         "coalesced": q.coalesced}
        for d, execution_id, q in zip(due, ids, queued, strict=True)
    ])  # fmt: skip
    if len(stored) < len(ids):
        savepoint.rollback()
        return [], {
            (d.row.job_id, d.row.next_fire_at)
            for d, execution_id in zip(due, ids, strict=True)
            if execution_id not in stored
        }
    savepoint.commit()
    firings = [
        Firing(
            d.row.job_id,
            execution_id,
            d.row.next_fire_at,
            now,
            q.batch_id,
            d.misfire,
            q.coalesced,
            d.upcoming,
        )
        for d, execution_id, q in zip(due, ids, queued, strict=True)
    ]
    return firings, set()


def fire_due(
    session: Session,
    now: datetime,
    *,
    misfire_threshold: timedelta = timedelta(seconds=60),
    limit: int = 200,
    stale_after: timedelta | None = None,
) -> tuple[list[Firing], int]:
    """Fire up to ``limit`` schedules due at ``now`` in the caller's transaction.

    Set-based: one statement claims the due rows, one moves every ``next_fire_at`` on
    (the fire times are computed in Python between), one locks their cubes (in id order,
    so nodes cannot deadlock), a few queue or coalesce the batches and store the
    executions. The cube locks come last, so they are held for the fewest statements.
    Returns the firings and how many rows were claimed (a full ``limit`` means more may
    be due). With ``stale_after``, a fired cube's batch whose worker stopped heartbeating
    that long ago is recovered first, so the fire joins the re-queued batch.
    """
    claimed = schedules.claim_due_schedules(session, now, limit)
    if not claimed:
        return [], 0
    due, advance = _plan(claimed, now, misfire_threshold)
    # Before the cube locks, not after: the claimed rows are already ours, and the cube
    # locks are what other nodes (and API requests) queue behind until this commits.
    schedules.advance_schedules(session, advance, now)
    cubes = catalog.lock_cubes(session, {d.row.cube_id for d in due})
    live = []
    for d in due:
        cube = cubes.get(d.row.cube_id)
        if cube is None or cube.deleted_at is not None:
            with telemetry.log_context(job_id=d.row.job_id, org_id=d.row.org_id):
                log.warning("schedule %s: cube %s is gone; skipping the fire due %s",
                            d.row.job_id, d.row.cube_id,
                            d.row.next_fire_at.isoformat())  # fmt: skip
        else:
            live.append(d)
    if stale_after is not None and live:
        recover_cubes(session, {d.row.cube_id for d in live}, stale_after, now)
    fired: list[Firing] = []
    while live:
        fired, already = _record(session, live, now)
        if not already:
            break
        for job_id, at in sorted(already):
            with telemetry.log_context(job_id=job_id):
                log.warning("schedule %s already fired for %s; not firing it twice",
                            job_id, at.isoformat())  # fmt: skip
        live = [d for d in live if (d.row.job_id, d.row.next_fire_at) not in already]
    if any(not f.coalesced for f in fired):
        notify_batches_queued(session)
    return fired, len(claimed)


def pause_schedule(session: Session, org_id: str, job_id: uuid.UUID) -> Schedule:
    """Stop a schedule firing (``active`` false) until it is resumed."""
    schedule = schedules.set_schedule_active(session, org_id, job_id, False)
    notify_schedules_changed(session)
    return schedule


def resume_schedule(
    session: Session, org_id: str, job_id: uuid.UUID, now: datetime | None = None
) -> Schedule:
    """Fire again from now on: the fires missed while paused are not made up."""
    schedule = schedules.get_schedule(session, org_id, job_id)
    upcoming = next_fire_time(schedule.time_expression, schedule.time_zone, now or utcnow())
    schedule = schedules.set_schedule_active(session, org_id, job_id, True, next_fire_at=upcoming)
    notify_schedules_changed(session)
    return schedule


class Scheduler:
    """The firing loop of one node: sleep until the earliest fire, fire, repeat.

    ``clock`` is injectable so tests drive time (``tick()`` fires what is due at
    ``clock()``); ``run`` sleeps in real time between ticks.
    """

    def __init__(
        self,
        store: Store,
        *,
        node_id: str,
        options: SchedulerOptions | None = None,
        clock: Clock = utcnow,
        feed: ChangeFeed | None = None,
        on_fired: Callable[[list[Firing]], None] | None = None,
        also_due: Sequence[Callable[[datetime], object]] = (),
    ) -> None:
        self.store = store
        self.node_id = node_id
        self.options = options or SchedulerOptions()
        self.clock = clock
        self.on_fired = on_fired
        # other due work fired on each tick under the same one-node-per-fire guarantee
        # (each organization's maintenance: engine.maintenance.MaintenanceScheduler.tick)
        self.also_due = list(also_due)
        self._wake = threading.Event()
        self._lease_until: datetime | None = None
        if feed is not None:
            feed.subscribe(SCHEDULES_CHANNEL, self.wake)

    @property
    def uses_lease(self) -> bool:
        """SQLite has no row locks to share firing: one node holds a lease instead."""
        return self.store.dialect == "sqlite"

    def wake(self) -> None:
        """Look at the schedules now (they changed)."""
        self._wake.set()

    # ------------------------------------------------------------------ lease
    def acquire_lease(self) -> None:
        """Take the single-scheduler lease, or ``LeaseHeldError`` saying who has it."""
        if not self._renew_lease():
            with self.store.session() as s:
                holder = leases.lease_holder(s, LEASE_NAME) or "another node"
            raise LeaseHeldError(
                f"scheduler not started: {holder} already runs the scheduler on this SQLite "
                "metadata DB, and SQLite supports one scheduler node; stop it, or use "
                "PostgreSQL (AGGSCHED_DATABASE_URL) to run several"
            )

    def release_lease(self) -> None:
        if self.uses_lease and self._lease_until is not None:
            with self.store.session() as s:
                leases.release_lease(s, LEASE_NAME, self.node_id)
            self._lease_until = None

    def _renew_lease(self) -> bool:
        now = self.clock()
        with self.store.session() as s:
            held = leases.acquire_lease(s, LEASE_NAME, self.node_id, self.options.lease_ttl, now)
        self._lease_until = now + self.options.lease_ttl if held else None
        return held

    def _holds_lease(self) -> bool:
        """Renew the lease when a third of its life is gone; False if it was lost."""
        if not self.uses_lease:
            return True
        until = self._lease_until
        if until is not None and until - self.clock() > self.options.lease_ttl * (2 / 3):
            return True
        if self._renew_lease():
            return True
        if until is not None:
            log.error("scheduler lease lost to another node; this node stops firing")
        return False

    # ------------------------------------------------------------------ firing
    def tick(self, stop: threading.Event | None = None) -> list[Firing]:
        """Fire everything due at ``clock()``; one transaction per ``batch_size`` rows.

        Under load more may be due after every pass; ``stop`` is checked between passes,
        so a node asked to stop never waits for the backlog to drain.
        """
        if not self._holds_lease():
            return []
        fired: list[Firing] = []
        while stop is None or not stop.is_set():
            started = time.perf_counter()
            with self.store.session() as s:
                now = self.clock()
                batch, claimed = fire_due(s, now, misfire_threshold=self.options.misfire_threshold,
                                          limit=self.options.batch_size,
                                          stale_after=self.options.stale_after)  # fmt: skip
            if claimed:
                # what a pass costs, from claim to commit (the benchmark reads this line)
                log.debug("scheduler pass: claimed=%d fired=%d stamped=%s committed_ms=%.1f",
                          claimed, len(batch), now.isoformat(),
                          (time.perf_counter() - started) * 1000)  # fmt: skip
            fired.extend(batch)
            still_due = any(f.next_fire_at is not None and f.next_fire_at <= now for f in batch)
            if claimed < self.options.batch_size and not still_due:
                break
        if fired and self.on_fired is not None:
            self.on_fired(fired)
        for fire_due_too in self.also_due:
            fire_due_too(self.clock())
        return fired

    def next_wake(self) -> datetime | None:
        with self.store.session() as s:
            return schedules.earliest_next_fire(s)

    def _delay(self) -> float:
        """Seconds to sleep: until the earliest fire, at most the idle (safety) period."""
        delay = self.options.idle_seconds
        if self.uses_lease:
            delay = min(delay, self.options.lease_ttl.total_seconds() / 3)
        upcoming = self.next_wake()
        if upcoming is not None:
            delay = min(delay, (upcoming - self.clock()).total_seconds())
        return max(0.0, delay)

    def run(self, stop: threading.Event) -> None:
        """Fire until ``stop`` is set; store errors are logged and retried, never fatal."""
        while not stop.is_set():
            self._wake.clear()
            try:
                self.tick(stop)
                delay = self._delay()
            except Exception:
                log.exception("scheduler pass failed; retrying in 1 s")
                delay = 1.0
            if delay > 0:
                self._wake.wait(delay)
