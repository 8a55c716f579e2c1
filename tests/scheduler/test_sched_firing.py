"""The scheduler fires on an injected clock: exactly once, misfires, coalescing, pause,
DST as Quartz, the SQLite lease and concurrent nodes on PostgreSQL."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from aggsched.cron import CronExpression
from aggsched.engine.scheduler import (
    LeaseHeldError,
    Scheduler,
    SchedulerOptions,
    pause_schedule,
    resume_schedule,
)
from aggsched.store import Store, schedules
from aggsched.store.notify import ChangeFeed, notify_schedules_changed
from scheduler.sched_helpers import add_schedule, all_batches, executions, fire_times, make_cubes

T0 = datetime(2025, 6, 2, 12, 0, 0, tzinfo=UTC)


class Clock:
    """A settable clock for driving the scheduler without waiting."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'meta.db'}"
    else:
        url = request.getfixturevalue("pg_database")
    opened = Store.open(url)
    yield opened
    opened.dispose()


def scheduler(store: Store, clock: Clock, **options: object) -> Scheduler:
    return Scheduler(store, node_id=f"test-{uuid.uuid4().hex[:6]}", clock=clock,
                     options=SchedulerOptions(**options))  # fmt: skip


def test_fires_once_at_due_time_and_advances(store: Store) -> None:
    [cube] = make_cubes(store, 1)
    job = add_schedule(store, cube, "0/10 * * * * ?", after=T0)
    clock = Clock(T0 + timedelta(seconds=9))
    node = scheduler(store, clock)
    assert node.tick() == []  # not due yet
    clock.now = T0 + timedelta(seconds=10)
    [firing] = node.tick()
    assert (firing.job_id, firing.scheduled_fire_time) == (job, T0 + timedelta(seconds=10))
    assert firing.next_fire_at == T0 + timedelta(seconds=20)
    assert not firing.misfire and not firing.coalesced
    assert node.tick() == []  # the same fire never twice
    [execution] = executions(store)
    [batch] = all_batches(store)
    assert execution.batch_id == batch.id and batch.execution_id == execution.id
    assert (batch.batch_type, batch.job_id, batch.status) == ("full-rebuild", job, "pending")
    with store.session() as s:
        assert schedules.latest_execution(s, job).id == execution.id
        assert s.get(schedules.Schedule, job).next_fire_at == T0 + timedelta(seconds=20)


def test_late_within_threshold_fires_each_time_on_cadence(store: Store) -> None:
    [cube] = make_cubes(store, 1)
    job = add_schedule(store, cube, "0/10 * * * * ?", after=T0)
    clock = Clock(T0 + timedelta(seconds=35))  # 25 s late: under the 60 s threshold
    fired = scheduler(store, clock).tick()
    assert [f.scheduled_fire_time for f in fired] == [
        T0 + timedelta(seconds=s) for s in (10, 20, 30)
    ]
    assert not any(f.misfire for f in fired)
    assert fire_times(store)[job] == [f.scheduled_fire_time for f in fired]


def test_misfire_fires_once_now_then_resumes_cadence(store: Store) -> None:
    [cube] = make_cubes(store, 1)
    job = add_schedule(store, cube, "0 * * * * ?", after=T0)  # every minute
    clock = Clock(T0 + timedelta(minutes=30, seconds=15))  # 30 fires missed
    node = scheduler(store, clock)
    [firing] = node.tick()
    assert firing.misfire and firing.scheduled_fire_time == T0 + timedelta(minutes=1)
    assert firing.executed_at == clock.now
    assert firing.next_fire_at == T0 + timedelta(minutes=31)
    clock.now = T0 + timedelta(minutes=31)
    [normal] = node.tick()
    assert not normal.misfire and normal.scheduled_fire_time == T0 + timedelta(minutes=31)
    assert [e.misfire for e in executions(store)] == [True, False]
    assert len(fire_times(store)[job]) == 2


def test_fires_on_one_cube_coalesce_into_its_pending_batch(store: Store) -> None:
    [cube] = make_cubes(store, 1)
    incremental = add_schedule(store, cube, "0/10 * * * * ?", after=T0, full_build=False)
    full = add_schedule(store, cube, "5/10 * * * * ?", after=T0 + timedelta(seconds=10))
    clock = Clock(T0 + timedelta(seconds=10))
    node = scheduler(store, clock)
    [first] = node.tick()
    clock.now = T0 + timedelta(seconds=15)
    [second] = node.tick()
    assert first.job_id == incremental and not first.coalesced
    assert second.job_id == full and second.coalesced and second.batch_id == first.batch_id
    [batch] = all_batches(store)
    assert batch.batch_type == "full-rebuild"  # upgraded: the full request asked for more
    assert [e.coalesced for e in executions(store)] == [False, True]


def test_paused_schedule_does_not_fire_and_resumes_from_now(store: Store) -> None:
    [cube] = make_cubes(store, 1)
    job = add_schedule(store, cube, "0 * * * * ?", after=T0)
    with store.session() as s:
        pause_schedule(s, "default", job)
    clock = Clock(T0 + timedelta(minutes=10, seconds=30))
    node = scheduler(store, clock)
    assert node.tick() == [] and node.next_wake() is None
    with store.session() as s:
        resumed = resume_schedule(s, "default", job, now=clock.now)
        assert resumed.active and resumed.next_fire_at == T0 + timedelta(minutes=11)
    assert node.tick() == []  # the fires missed while paused are not made up
    clock.now = T0 + timedelta(minutes=11)
    [firing] = node.tick()
    assert not firing.misfire


