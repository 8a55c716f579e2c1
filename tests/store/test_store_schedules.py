"""Schedules and executions: CRUD, soft delete keeps history, double fire, due claims."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from aggsched.api.envelope import timestamp
from aggsched.store import ConflictError, NotFoundError, Store
from aggsched.store import schedules as sch
from aggsched.store.batches import create_batch
from aggsched.store.models import Execution

T0 = datetime(2024, 6, 1, 8, tzinfo=UTC)


def _schedule(session, cube, next_fire_at=T0, **kw):
    return sch.create_schedule(
        session, org_id=cube.org_id, project_id=cube.project_id, cube_id=cube.cube_id,
        time_expression=kw.pop("expr", "0 0 2 * * ?"), next_fire_at=next_fire_at,
        created_by_user="admin", **kw,
    )  # fmt: skip


def test_schedule_round_trip_and_listing(store: Store, cube, cube_factory) -> None:
    other = cube_factory("orders")
    with store.session() as session:
        job = _schedule(session, cube, full_build=False, time_zone="Europe/Berlin")
        _schedule(session, other)
    with store.session() as session:
        got = sch.get_schedule(session, "default", job.job_id, cube_id=cube.cube_id)
        assert (got.time_expression, got.full_build, got.time_zone) == (
            "0 0 2 * * ?",
            False,
            "Europe/Berlin",
        )
        assert got.path == "aggregate/create" and got.active and got.next_fire_at == T0
        assert [s.job_id for s in sch.list_schedules(session, "default", cube.cube_id)] == [
            job.job_id
        ]
        with pytest.raises(NotFoundError, match=str(job.job_id)):
            sch.get_schedule(session, "default", job.job_id, cube_id=other.cube_id)
        with pytest.raises(NotFoundError):
            sch.get_schedule(session, "elsewhere", job.job_id)
        paused = sch.set_schedule_active(session, "default", job.job_id, False)
        assert not paused.active and paused.next_fire_at is None


def test_soft_deleted_schedule_keeps_its_history(store: Store, cube) -> None:
    with store.session() as session:
        job = _schedule(session, cube)
        for i in range(3):
            sch.record_execution(
                session, job, scheduled_fire_time=T0 + timedelta(days=i),
                executed_at=T0 + timedelta(days=i, seconds=1),
            )  # fmt: skip
        sch.delete_schedule(session, "default", job.job_id, cube_id=cube.cube_id)
    with store.session() as session:
        assert sch.list_schedules(session, "default", cube.cube_id) == []
        with pytest.raises(NotFoundError):
            sch.get_schedule(session, "default", job.job_id)
        gone = sch.get_schedule(session, "default", job.job_id, include_deleted=True)
        assert gone.deleted_at is not None and not gone.active
        rows, total = sch.execution_history(session, job.job_id, limit=2)
        assert total == 3
        assert [r.scheduled_fire_time for r in rows] == [
            T0 + timedelta(days=2),
            T0 + timedelta(days=1),
        ]
        rows, _ = sch.execution_history(session, job.job_id, limit=2, offset=2)
        assert [r.scheduled_fire_time for r in rows] == [T0]
        assert sch.latest_execution(session, job.job_id).scheduled_fire_time == T0 + timedelta(
            days=2
        )
        with pytest.raises(NotFoundError):
            sch.delete_schedule(session, "default", job.job_id)


def test_double_fire_is_rejected(store: Store, cube) -> None:
    with store.session() as session:
        job = _schedule(session, cube)
        sch.record_execution(session, job, scheduled_fire_time=T0)
    with pytest.raises(ConflictError, match="already fired"), store.session() as session:
        sch.record_execution(session, job, scheduled_fire_time=T0)
    with store.session() as session:
        assert sch.execution_history(session, job.job_id)[1] == 1


def test_schedule_page_with_each_newest_execution(store: Store, cube) -> None:
    with store.session() as session:
        jobs = [_schedule(session, cube) for _ in range(3)]
        batch = create_batch(
            session, org_id="default", project_id=cube.project_id, cube_id=cube.cube_id,
            batch_type="full-rebuild",
        )  # fmt: skip
        for i, job in enumerate(jobs[:2]):
            for k in range(i + 1):
                sch.record_execution(
                    session, job, scheduled_fire_time=T0 + timedelta(hours=k),
                    executed_at=T0 + timedelta(hours=k), batch_id=batch.id,
                )  # fmt: skip
    with store.session() as session:
        rows = sch.schedule_page(session, "default", cube.cube_id)
        assert [r.job_id for r in rows] == [str(j.job_id) for j in jobs]  # oldest first, text
        latest = {r.job_id: (r.latest_id, r.latest_at) for r in rows}
        newest = {e.job_id: e for e in session.scalars(select(Execution))
                  if e.executed_at == max(x.executed_at for x in session.scalars(
                      select(Execution).where(Execution.job_id == e.job_id)))}  # fmt: skip
        first, second = (str(jobs[i].job_id) for i in range(2))
        assert latest[first] == (str(newest[jobs[0].job_id].id), timestamp(T0))
        assert latest[second] == (
            str(newest[jobs[1].job_id].id),
            timestamp(T0 + timedelta(hours=1)),
        )
        assert latest[str(jobs[2].job_id)] == (None, None)  # never fired
        assert rows[0].created_at == timestamp(jobs[0].created_at)
        assert rows[0].next_fire_at == timestamp(jobs[0].next_fire_at)
        page = sch.schedule_page(session, "default", cube.cube_id, limit=1, offset=1)
        assert [r.job_id for r in page] == [second]
        sch.delete_schedule(session, "default", jobs[0].job_id)
        assert [r.job_id for r in sch.schedule_page(session, "default", cube.cube_id)] == [
            second, str(jobs[2].job_id)
        ]  # fmt: skip


def test_schedule_page_times_as_api_text(store: Store, cube) -> None:
    """Whole seconds and far-off years come back in ``timestamp()``'s exact form."""
    whole = datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC)
    with store.session() as session:
        job = _schedule(session, cube, next_fire_at=whole)
        sch.record_execution(
            session, job, scheduled_fire_time=whole, executed_at=whole + timedelta(microseconds=7)
        )
    with store.session() as session:
        (row,) = sch.schedule_page(session, "default", cube.cube_id)
        assert row.next_fire_at == "2031-05-06T07:08:09.000000Z" == timestamp(whole)
        assert row.latest_at == "2031-05-06T07:08:09.000007Z"
        sch.set_schedule_active(session, "default", job.job_id, False)
    with store.session() as session:
        (row,) = sch.schedule_page(session, "default", cube.cube_id)
        assert row.next_fire_at is None and row.active is False


