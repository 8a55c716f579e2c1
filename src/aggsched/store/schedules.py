"""Schedules (``job_id``) and their executions (firings).

Deleting a schedule only stamps ``deleted_at``: the API's history endpoint must still
answer for a deleted job, and executions keep pointing at it. The cron text is validated
by ``aggsched.cron`` before it gets here; the store only keeps what it is given.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from aggsched.store._paging import page
from aggsched.store.errors import ConflictError, NotFoundError
from aggsched.store.models import Execution, Schedule
from aggsched.store.queue import claim_due_schedules
from aggsched.store.types import utcnow

__all__ = [
    "advance_schedule",
    "claim_due_schedules",
    "create_schedule",
    "delete_schedule",
    "earliest_next_fire",
    "execution_history",
    "get_schedule",
    "latest_execution",
    "latest_executions",
    "list_schedules",
    "record_execution",
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


def advance_schedule(session: Session, schedule: Schedule, next_fire_at: datetime | None) -> None:
    """Set the next firing after one was handled (None: the expression has no more)."""
    schedule.next_fire_at = next_fire_at
    session.flush()


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


def latest_executions(session: Session, job_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Execution]:
    """The newest execution of each job (for listing schedules in one query)."""
    ids = list(job_ids)
    if not ids:
        return {}
    newest = (
        select(Execution.job_id, func.max(Execution.executed_at).label("at"))
        .where(Execution.job_id.in_(ids))
        .group_by(Execution.job_id)
        .subquery()
    )
    stmt = (
        select(Execution)
        .join(
            newest, (Execution.job_id == newest.c.job_id) & (Execution.executed_at == newest.c.at)
        )
        .order_by(Execution.id)
    )
    return {execution.job_id: execution for execution in session.scalars(stmt)}