def test_deleted_schedule_and_deleted_cube_do_not_fire(store: Store) -> None:
    cube_a, cube_b = make_cubes(store, 2)
    job_a = add_schedule(store, cube_a, "0 * * * * ?", after=T0)
    add_schedule(store, cube_b, "0 * * * * ?", after=T0)
    with store.session() as s:
        schedules.delete_schedule(s, "default", job_a)
        s.get(schedules.Schedule, job_a)  # still there for history
        from aggsched.store import catalog

        catalog.mark_cube_deleted(s, catalog.get_cube_by_id(s, "default", cube_b))
    assert scheduler(store, Clock(T0 + timedelta(minutes=1))).tick() == []
    assert executions(store) == []


@pytest.mark.parametrize("local_time", ["0 30 2 * * ?", "0 30 1 * * ?"])
def test_dst_transitions_fire_as_quartz(store: Store, local_time: str) -> None:
    zone = "America/New_York"
    [cube] = make_cubes(store, 1)
    spring = datetime(2024, 3, 8, tzinfo=UTC)
    autumn = datetime(2024, 11, 1, tzinfo=UTC)
    cron = CronExpression.parse(local_time, zone)
    for start in (spring, autumn):
        job = add_schedule(store, cube, local_time, after=start, time_zone=zone)
        clock = Clock(start)
        node = scheduler(store, clock)
        for _ in range(5):  # jump straight to each wake-up, as the loop sleeps until it
            clock.now = node.next_wake()
            node.tick()
        with store.session() as s:
            pause_schedule(s, "default", job)
        got = fire_times(store)[job]
        assert got == cron.next_n(start, 5)
        local_days = [t.astimezone(cron_zone(zone)).date() for t in got]
        assert len(set(local_days)) == 5  # one fire per local day, none doubled or lost
    assert not any(e.misfire for e in executions(store))


def cron_zone(name: str):
    from zoneinfo import ZoneInfo

    return ZoneInfo(name)


def test_dst_known_instants() -> None:
    """The real Quartz's answers (../shared/quartz-oracle, libquartz2-java 2.3.2)."""
    ny = "America/New_York"
    spring = CronExpression.parse("0 30 2 * * ?", ny).next_n(
        datetime(2024, 3, 9, 12, tzinfo=UTC), 2
    )
    autumn = CronExpression.parse("0 30 1 * * ?", ny).next_n(
        datetime(2024, 11, 2, 12, tzinfo=UTC), 2
    )
    # 2024-03-10 02:30 does not exist in New York: Quartz skips that day
    assert spring == [
        datetime(2024, 3, 11, 6, 30, tzinfo=UTC),
        datetime(2024, 3, 12, 6, 30, tzinfo=UTC),
    ]
    # 2024-11-03 01:30 happens twice: Quartz fires once, at the standard-time one (EST)
    assert autumn == [
        datetime(2024, 11, 3, 6, 30, tzinfo=UTC),
        datetime(2024, 11, 4, 6, 30, tzinfo=UTC),
    ]


def test_sqlite_second_node_refuses_to_schedule(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'meta.db'}")
    try:
        first = Scheduler(store, node_id="node-a")
        second = Scheduler(store, node_id="node-b")
        first.acquire_lease()
        with pytest.raises(LeaseHeldError, match="node-a already runs the scheduler"):
            second.acquire_lease()
        [cube] = make_cubes(store, 1)
        add_schedule(store, cube, "* * * * * ?", after=T0)
        assert second.tick() == []  # without the lease it never fires
        first.release_lease()
        second.acquire_lease()
        assert len(second.tick()) == 1  # misfire: fires once now
    finally:
        store.dispose()


@pytest.mark.postgres
def test_concurrent_nodes_fire_each_time_exactly_once(pg_database: str) -> None:
    """Four schedulers racing on one PostgreSQL, same clock: every fire stored once."""
    store = Store.open(pg_database)
    try:
        cubes = make_cubes(store, 20)
        jobs = [add_schedule(store, cubes[i % 20], "* * * * * ?", after=T0) for i in range(60)]
        clock = Clock(T0 + timedelta(seconds=1))
        nodes = [scheduler(store, clock, batch_size=7) for _ in range(4)]
        for step in range(1, 6):
            clock.now = T0 + timedelta(seconds=step)
            threads = [threading.Thread(target=node.tick) for node in nodes]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        times = fire_times(store)
        expected = [T0 + timedelta(seconds=s) for s in range(1, 6)]
        assert {job: times.get(job) for job in jobs} == {job: expected for job in jobs}
        # one pending batch per cube: fires on a cube coalesced even across nodes
        pending = [b for b in all_batches(store) if b.status == "pending"]
        assert sorted(str(b.cube_id) for b in pending) == sorted(str(c) for c in cubes)
    finally:
        store.dispose()


def test_change_feed_wakes_on_schedule_changes(store: Store) -> None:
    """In-process commit hook (both backends) and LISTEN/NOTIFY from another store (PG)."""
    feed = ChangeFeed(store)
    woken = threading.Event()
    feed.subscribe("aggsched_schedules", woken.set)
    feed.start()
    try:
        with store.session() as s:
            notify_schedules_changed(s)
            assert not woken.is_set()  # only at commit
        assert woken.wait(2)
        time.sleep(0.5)  # on PostgreSQL the LISTEN thread delivers the same commit again
        woken.clear()
        try:
            with store.session() as s:
                notify_schedules_changed(s)
                raise RuntimeError("roll back")
        except RuntimeError:
            pass
        assert not woken.wait(0.3)  # a rolled-back change announces nothing
        if store.dialect == "postgresql":
            other = Store.open(store.engine.url.render_as_string(hide_password=False))
            try:
                with other.session() as s:
                    notify_schedules_changed(s)
                assert woken.wait(3)
            finally:
                other.dispose()
    finally:
        feed.stop()
