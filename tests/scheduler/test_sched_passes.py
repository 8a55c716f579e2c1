"""One set-based pass: fires of one cube in the same pass coalesce into one batch (upgraded
to the most work asked), a fire already recorded is skipped without spoiling the rest,
and a stored expression that no longer parses stops its schedule, on both backends."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from aggsched.engine.scheduler import Scheduler, SchedulerOptions
from aggsched.store import Store, batches, catalog, schedules
from aggsched.store.models import Execution, Schedule
from scheduler.sched_helpers import add_schedule, all_batches, executions, make_cubes

T0 = datetime(2025, 6, 2, 12, 0, 0, tzinfo=UTC)
DUE = T0 + timedelta(seconds=10)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'meta.db'}"
    else:
        url = request.getfixturevalue("pg_database")
    opened = Store.open(url)
    yield opened
    opened.dispose()


def node(store: Store, at: datetime, batch_size: int = 1000) -> Scheduler:
    return Scheduler(store, node_id=f"t-{uuid.uuid4().hex[:6]}", clock=lambda: at,
                     options=SchedulerOptions(batch_size=batch_size))  # fmt: skip


def next_fire_at(store: Store, job: uuid.UUID) -> datetime | None:
    with store.session() as s:
        return s.get(Schedule, job).next_fire_at


def test_fires_of_one_cube_in_one_pass_share_one_batch_upgraded(store: Store) -> None:
    hot, other = make_cubes(store, 2)
    incremental = [add_schedule(store, hot, "0/10 * * * * ?", after=T0, full_build=False)
                   for _ in range(5)]  # fmt: skip
    full = add_schedule(store, hot, "0/10 * * * * ?", after=T0)
    alone = add_schedule(store, other, "0/10 * * * * ?", after=T0, full_build=False)
    fired = node(store, DUE).tick()
    assert {f.job_id for f in fired} == {*incremental, full, alone}
    hot_fires = [f for f in fired if f.job_id != alone]
    assert len({f.batch_id for f in hot_fires}) == 1
    assert sum(not f.coalesced for f in hot_fires) == 1  # the batch was made for one fire
    batches = {b.cube_id: b for b in all_batches(store)}
    assert len(batches) == 2
    assert batches[hot].batch_type == "full-rebuild"  # one fire asked for a full build
    assert batches[other].batch_type == "incremental-rebuild"
    first = next(f for f in hot_fires if not f.coalesced)
    assert (batches[hot].job_id, batches[hot].execution_id) == (first.job_id, first.execution_id)
    stored = {e.id: e for e in executions(store)}
    assert all(stored[f.execution_id].batch_id == f.batch_id for f in fired)
    assert all(next_fire_at(store, f.job_id) == DUE + timedelta(seconds=10) for f in fired)


def test_a_fire_already_recorded_is_skipped_and_the_pass_goes_on(store: Store) -> None:
    lonely, shared = make_cubes(store, 2)
    recorded = add_schedule(store, lonely, "0/10 * * * * ?", after=T0)
    fine = add_schedule(store, shared, "0/10 * * * * ?", after=T0)
    with store.session() as s:  # as if another node had fired it and its clock went back
        schedules.record_execution(s, s.get(Schedule, recorded), scheduled_fire_time=DUE)
    fired = node(store, DUE).tick()
    assert [f.job_id for f in fired] == [fine]
    assert [b.cube_id for b in all_batches(store)] == [shared]  # no batch for the skipped fire
    assert sorted(e.job_id == recorded for e in executions(store)) == [False, True]
    assert next_fire_at(store, recorded) == DUE + timedelta(seconds=10)  # moved on anyway
    assert next_fire_at(store, fine) == DUE + timedelta(seconds=10)


def test_a_stored_expression_that_no_longer_parses_stops_its_schedule(store: Store) -> None:
    [cube] = make_cubes(store, 1)
    broken = add_schedule(store, cube, "0/10 * * * * ?", after=T0)
    fine = add_schedule(store, cube, "0/10 * * * * ?", after=T0)
    with store.session() as s:
        s.execute(update(Schedule).where(Schedule.job_id == broken)
                  .values(time_expression="not cron"))  # fmt: skip
    fired = node(store, DUE).tick()
    assert [f.job_id for f in fired] == [fine]
    assert next_fire_at(store, broken) is None
    assert [e.job_id for e in executions(store)] == [fine]


def test_a_backlog_larger_than_a_pass_fires_in_several_passes(store: Store) -> None:
    cubes = make_cubes(store, 3)
    jobs = [add_schedule(store, cubes[i % 3], "0/10 * * * * ?", after=T0) for i in range(25)]
    fired = node(store, DUE + timedelta(seconds=20), batch_size=7).tick()
    # three fire times each (10, 20, 30 s), every one once, in passes of at most 7
    assert sorted((f.job_id, f.scheduled_fire_time) for f in fired) == sorted(
        (job, DUE + timedelta(seconds=s)) for job in jobs for s in (0, 10, 20)
    )
    with store.session() as s:
        count = s.query(Execution).count()
    assert count == 75


def _running_batch(store: Store, cube_id: uuid.UUID, heartbeat: datetime) -> uuid.UUID:
    """A batch in progress on a worker whose last heartbeat was at ``heartbeat``."""
    with store.session() as s:
        cube = catalog.get_cube_by_id(s, "default", cube_id)
        batch = batches.create_batch(s, org_id="default", project_id=cube.project_id,
                                     cube_id=cube_id, batch_type="incremental-rebuild",
                                     now=heartbeat)  # fmt: skip
        batch.status, batch.worker_id, batch.attempts = "inprogress", "gone-node", 1
        batch.start_time = batch.heartbeat_at = heartbeat
        return batch.id


def test_a_pass_recovers_a_fired_cubes_batch_whose_worker_stopped(store: Store) -> None:
    lost_cube, busy_cube, idle_cube = make_cubes(store, 3)
    lost = _running_batch(store, lost_cube, heartbeat=DUE - timedelta(minutes=5))
    busy = _running_batch(store, busy_cube, heartbeat=DUE - timedelta(seconds=2))
    quiet = _running_batch(store, idle_cube, heartbeat=DUE - timedelta(minutes=5))
    jobs = {c: add_schedule(store, c, "0/10 * * * * ?", after=T0, full_build=False)
            for c in (lost_cube, busy_cube)}  # fmt: skip
    scheduler = Scheduler(store, node_id="t-recover", clock=lambda: DUE,
                          options=SchedulerOptions(stale_after=timedelta(seconds=15)))  # fmt: skip
    fired = {f.job_id: f for f in scheduler.tick()}
    stored = {b.id: b for b in all_batches(store)}
    # the lost worker's batch went back to pending and the fire joined it
    assert stored[lost].status == "pending"
    assert "worker lost" in (stored[lost].message or "")
    assert fired[jobs[lost_cube]].batch_id == lost and fired[jobs[lost_cube]].coalesced
    # a live worker's batch is left alone: the fire queued a new batch behind it
    assert stored[busy].status == "inprogress"
    assert fired[jobs[busy_cube]].batch_id != busy and not fired[jobs[busy_cube]].coalesced
    # a cube this pass does not fire is the housekeeping's business, not the pass's
    assert stored[quiet].status == "inprogress"


def test_without_stale_after_a_pass_leaves_running_batches_alone(store: Store) -> None:
    (cube,) = make_cubes(store, 1)
    lost = _running_batch(store, cube, heartbeat=DUE - timedelta(minutes=5))
    add_schedule(store, cube, "0/10 * * * * ?", after=T0, full_build=False)
    (firing,) = node(store, DUE).tick()
    assert firing.batch_id != lost
    assert {b.id: b.status for b in all_batches(store)}[lost] == "inprogress"
