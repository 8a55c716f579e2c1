"""Queueing build batches: one pending batch per cube, with a time estimate.

Every way a batch is asked for (publish, the execute endpoint, a schedule firing, the
CLI) goes through `queue_batch`, so coalescing and estimates behave the same everywhere.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from aggsched.store import batches, catalog
from aggsched.store.models import (
    AggregateDefinition,
    AggregateInstance,
    BatchType,
    BuildBatch,
    Cube,
    InstanceStatus,
)

_WORK = {
    BatchType.MATERIALIZE_PENDING: 0,
    BatchType.INCREMENTAL_REBUILD: 1,
    BatchType.FULL_REBUILD: 2,
}


@dataclass(frozen=True)
class Queued:
    """The batch a request ended up in; `coalesced` when it was already queued."""

    batch: BuildBatch
    coalesced: bool


def estimate_seconds(session: Session, cube_id: uuid.UUID, batch_type: BatchType | str) -> int:
    """Sum of the last build time of each definition the batch will build (0 if unknown)."""
    only_missing = str(batch_type) == BatchType.MATERIALIZE_PENDING.value
    definitions = session.scalars(
        select(AggregateDefinition).where(
            AggregateDefinition.cube_id == cube_id,
            AggregateDefinition.removed_at.is_(None),
            AggregateDefinition.blocked.is_(False),
        )
    )
    total = 0.0
    for definition in definitions:
        if only_missing and catalog.active_instance(session, definition.id) is not None:
            continue
        last = session.scalar(
            select(AggregateInstance.build_duration)
            .where(
                AggregateInstance.definition_id == definition.id,
                AggregateInstance.build_duration.is_not(None),
                AggregateInstance.status.in_(
                    [InstanceStatus.ACTIVE.value, InstanceStatus.DELETED.value]
                ),
            )
            .order_by(AggregateInstance.materialization_end_time.desc())
            .limit(1)
        )
        total += last or 0.0
    return math.ceil(total)


def queue_batch(
    session: Session,
    cube: Cube,
    batch_type: BatchType | str,
    *,
    requested_by: str = "",
    job_id: uuid.UUID | None = None,
    execution_id: uuid.UUID | None = None,
) -> Queued:
    """Queue a batch for `cube`, or return the batch already pending for it.

    A pending batch of the cube absorbs the request; when the request asks for more work
    than the waiting batch will do (materialize-pending < incremental < full rebuild), the
    waiting batch is upgraded, so no caller gets less than it asked for.
    """
    kind = BatchType(str(batch_type))
    catalog.lock_cube(session, cube.id)  # concurrent requests for the cube queue up here
    pending = batches.find_pending_batch(session, cube.id)
    if pending is not None:
        if _WORK[kind] > _WORK[BatchType(pending.batch_type)]:
            pending.batch_type = kind.value
            pending.estimate_time = estimate_seconds(session, cube.id, kind)
            session.flush()
        return Queued(pending, coalesced=True)
    batch = batches.create_batch(
        session,
        org_id=cube.org_id,
        project_id=cube.project_id,
        cube_id=cube.id,
        batch_type=kind,
        requested_by=requested_by,
        job_id=job_id,
        execution_id=execution_id,
        estimate_time=estimate_seconds(session, cube.id, kind),
    )
    return Queued(batch, coalesced=False)
