"""The scheduler: fires due schedules exactly once, across restarts and cluster nodes.

Each schedule keeps ``next_fire_at`` (UTC, computed by ``aggsched.cron`` in the schedule's
time zone). A pass locks the due rows (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so
several nodes share the work and never fire the same row), and for each one, in the same
transaction, queues a batch (coalescing into the cube's pending one), records the
execution (unique on job + scheduled fire time: a double fire cannot be stored) and moves
``next_fire_at`` on. If the process dies mid-pass the transaction rolls back and another
node (or the restart) fires those schedules. On SQLite one process holds a lease.

Misfires follow Quartz's cron-trigger default ("fire once now"): a fire found more than
the threshold late fires once, flagged ``misfire`` with the time it was due, and the
schedule resumes from now; there is never a burst of catch-up fires.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from sqlalchemy.orm import Session

from aggsched import telemetry
from aggsched.cron import CronError, CronExpression
from aggsched.engine.queueing import queue_batch
from aggsched.planning.plan import BatchType
from aggsched.store import Store, catalog, leases, schedules, utcnow
from aggsched.store.errors import ConflictError
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
    batch_size: int = 200
    idle_seconds: float = 10.0
    lease_ttl: timedelta = timedelta(seconds=30)


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


def _batch_type(schedule: Schedule) -> BatchType:
    return BatchType.FULL_REBUILD if schedule.full_build else BatchType.INCREMENTAL_REBUILD


def fire_schedule(
    session: Session, schedule: Schedule, now: datetime, misfire_threshold: timedelta
) -> Firing | None:
    """Fire one claimed (row-locked) due schedule; None if it could not fire.

    Runs in a savepoint, so a refused fire (already recorded, cube gone, bad stored
    expression) only advances that schedule and never spoils the rest of the pass.
    """
    due = schedule.next_fire_at
    assert due is not None  # claim_due_schedules only returns due schedules
    misfire = now - due > misfire_threshold
    try:
        upcoming = next_fire_time(
            schedule.time_expression, schedule.time_zone, now if misfire else due
        )
    except CronError as exc:
        log.error("schedule %s: stored expression %r is invalid (%s); it stops firing",
                  schedule.job_id, schedule.time_expression, exc)  # fmt: skip
        schedules.advance_schedule(session, schedule, None)
        return None
    cube = catalog.lock_cube(session, schedule.cube_id)
    if cube is None or cube.deleted_at is not None:
        log.warning("schedule %s: cube %s is gone; skipping the fire due %s",
                    schedule.job_id, schedule.cube_id, due.isoformat())  # fmt: skip
        schedules.advance_schedule(session, schedule, upcoming)
        return None
    try:
        with session.begin_nested():
            execution = schedules.record_execution(
                session, schedule, scheduled_fire_time=due, executed_at=now, misfire=misfire
            )
            queued = queue_batch(session, cube, _batch_type(schedule),
                                 requested_by=f"schedule {schedule.job_id}",
                                 job_id=schedule.job_id, execution_id=execution.id)  # fmt: skip
            execution.batch_id = queued.batch.id
            execution.coalesced = queued.coalesced
            session.flush()
    except ConflictError:
        log.warning("schedule %s already fired for %s; not firing it twice",
                    schedule.job_id, due.isoformat())  # fmt: skip
        schedules.advance_schedule(session, schedule, upcoming)
        return None
    schedules.advance_schedule(session, schedule, upcoming)
    return Firing(schedule.job_id, execution.id, due, now, queued.batch.id, misfire,
                  queued.coalesced, upcoming)  # fmt: skip


def fire_due(
    session: Session,
    now: datetime,
    *,
    misfire_threshold: timedelta = timedelta(seconds=60),
    limit: int = 200,
) -> tuple[list[Firing], int]:
    """Fire up to ``limit`` schedules due at ``now`` in the caller's transaction.

    Returns the firings and how many rows were claimed (a full ``limit`` means more may
    be due). Rows are handled in cube order so two nodes lock cubes' batches in the
    same order and cannot deadlock.
    """
    claimed = schedules.claim_due_schedules(session, now, limit)
    fired: list[Firing] = []
    for schedule in sorted(claimed, key=lambda s: (str(s.cube_id), s.next_fire_at)):
        with telemetry.log_context(job_id=schedule.job_id, org_id=schedule.org_id):
            firing = fire_schedule(session, schedule, now, misfire_threshold)
        if firing is not None:
            fired.append(firing)
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
    def tick(self) -> list[Firing]:
        """Fire everything due at ``clock()``; one transaction per ``batch_size`` rows."""
        if not self._holds_lease():
            return []
        fired: list[Firing] = []
        while True:
            with self.store.session() as s:
                now = self.clock()
                batch, claimed = fire_due(s, now, misfire_threshold=self.options.misfire_threshold,
                                          limit=self.options.batch_size)  # fmt: skip
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
                self.tick()
                delay = self._delay()
            except Exception:
                log.exception("scheduler pass failed; retrying in 1 s")
                delay = 1.0
            if delay > 0:
                self._wake.wait(delay)
