"""Retention: which history rows maintenance may delete, and deleting them in chunks.

What is kept, whatever its age (AtScale keeps the same): each schedule's latest execution
(the seed's ``latest_execution``), each cube's last ``keep_per_cube`` batches (an
organization's maintenance runs count as one more "cube"), and every batch still pending
or in progress. Instances and executions that point at a pruned batch keep their rows
with the link set to NULL (the foreign keys say ON DELETE SET NULL).

Ids are chosen in one query and deleted in chunks, so a large first prune does not hold
one huge transaction; rows chosen stay prunable (newer batches only push them further
down their cube's ranking).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from aggsched.store.models import BatchStatus, BuildBatch, Execution

FINAL = (BatchStatus.DONE.value, BatchStatus.FAILED.value, BatchStatus.CANCELLED.value)
CHUNK = 2000


def prunable_batches(
    session: Session, org_id: str, before: datetime, keep_per_cube: int
) -> list[uuid.UUID]:
    """Finished batches of the organization created before ``before`` that are not among
    their cube's ``keep_per_cube`` newest."""
    ranked = (
        select(
            BuildBatch.id,
            BuildBatch.create_date,
            BuildBatch.status,
            func.row_number()
            .over(
                partition_by=BuildBatch.cube_id,
                order_by=(BuildBatch.create_date.desc(), BuildBatch.id.desc()),
            )
            .label("n"),
        )
        .where(BuildBatch.org_id == org_id)
        .subquery()
    )
    stmt = select(ranked.c.id).where(
        ranked.c.n > keep_per_cube, ranked.c.create_date < before, ranked.c.status.in_(FINAL)
    )
    return list(session.scalars(stmt))


def prunable_executions(session: Session, org_id: str, before: datetime) -> list[uuid.UUID]:
    """Executions of the organization older than ``before``, except each schedule's
    latest one."""
    ranked = (
        select(
            Execution.id,
            Execution.executed_at,
            func.row_number()
            .over(
                partition_by=Execution.job_id,
                order_by=(Execution.executed_at.desc(), Execution.id.desc()),
            )
            .label("n"),
        )
        .where(Execution.org_id == org_id)
        .subquery()
    )
    stmt = select(ranked.c.id).where(ranked.c.n > 1, ranked.c.executed_at < before)
    return list(session.scalars(stmt))


def delete_batches(session: Session, ids: Sequence[uuid.UUID]) -> int:
    """Delete these batches (at most ``CHUNK`` per call is sensible); returns how many."""
    if not ids:
        return 0
    result = session.execute(
        delete(BuildBatch)
        .where(BuildBatch.id.in_(list(ids)), BuildBatch.status.in_(FINAL))
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def delete_executions(session: Session, ids: Sequence[uuid.UUID]) -> int:
    if not ids:
        return 0
    result = session.execute(
        delete(Execution)
        .where(Execution.id.in_(list(ids)))
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
