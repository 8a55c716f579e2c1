"""Build batches: queueing, history, the worker lifecycle (claim, heartbeat, finish, cancel).

Status only moves forward: ``pending -> inprogress -> done|failed|cancelled`` (or
``pending -> cancelled``). Every transition is a guarded UPDATE, so a late worker cannot
overwrite a batch that recovery or a cancel already closed.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session

from aggsched.store.errors import ConflictError, InvalidValueError, NotFoundError
from aggsched.store.models import BatchStatus, BatchType, BuildBatch, Cube
from aggsched.store.queue import claim_next_batch, recover_stale_batches
from aggsched.store.types import utcnow

__all__ = [
    "cancel_or_request",
    "claim_next_batch",
    "create_batch",
    "find_pending_batch",
    "finish_batch",
    "get_batch",
    "heartbeat_batch",
    "inprogress_batch",
    "insert_batches",
    "lock_pending_batches",
    "recover_stale_batches",
    "upgrade_pending_batches",
]

_FINAL = frozenset({BatchStatus.DONE, BatchStatus.FAILED, BatchStatus.CANCELLED})


def create_batch(
    session: Session,
    *,
    org_id: str,
    project_id: uuid.UUID,
    cube_id: uuid.UUID,
    batch_type: BatchType | str,
    requested_by: str = "",
    job_id: uuid.UUID | None = None,
    execution_id: uuid.UUID | None = None,
    estimate_time: int = 0,
    now: datetime | None = None,
) -> BuildBatch:
    """Queue a new ``pending`` batch for one cube."""
    builds = [t for t in BatchType if t.is_build]
    try:
        kind = BatchType(str(batch_type)).value
    except ValueError:
        kind = None
    if kind is None or not BatchType(kind).is_build:  # never queued for a worker
        allowed = ", ".join(t.value for t in builds)
        raise InvalidValueError(f"batch type {batch_type!r} is not one of: {allowed}")
    batch = BuildBatch(
        org_id=org_id, project_id=project_id, cube_id=cube_id, batch_type=kind,
        status=BatchStatus.PENDING.value, create_date=now or utcnow(),
        requested_by=requested_by, job_id=job_id, execution_id=execution_id,
        estimate_time=estimate_time,
    )  # fmt: skip
    session.add(batch)
    session.flush()
    return batch


def record_run(
    session: Session,
    cube: Cube,
    batch_type: BatchType,
    *,
    status: BatchStatus,
    started: datetime,
    ended: datetime,
    message: str,
    details: dict[str, Any] | None = None,
    requested_by: str = "",
) -> BuildBatch:
    """Record a finished run that is not a build (an advisor run) in the cube's history."""
    if batch_type.is_build:
        raise InvalidValueError(f"{batch_type.value} batches are queued, not recorded")
    batch = BuildBatch(
        org_id=cube.org_id, project_id=cube.project_id, cube_id=cube.id,
        batch_type=batch_type.value, status=status.value, create_date=started,
        start_time=started, end_time=ended, message=message[:4000], details=details,
        requested_by=requested_by, attempts=1,
    )  # fmt: skip
    session.add(batch)
    session.flush()
    return batch


def get_batch(session: Session, batch_id: uuid.UUID, org_id: str | None = None) -> BuildBatch:
    batch = session.get(BuildBatch, batch_id)
    if batch is None or (org_id is not None and batch.org_id != org_id):
        raise NotFoundError(f"build batch {batch_id} not found")
    return batch


def inprogress_batch(session: Session, cube_id: uuid.UUID) -> BuildBatch | None:
    """The cube's batch in progress, if any (there is at most one)."""
    stmt = select(BuildBatch).where(
        BuildBatch.cube_id == cube_id, BuildBatch.status == BatchStatus.INPROGRESS.value
    )
    return session.scalar(stmt.limit(1))


def find_pending_batch(
    session: Session, cube_id: uuid.UUID, batch_type: BatchType | str | None = None
) -> BuildBatch | None:
    """The oldest queued batch of the cube (to coalesce requests instead of queueing more).

    The row is locked (PostgreSQL), so a worker cannot claim it while the caller joins a
    request to it; a batch claimed a moment earlier no longer matches and is not returned.
    """
    stmt = select(BuildBatch).where(
        BuildBatch.cube_id == cube_id, BuildBatch.status == BatchStatus.PENDING.value
    )
    if batch_type is not None:
        stmt = stmt.where(BuildBatch.batch_type == str(batch_type))
    stmt = stmt.order_by(BuildBatch.create_date, BuildBatch.id).limit(1).with_for_update()
    return session.scalar(stmt)