def test_due_schedules_claim_only_active_due_ones(store: Store, cube) -> None:
    with store.session() as session:
        due = _schedule(session, cube, next_fire_at=T0)
        _schedule(session, cube, next_fire_at=T0 + timedelta(hours=1))
        _schedule(session, cube, next_fire_at=T0, active=False)
        deleted = _schedule(session, cube, next_fire_at=T0)
        sch.delete_schedule(session, "default", deleted.job_id)
        _schedule(session, cube, next_fire_at=None)
    with store.session() as session:
        claimed = sch.claim_due_schedules(session, now=T0 + timedelta(seconds=1))
        assert [s.job_id for s in claimed] == [due.job_id]
        sch.advance_schedules(session, {claimed[0].job_id: T0 + timedelta(days=1)})
    with store.session() as session:
        assert sch.claim_due_schedules(session, now=T0 + timedelta(seconds=1)) == []


@pytest.mark.postgres
def test_due_schedule_rows_are_locked_against_a_second_node(pg_database: str, tmp_path) -> None:
    store = Store.open(pg_database)
    try:
        with store.session() as session:
            from aggsched.store.catalog import upsert_cube, upsert_project

            project = upsert_project(session, "default", "p", name="p")
            cube = upsert_cube(session, project, "c", "c")
            job = sch.create_schedule(
                session, org_id="default", project_id=project.id, cube_id=cube.id,
                time_expression="0 * * * * ?", next_fire_at=T0,
            )  # fmt: skip
        holding = threading.Event()
        release = threading.Event()
        seen_by_second: list[list[uuid.UUID]] = []

        def first_node() -> None:
            with store.session() as session:
                assert [s.job_id for s in sch.claim_due_schedules(session, now=T0)] == [job.job_id]
                holding.set()
                release.wait(10)

        thread = threading.Thread(target=first_node)
        thread.start()
        assert holding.wait(10)
        with store.session() as session:
            seen_by_second.append([s.job_id for s in sch.claim_due_schedules(session, now=T0)])
        release.set()
        thread.join(10)
        assert seen_by_second == [[]]
    finally:
        store.dispose()
