"""Queueing build batches: one pending batch per cube, with a time estimate.

Every way a batch is asked for (publish, the execute endpoint, a schedule firing, the
CLI) goes through `queue_batch`, so coalescing and estimates behave the same everywhere.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from aggsched.engine.recovery import recover_cube
from aggsched.store import aggregates, batches, catalog
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
    return _estimate(aggregates.last_build_seconds(session, cube_id), batch_type)


def _estimate(seconds: Mapping[uuid.UUID, tuple[float, bool]], batch_type: BatchType | str) -> int:
    only_missing = str(batch_type) == BatchType.MATERIALIZE_PENDING.value
    return math.ceil(sum(s for s, active in seconds.values() if not (only_missing and active)))


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


# ---------------------------------------------------------------- many requests at once


@dataclass(frozen=True)
class BatchRequest:
    """One request of a set-based ``queue_batches`` call (a schedule's fire, say)."""

    cube_id: uuid.UUID
    org_id: str
    project_id: uuid.UUID
    batch_type: BatchType
    requested_by: str = ""
    job_id: uuid.UUID | None = None
    execution_id: uuid.UUID | None = None


@dataclass(frozen=True)
class QueuedId:
    """Where a request went: the batch's id; ``coalesced`` when it joined one."""

    batch_id: uuid.UUID
    coalesced: bool


def queue_batches(
    session: Session, requests: Sequence[BatchRequest], now: datetime
) -> list[QueuedId]:
    """``queue_batch`` for many requests in a few statements, not a few per request.

    The caller holds the locks of the requests' cubes (``catalog.lock_cubes``), taken in
    one statement in id order. Per cube, the same rules as ``queue_batch``, applied in
    request order: the cube's pending batch absorbs every request (upgraded when one asks
    for more work); a cube without one gets one new batch, made for its first request
    and absorbing the others. Statements: one SELECT of the pending batches, and only when
    needed one SELECT of build times (estimates), one INSERT, one UPDATE.
    """
    pending = batches.lock_pending_batches(session, {r.cube_id for r in requests})
    wanted: dict[uuid.UUID, BatchType] = {}  # cube -> most work asked of its batch
    new: dict[uuid.UUID, dict[str, object]] = {}  # cube -> row of its new batch
    out: list[QueuedId] = []
    for r in requests:
        kind = BatchType(r.batch_type)
        current = wanted.get(r.cube_id)
        if current is None or _WORK[kind] > _WORK[current]:
            wanted[r.cube_id] = kind
        if (row := pending.get(r.cube_id)) is not None:
            out.append(QueuedId(row.id, coalesced=True))
        elif (made := new.get(r.cube_id)) is not None:
            out.append(QueuedId(made["id"], coalesced=True))  # type: ignore[arg-type]
        else:
            batch_id = uuid.uuid4()
            new[r.cube_id] = {
                "id": batch_id, "org_id": r.org_id, "project_id": r.project_id,
                "cube_id": r.cube_id, "create_date": now, "requested_by": r.requested_by,
                "job_id": r.job_id, "execution_id": r.execution_id,
            }  # fmt: skip
            out.append(QueuedId(batch_id, coalesced=False))
    upgrade = {
        cube: wanted[cube]
        for cube, row in pending.items()
        if cube in wanted and _WORK[wanted[cube]] > _WORK[BatchType(row.batch_type)]
    }
    seconds = aggregates.last_build_seconds_by_cube(session, [*new, *upgrade])
    for cube, row in new.items():
        row["batch_type"] = wanted[cube]
        row["estimate_time"] = _estimate(seconds.get(cube, {}), wanted[cube])
    batches.insert_batches(session, list(new.values()))
    batches.upgrade_pending_batches(session, {
        pending[cube].id: (kind, _estimate(seconds.get(cube, {}), kind))
        for cube, kind in upgrade.items()
    })  # fmt: skip
    return out
