"""Schedules (``job_id``) and their executions (firings).

Deleting a schedule only stamps ``deleted_at``: the API's history endpoint must still
answer for a deleted job, and executions keep pointing at it. The cron text is validated
by ``aggsched.cron`` before it gets here; the store only keeps what it is given.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Select, bindparam, func, select, true, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from aggsched.store import wire
from aggsched.store._paging import page
from aggsched.store.errors import ConflictError, NotFoundError
from aggsched.store.models import Execution, Schedule
from aggsched.store.queue import claim_due_schedules
from aggsched.store.types import utcnow

__all__ = [
    "advance_schedules",
    "claim_due_schedules",
    "create_schedule",
    "delete_schedule",
    "earliest_next_fire",
    "execution_history",
    "get_schedule",
    "latest_execution",
    "list_schedules",
    "record_execution",
    "record_executions",
    "schedule_page",
    "set_schedule_active",
]


def create_schedule(
    session: Session,
    *,
    org_id: str,
    project_id: uuid.UUID,
    cube_id: uuid.UUID,
    time_expression: str,
    next_fire_at: datetime | None,
    time_zone: str = "UTC",
    path: str = "aggregate/create",
    full_build: bool = True,
    created_by_user: str = "",
    active: bool = True,
    now: datetime | None = None,
) -> Schedule:
    """A new schedule; ``next_fire_at`` comes from ``aggsched.cron`` (None: never fires)."""
    when = now or utcnow()
    schedule = Schedule(
        org_id=org_id, project_id=project_id, cube_id=cube_id,
        time_expression=time_expression, time_zone=time_zone, path=path,
        full_build=full_build, created_by_user=created_by_user, active=active,
        next_fire_at=next_fire_at, created_at=when, updated_at=when,
    )  # fmt: skip
    session.add(schedule)
    session.flush()
    return schedule


def list_schedules(
    session: Session, org_id: str, cube_id: uuid.UUID, *, include_deleted: bool = False
) -> list[Schedule]:
    """The cube's schedules, oldest first."""
    stmt = select(Schedule).where(Schedule.org_id == org_id, Schedule.cube_id == cube_id)
    if not include_deleted:
        stmt = stmt.where(Schedule.deleted_at.is_(None))
    return list(session.scalars(stmt.order_by(Schedule.created_at, Schedule.job_id)))


def get_schedule(
    session: Session,
    org_id: str,
    job_id: uuid.UUID,
    *,
    cube_id: uuid.UUID | None = None,
    include_deleted: bool = False,
) -> Schedule:
    """The schedule, if it is in that organization (and cube); deleted ones on request."""
    schedule = session.get(Schedule, job_id)
    if (
        schedule is None
        or schedule.org_id != org_id
        or (cube_id is not None and schedule.cube_id != cube_id)
        or (schedule.deleted_at is not None and not include_deleted)
    ):
        raise NotFoundError(f"jobId {job_id} not found")
    return schedule


def delete_schedule(
    session: Session,
    org_id: str,
    job_id: uuid.UUID,
    *,
    cube_id: uuid.UUID | None = None,
    now: datetime | None = None,
) -> Schedule:
    """Soft-delete: it stops firing, disappears from lists, keeps its history."""
    schedule = get_schedule(session, org_id, job_id, cube_id=cube_id)
    schedule.deleted_at = now or utcnow()
    schedule.active = False
    schedule.next_fire_at = None
    session.flush()
    return schedule


def set_schedule_active(
    session: Session,
    org_id: str,
    job_id: uuid.UUID,
    active: bool,
    *,
    next_fire_at: datetime | None = None,
) -> Schedule:
    """Pause or resume; resuming needs the next fire time computed from now."""
    schedule = get_schedule(session, org_id, job_id)
    schedule.active = active
    schedule.next_fire_at = next_fire_at if active else None
    session.flush()
    return schedule


def earliest_next_fire(session: Session) -> datetime | None:
    """When the next schedule is due (the scheduler sleeps until then); None: none is."""
    stmt = select(func.min(Schedule.next_fire_at)).where(
        Schedule.active.is_(True), Schedule.deleted_at.is_(None)
    )
    return session.scalar(stmt)