def lock_pending_batches(session: Session, cube_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Any]:
    """``find_pending_batch`` for many cubes in one statement: each cube's oldest queued
    batch as a row (``id``, ``batch_type``), locked like ``find_pending_batch`` locks it.

    The caller holds the cubes' locks (``catalog.lock_cubes``), which is what orders
    concurrent queuers; the batch rows are locked so a worker cannot claim one while a
    request joins it.
    """
    wanted = list(set(cube_ids))
    if not wanted:
        return {}
    stmt = (
        select(BuildBatch.id, BuildBatch.cube_id, BuildBatch.batch_type)
        .where(BuildBatch.cube_id.in_(wanted), BuildBatch.status == BatchStatus.PENDING.value)
        .order_by(BuildBatch.create_date, BuildBatch.id)
        .with_for_update()
    )
    oldest: dict[uuid.UUID, Any] = {}
    for row in session.execute(stmt):
        oldest.setdefault(row.cube_id, row)
    return oldest


def insert_batches(session: Session, rows: Sequence[Mapping[str, Any]]) -> None:
    """Queue many ``pending`` batches in one executemany INSERT (ids chosen by the
    caller). Each row has the ``create_batch`` columns; ``status`` is set here."""
    if not rows:
        return
    pending = BatchStatus.PENDING.value
    values = [{**row, "status": pending, "batch_type": BatchType(row["batch_type"]).value}
              for row in rows]  # fmt: skip
    session.execute(insert(BuildBatch.__table__), values)


def upgrade_pending_batches(
    session: Session, upgrades: Mapping[uuid.UUID, tuple[BatchType, int]]
) -> None:
    """Give still-pending batches more work: batch id -> (batch type, estimate seconds)."""
    if not upgrades:
        return
    table = BuildBatch.__table__
    stmt = (
        update(table)
        .where(table.c.id == bindparam("b_id"), table.c.status == BatchStatus.PENDING.value)
        .values(batch_type=bindparam("b_type"), estimate_time=bindparam("b_estimate"))
    )
    params = [{"b_id": batch_id, "b_type": BatchType(kind).value, "b_estimate": estimate}
              for batch_id, (kind, estimate) in upgrades.items()]  # fmt: skip
    session.execute(stmt, params)


def heartbeat_batch(
    session: Session, batch_id: uuid.UUID, worker_id: str, now: datetime | None = None
) -> BuildBatch | None:
    """Record that ``worker_id`` is still running the batch.

    Returns the batch (check ``cancel_requested``), or None when the worker no longer
    owns it (recovered or closed meanwhile) and must stop.
    """
    stmt = (
        update(BuildBatch)
        .where(
            BuildBatch.id == batch_id,
            BuildBatch.worker_id == worker_id,
            BuildBatch.status == BatchStatus.INPROGRESS.value,
        )
        .values(heartbeat_at=now or utcnow())
        .returning(BuildBatch.id)
        .execution_options(synchronize_session=False)
    )
    if session.execute(stmt).scalar_one_or_none() is None:
        return None
    return session.get(BuildBatch, batch_id, populate_existing=True)


def finish_batch(
    session: Session,
    batch_id: uuid.UUID,
    status: BatchStatus | str,
    *,
    worker_id: str | None = None,
    message: str = "",
    now: datetime | None = None,
) -> BuildBatch:
    """Close an in-progress batch as done, failed or cancelled.

    With ``worker_id`` the batch must still belong to that worker. Raises
    ``ConflictError`` when the batch is no longer in progress (or owned).
    """
    final = BatchStatus(str(status))
    if final not in _FINAL:
        raise InvalidValueError(f"batch can only finish as done/failed/cancelled, not {final}")
    conditions = [BuildBatch.id == batch_id, BuildBatch.status == BatchStatus.INPROGRESS.value]
    if worker_id is not None:
        conditions.append(BuildBatch.worker_id == worker_id)
    stmt = (
        update(BuildBatch)
        .where(*conditions)
        .values(status=final.value, end_time=now or utcnow(), message=message)
        .returning(BuildBatch.id)
        .execution_options(synchronize_session=False)
    )
    if session.execute(stmt).scalar_one_or_none() is None:
        current = get_batch(session, batch_id)
        raise ConflictError(f"build batch {batch_id} is {current.status}, not in progress")
    return session.get(BuildBatch, batch_id, populate_existing=True)  # type: ignore[return-value]


def cancel_or_request(
    session: Session, batch_id: uuid.UUID, now: datetime | None = None
) -> BuildBatch:
    """Cancel a pending batch at once; ask the worker to stop an in-progress one.

    A batch already closed is returned unchanged (cancelling is idempotent).
    """
    batch = session.get(BuildBatch, batch_id, with_for_update=True)
    if batch is None:
        raise NotFoundError(f"build batch {batch_id} not found")
    if batch.status == BatchStatus.PENDING.value:
        batch.status = BatchStatus.CANCELLED.value
        batch.end_time = now or utcnow()
        batch.message = "cancelled before it started"
    elif batch.status == BatchStatus.INPROGRESS.value:
        batch.cancel_requested = True
    session.flush()
    return batch
