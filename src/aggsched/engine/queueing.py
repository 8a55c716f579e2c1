"""Queueing build batches: one pending batch per cube, with a time estimate.

Every way a batch is asked for (publish, the execute endpoint, a schedule firing, the
CLI) goes through `queue_batch`, so coalescing and estimates behave the same everywhere.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.orm import Session

from aggsched.engine.recovery import recover_cube
from aggsched.store import batches, catalog
from aggsched.store.models import (
    BatchType,
    BuildBatch,
    Cube,
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
    seconds = catalog.last_build_seconds(session, cube_id).values()
    return math.ceil(sum(s for s, active in seconds if not (only_missing and active)))


def queue_batch(
    session: Session,
    cube: Cube,
    batch_type: BatchType | str,
    *,
    requested_by: str = "",
    job_id: uuid.UUID | None = None,
    execution_id: uuid.UUID | None = None,
    stale_after: timedelta | None = None,
) -> Queued:
    """Queue a batch for `cube`, or return the batch already pending for it.

    A pending batch of the cube absorbs the request; when the request asks for more work
    than the waiting batch will do (materialize-pending < incremental < full rebuild), the
    waiting batch is upgraded, so no caller gets less than it asked for. With
    `stale_after`, the cube's batch in progress whose owner stopped heartbeating that long
    ago is recovered first (re-queued, then it absorbs the request), as workers would.
    """
    kind = BatchType(str(batch_type))
    catalog.lock_cube(session, cube.id)  # concurrent requests for the cube queue up here
    if stale_after is not None:
        recover_cube(session, cube, stale_after)
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