def advance_schedules(
    session: Session,
    next_fire_at: Mapping[uuid.UUID, datetime | None],
    now: datetime | None = None,
) -> None:
    """Set each job's next firing after one was handled (None: the expression has no
    more), in one statement, not one flush per row."""
    if not next_fire_at:
        return
    table = Schedule.__table__
    when = now or utcnow()
    if session.get_bind().dialect.name == "postgresql":
        moves = _unnest(table, ("job_id", "next_fire_at")).subquery("moves")
        stmt = (
            update(table)
            .where(table.c.job_id == moves.c[0])
            .values(next_fire_at=moves.c[1], updated_at=when)
        )
        session.execute(
            stmt, {"a_job_id": list(next_fire_at), "a_next_fire_at": [*next_fire_at.values()]}
        )
        return
    stmt = (
        update(table)
        .where(table.c.job_id == bindparam("b_job_id"))
        .values(next_fire_at=bindparam("b_next_fire_at"), updated_at=when)
    )
    params = [{"b_job_id": job, "b_next_fire_at": at} for job, at in next_fire_at.items()]
    session.execute(stmt, params)


def record_execution(
    session: Session,
    schedule: Schedule,
    *,
    scheduled_fire_time: datetime,
    executed_at: datetime | None = None,
    batch_id: uuid.UUID | None = None,
    misfire: bool = False,
    coalesced: bool = False,
) -> Execution:
    """Store one firing; ``ConflictError`` if that fire time was already recorded.

    The error leaves the transaction unusable on purpose: the caller's whole firing
    (batch, next_fire_at) must roll back with it.
    """
    execution = Execution(
        job_id=schedule.job_id, org_id=schedule.org_id, cube_id=schedule.cube_id,
        scheduled_fire_time=scheduled_fire_time, executed_at=executed_at or utcnow(),
        batch_id=batch_id, misfire=misfire, coalesced=coalesced,
    )  # fmt: skip
    session.add(execution)
    try:
        session.flush()
    except IntegrityError as exc:
        raise ConflictError(
            f"jobId {schedule.job_id} already fired for {scheduled_fire_time.isoformat()}"
        ) from exc
    return execution


_EXECUTION_COLUMNS = ("id", "job_id", "org_id", "cube_id", "scheduled_fire_time",
                      "executed_at", "batch_id", "misfire", "coalesced")  # fmt: skip


def record_executions(session: Session, rows: Sequence[Mapping[str, Any]]) -> set[uuid.UUID]:
    """Store many firings in one INSERT; returns the ids stored. A firing whose job and
    fire time were already recorded is not stored (and its id not returned): the caller
    compares and decides, the transaction stays usable. Each row has every column of
    ``_EXECUTION_COLUMNS``."""
    if not rows:
        return set()
    table = Execution.__table__
    if session.get_bind().dialect.name == "postgresql":
        # One array per column, unnested by the server: a single short statement whatever
        # the row count (multi-row VALUES makes the driver rewrite thousands of placeholders)
        stmt: Any = postgresql.insert(table).from_select(
            _EXECUTION_COLUMNS, _unnest(table, _EXECUTION_COLUMNS)
        )
        params: Any = {f"a_{name}": [row[name] for row in rows] for name in _EXECUTION_COLUMNS}
    else:
        stmt = sqlite.insert(table)  # executemany, batched into multi-row VALUES by SQLAlchemy
        params = [{name: row[name] for name in _EXECUTION_COLUMNS} for row in rows]
    stmt = stmt.on_conflict_do_nothing(index_elements=["job_id", "scheduled_fire_time"])
    return set(session.execute(stmt.returning(table.c.id), params).scalars())


def _unnest(table: Any, names: Sequence[str]) -> Select[Any]:
    """``SELECT unnest(:a_x), unnest(:a_y), ...``: PostgreSQL zips arrays of equal length
    into rows; each array is typed like its column, so values bind as they would alone.
    Bind ``a_<column>`` to the list of the column's values."""
    return select(*[
        func.unnest(bindparam(f"a_{name}", type_=postgresql.ARRAY(table.c[name].type)))
        for name in names
    ])  # fmt: skip


