"""Shared helpers of the scheduler tests: cubes and schedules to fire, execution reads.

Import as ``from scheduler.sched_helpers import ...`` (``tests/`` is on ``sys.path``).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import datetime

from sqlalchemy import select

from aggsched.engine.scheduler import next_fire_time
from aggsched.store import Store, catalog, schedules
from aggsched.store.models import BuildBatch, Execution


def make_cubes(store: Store, count: int, org: str = "default") -> list[uuid.UUID]:
    """``count`` cubes without aggregates (their builds are trivial), in one project."""
    with store.session() as s:
        project = catalog.upsert_project(s, org, f"p_{uuid.uuid4().hex[:8]}", name="test")
        return [catalog.upsert_cube(s, project, f"cube_{i}", f"Cube {i}").id for i in range(count)]


def add_schedule(
    store: Store,
    cube_id: uuid.UUID,
    expression: str,
    *,
    after: datetime,
    time_zone: str = "UTC",
    full_build: bool = True,
    org: str = "default",
) -> uuid.UUID:
    """A schedule whose first fire is the expression's first time after ``after``."""
    with store.session() as s:
        cube = catalog.get_cube_by_id(s, org, cube_id)
        schedule = schedules.create_schedule(
            s, org_id=org, project_id=cube.project_id, cube_id=cube_id,
            time_expression=expression, time_zone=time_zone, full_build=full_build,
            next_fire_at=next_fire_time(expression, time_zone, after),
        )  # fmt: skip
        return schedule.job_id


def executions(store: Store) -> list[Execution]:
    with store.session() as s:
        rows = list(s.scalars(select(Execution).order_by(Execution.scheduled_fire_time)))
        s.expunge_all()
        return rows


def fire_times(store: Store) -> dict[uuid.UUID, list[datetime]]:
    """Each job's recorded scheduled fire times, in order."""
    times: dict[uuid.UUID, list[datetime]] = defaultdict(list)
    for execution in executions(store):
        times[execution.job_id].append(execution.scheduled_fire_time)
    return dict(times)


def all_batches(store: Store) -> list[BuildBatch]:
    with store.session() as s:
        rows = list(s.scalars(select(BuildBatch).order_by(BuildBatch.create_date)))
        s.expunge_all()
        return rows


def assert_cadence(
    times: list[datetime], expression: str, after: datetime, until: datetime
) -> None:
    """``times`` are exactly the expression's fires after ``after``: none missing (every
    fire up to ``until`` is there), none doubled, no gap, none made up."""
    from aggsched.cron import CronExpression

    cron = CronExpression.parse(expression)
    assert times == cron.next_n(after, len(times)), "a gap, a double or an invented fire"
    due = [t for t in cron.next_n(after, 10_000) if t <= until]
    assert len(times) >= len(due), f"missing fires: {len(times)} of {len(due)} up to {until}"


def wait_for(predicate, timeout: float, what: str, interval: float = 0.2):  # type: ignore[no-untyped-def]
    """Poll ``predicate`` until it returns something truthy; fail saying ``what``."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
