"""Build batches: AtScale's history list (seed), plus batch detail and cancel."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request
from sqlalchemy.orm import Session

from aggsched.api import present, schemas
from aggsched.api.bookmarks import HistoryBookmarks
from aggsched.api.deps import Limit, Offset, OrgRead, OrgWrite, StoreDep
from aggsched.api.envelope import Envelope, ok
from aggsched.api.totals import TotalCounter
from aggsched.store import aggregates, api_views, batches
from aggsched.store.models import BatchStatus, BatchType

router = APIRouter(prefix="/org/{orgId}/aggregates-creation/builds", tags=["builds"])


@router.get("/history", response_model=Envelope[schemas.BuildHistory])
def build_history(
    request: Request,
    org: OrgRead,
    store: StoreDep,
    limit: Limit = 10,
    offset: Offset = 0,
    force_pull: bool = False,
    projectId: uuid.UUID | None = None,
    cubeId: uuid.UUID | None = None,
    status: BatchStatus | None = None,
    batchType: BatchType | None = None,
) -> dict[str, object]:
    """The organization's batches, newest first (filters and ``total`` are extensions;
    on very large histories ``total`` may lag new batches by a few seconds)."""
    filters = {"project_id": projectId, "cube_id": cubeId,
               "status": status.value if status else None,
               "batch_type": batchType.value if batchType else None}  # fmt: skip
    stmt = api_views.batch_history_stmt(org.org_id, **filters)
    counter: TotalCounter = request.app.state.totals
    bookmarks: HistoryBookmarks = request.app.state.bookmarks
    with store.session() as session:
        if status is None and batchType is None:  # rows never leave such a listing
            listing = ("history", org.org_id, projectId, cubeId)
            rows = bookmarks.page(session, listing, stmt, limit, offset)
        else:
            rows = api_views.batch_history_page(session, stmt, limit, offset)
        total = counter.total(session, ("history", org.org_id, *filters.values()), stmt)
        data = [present.batch(row) for row in rows]
    payload = schemas.BuildHistory(
        data=data, force_pull=force_pull, limit=limit, offset=offset, total=total
    )
    return ok(payload)


def _detail(session: Session, batch_id: uuid.UUID, org_id: str) -> schemas.BatchDetail:
    row = batches.get_batch(session, batch_id, org_id)
    instances = []
    for inst in aggregates.batch_instances(session, row.id):
        definition = aggregates.get_definition(session, org_id, inst.definition_id)
        instances.append(present.batch_instance(inst, definition.name))
    return present.batch_detail(row, instances)


@router.get("/{batchId}", response_model=Envelope[schemas.BatchDetail])
def build_detail(org: OrgRead, store: StoreDep, batchId: uuid.UUID) -> dict[str, object]:
    """One batch and each aggregate instance it built (status, rows, seconds, SQL, error)."""
    with store.session() as session:
        return ok(_detail(session, batchId, org.org_id))


@router.post("/{batchId}/cancel", response_model=Envelope[schemas.BatchDetail])
def cancel_build(org: OrgWrite, store: StoreDep, batchId: uuid.UUID) -> dict[str, object]:
    """Cancel a pending batch at once, or ask the worker to stop a running one
    (``cancelRequested``); a finished batch is returned unchanged."""
    with store.session() as session:
        batches.get_batch(session, batchId, org.org_id)
        batches.cancel_or_request(session, batchId)
        return ok(_detail(session, batchId, org.org_id))