def execution_history(
    session: Session, job_id: uuid.UUID, *, limit: int = 100, offset: int = 0
) -> tuple[list[Execution], int]:
    """One page of the job's executions, newest first, and the total."""
    stmt = select(Execution).where(Execution.job_id == job_id)
    order = [Execution.executed_at.desc(), Execution.id.desc()]
    return page(session, stmt, order, limit, offset)


def latest_execution(session: Session, job_id: uuid.UUID) -> Execution | None:
    rows, _ = execution_history(session, job_id, limit=1)
    return rows[0] if rows else None


class ListedSchedule(NamedTuple):
    """One row of ``schedule_page``: ids and times already as API text (``wire``)."""

    job_id: str
    created_at: str
    created_by_user: str
    full_build: bool
    path: str
    time_expression: str
    time_zone: str
    active: bool
    next_fire_at: str | None
    latest_id: str | None
    latest_at: str | None


def _schedule_page_stmt(dialect: str) -> Select[Any]:
    """The statement behind ``schedule_page`` on ``dialect`` (built once per dialect: it
    only takes parameters).

    Each schedule's newest execution is one probe of the (job_id, executed_at, id)
    index. PostgreSQL reads it through a LATERAL join (joined on a correlated subquery
    instead, it plans a hash join over every execution ever recorded); SQLite has no
    LATERAL, and there the join on the correlated subquery's id is a primary-key lookup
    (two scalar subqueries, one per column, measured slower)."""
    newest = (
        select(Execution.id, Execution.executed_at)
        .where(Execution.job_id == Schedule.job_id)
        .order_by(Execution.executed_at.desc(), Execution.id.desc())
        .limit(1)
        .correlate(Schedule)
    )
    if dialect == "postgresql":
        latest: Any = newest.lateral("latest")
        on: Any = true()
    else:
        latest = aliased(Execution)
        on = latest.id == newest.with_only_columns(Execution.id).scalar_subquery()
    return (
        select(
            wire.uuid_text(Schedule.job_id),
            wire.utc_text(Schedule.created_at),
            Schedule.created_by_user,
            Schedule.full_build,
            Schedule.path,
            Schedule.time_expression,
            Schedule.time_zone,
            Schedule.active,
            wire.utc_text(Schedule.next_fire_at),
            wire.uuid_text(latest.c.id if dialect == "postgresql" else latest.id),
            wire.utc_text(latest.c.executed_at if dialect == "postgresql" else latest.executed_at),
        )
        .outerjoin(latest, on)
        .where(
            Schedule.org_id == bindparam("org_id"),
            Schedule.cube_id == bindparam("cube_id"),
            Schedule.deleted_at.is_(None),
        )
        .order_by(Schedule.created_at, Schedule.job_id)
        .limit(bindparam("limit"))
        .offset(bindparam("offset"))
    )


_SCHEDULE_PAGE = {name: _schedule_page_stmt(name) for name in ("postgresql", "sqlite")}


def schedule_page(
    session: Session,
    org_id: str,
    cube_id: uuid.UUID,
    *,
    limit: int | None = None,
    offset: int = 0,
) -> list[ListedSchedule]:
    """The cube's live schedules, oldest first (optionally one page), with each one's
    newest execution (``latest_id``/``latest_at``, None before the first); the request
    already knows the org, project and cube, so they are not read again.

    One query: the newest execution of each schedule is one probe of the (job_id,
    executed_at, id) index, never a scan of a long history. No ORM objects, UUIDs or
    datetimes are built (``wire``): for a list of 1,000 schedules those conversions
    cost several times the query itself."""
    connection = session.connection()
    dialect = connection.dialect.name
    as_uuid, as_utc = wire.finish_uuid(dialect), wire.finish_utc(dialect)
    params = {"org_id": org_id, "cube_id": cube_id, "offset": offset,
              "limit": -1 if limit is None and dialect == "sqlite" else limit}  # fmt: skip
    return [
        ListedSchedule(
            as_uuid(job_id), as_utc(created_at), user, bool(full_build), path, text, zone,  # type: ignore[arg-type]
            bool(active), as_utc(next_fire_at), as_uuid(latest_id), as_utc(latest_at),
        )
        for (job_id, created_at, user, full_build, path, text, zone, active, next_fire_at,
             latest_id, latest_at) in connection.execute(_SCHEDULE_PAGE[dialect], params)
    ]  # fmt: skip
