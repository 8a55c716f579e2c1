"""The contended SQL in one place: claiming batches, due schedules, stale-batch recovery.

PostgreSQL: ``SELECT ... FOR UPDATE SKIP LOCKED`` so concurrent workers/scheduler nodes
each get different rows without waiting on each other. SQLite renders no FOR UPDATE, but
it has a single writer, and every claim is one ``UPDATE ... WHERE status = 'pending'``
statement, so two processes can never both move the same row out of ``pending``.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, exists, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from aggsched.store.models import BatchStatus, BatchType, BuildBatch, Schedule
from aggsched.store.types import utcnow

PENDING = BatchStatus.PENDING.value
INPROGRESS = BatchStatus.INPROGRESS.value


def _cube_busy() -> ColumnElement[bool]:
    """Another batch of the same cube is in progress (one cube is never built twice)."""
    running = aliased(BuildBatch)
    return exists().where(running.cube_id == BuildBatch.cube_id, running.status == INPROGRESS)


def _claim(
    session: Session, which: ColumnElement[bool], worker_id: str, now: datetime | None
) -> BuildBatch | None:
    """Move the pending batch matched by ``which`` to ``inprogress`` for ``worker_id``:
    one UPDATE ... WHERE status = 'pending', so two claimers never both win."""
    when = now or utcnow()
    stmt = (
        update(BuildBatch)
        .where(which, BuildBatch.status == PENDING)
        .values(
            status=INPROGRESS,
            worker_id=worker_id,
            start_time=when,
            heartbeat_at=when,
            attempts=BuildBatch.attempts + 1,
        )
        .returning(BuildBatch.id)
        .execution_options(synchronize_session=False)
    )
    try:
        with session.begin_nested():  # a lost race must not spoil the caller's transaction
            batch_id: uuid.UUID | None = session.execute(stmt).scalar_one_or_none()
    except IntegrityError:  # another claimer started this cube a moment earlier
        return None
    if batch_id is None:
        return None
    return session.get(BuildBatch, batch_id, populate_existing=True)


def claim_next_batch(
    session: Session,
    worker_id: str,
    now: datetime | None = None,
    *,
    exclude_cube_ids: Collection[uuid.UUID] = (),
) -> BuildBatch | None:
    """Claim the oldest claimable pending batch for ``worker_id``.

    A batch is claimable when no other batch of the same cube is in progress. Batches of
    ``exclude_cube_ids`` are left for others (a worker whose warehouse connection is
    saturated). Returns None when nothing is claimable.
    """
    conditions = [BuildBatch.status == PENDING, ~_cube_busy()]
    if exclude_cube_ids:
        conditions.append(BuildBatch.cube_id.not_in(list(exclude_cube_ids)))
    candidate = (
        select(BuildBatch.id)
        .where(*conditions)
        .order_by(BuildBatch.create_date, BuildBatch.id)
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    return _claim(session, BuildBatch.id == candidate, worker_id, now)


def claim_batch(
    session: Session, batch_id: uuid.UUID, worker_id: str, now: datetime | None = None
) -> BuildBatch | None:
    """Claim one given pending batch (a foreground build); None if it is not claimable:
    already taken, closed, or its cube has another batch in progress."""
    return _claim(session, (BuildBatch.id == batch_id) & ~_cube_busy(), worker_id, now)


def claim_due_schedules(
    session: Session, now: datetime | None = None, limit: int = 100
) -> list[Row[Any]]:
    """Active, not deleted schedules whose ``next_fire_at`` has come, row-locked.

    Rows of the columns firing needs (``job_id``, ``org_id``, ``project_id``,
    ``cube_id``, ``time_expression``, ``time_zone``, ``full_build``, ``next_fire_at``),
    not ORM objects: a pass fires hundreds of them and never changes them one by one.
    The caller fires them (executions + batches + new ``next_fire_at``) in the same
    transaction; other scheduler nodes skip the locked rows meanwhile.
    """
    stmt = (
        select(
            Schedule.job_id,
            Schedule.org_id,
            Schedule.project_id,
            Schedule.cube_id,
            Schedule.time_expression,
            Schedule.time_zone,
            Schedule.full_build,
            Schedule.next_fire_at,
        )
        .where(
            Schedule.active.is_(True),
            Schedule.deleted_at.is_(None),
            Schedule.next_fire_at <= (now or utcnow()),
        )
        .order_by(Schedule.next_fire_at, Schedule.job_id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list(session.execute(stmt))


def _stale(
    stale_before: datetime,
    org_id: str | None,
    cube_id: uuid.UUID | None,
    batch_id: uuid.UUID | None,
) -> list[ColumnElement[bool]]:
    conditions = [BuildBatch.status == INPROGRESS, BuildBatch.heartbeat_at < stale_before]
    if org_id is not None:
        conditions.append(BuildBatch.org_id == org_id)
    if cube_id is not None:
        conditions.append(BuildBatch.cube_id == cube_id)
    if batch_id is not None:
        conditions.append(BuildBatch.id == batch_id)
    return conditions


def any_stale_batch(
    session: Session,
    *,
    stale_before: datetime,
    org_id: str | None = None,
    cube_id: uuid.UUID | None = None,
    batch_id: uuid.UUID | None = None,
) -> bool:
    """Whether a batch (of the organization, cube, or that batch) lost its worker: one
    cheap read, so callers on hot paths recover only when there is something to."""
    stmt = select(BuildBatch.id).where(*_stale(stale_before, org_id, cube_id, batch_id))
    return session.scalar(stmt.limit(1)) is not None


def stale_batch_cubes(
    session: Session, *, stale_before: datetime, cube_ids: Iterable[uuid.UUID]
) -> list[tuple[str, uuid.UUID]]:
    """(organization, cube) of each of these cubes whose batch in progress lost its worker:
    one read for a whole scheduler pass, usually answering nothing."""
    wanted = list(cube_ids)
    if not wanted:
        return []
    stmt = (
        select(BuildBatch.org_id, BuildBatch.cube_id)
        .where(*_stale(stale_before, None, None, None), BuildBatch.cube_id.in_(wanted))
        .distinct()
    )
    return [(org_id, cube_id) for org_id, cube_id in session.execute(stmt)]


def recover_stale_batches(
    session: Session,
    *,
    stale_before: datetime,
    max_attempts: int,
    now: datetime | None = None,
    org_id: str | None = None,
    cube_id: uuid.UUID | None = None,
    batch_id: uuid.UUID | None = None,
) -> list[BuildBatch]:
    """Batches whose worker stopped heartbeating: requeue them, or fail them when spent.

    A batch already claimed ``max_attempts`` times becomes ``failed``; the others go back
    to ``pending`` so another worker picks them up. Returns the batches changed. With
    ``org_id`` only that organization's batches (each has its own max attempts setting);
    with ``cube_id`` or ``batch_id`` only that cube's or that batch. A maintenance run is
    never re-queued (no worker runs one): it fails, and the next fire runs maintenance
    again.
    """
    when = now or utcnow()
    conditions = _stale(stale_before, org_id, cube_id, batch_id)
    stale = select(BuildBatch).where(*conditions).with_for_update(skip_locked=True)
    batches = list(session.scalars(stale))
    for batch in batches:
        spent = batch.attempts >= max_attempts or batch.batch_type == BatchType.MAINTENANCE
        if batch.cancel_requested or spent:
            batch.status = (
                BatchStatus.CANCELLED.value if batch.cancel_requested else BatchStatus.FAILED.value
            )
            batch.end_time = when
            batch.message = f"worker {batch.worker_id} stopped responding"
        else:
            batch.status = PENDING
        batch.worker_id = None
        batch.heartbeat_at = None
    session.flush()
    return batches
