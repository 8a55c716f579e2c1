"""Run an organization's aggregate maintenance now (extension; AtScale runs it daily)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from aggsched.api import present, schemas
from aggsched.api.deps import OrgWrite, StoreDep
from aggsched.api.envelope import Envelope, ok
from aggsched.engine.maintenance import run_maintenance

router = APIRouter(prefix="/org/{orgId}/aggregates", tags=["maintenance"])


@router.post("/maintenance", response_model=Envelope[schemas.MaintenanceRun])
def maintenance_now(
    org: OrgWrite,
    store: StoreDep,
    dry_run: Annotated[
        bool, Query(description="true: report what would be done, change nothing")
    ] = False,
) -> dict[str, object]:
    """Run maintenance now and answer when it is done: health checks of the active
    aggregate tables, stray tables dropped, expired tables dropped, old history pruned.
    The run is recorded as a ``maintenance`` batch (builds history); 409 while another
    maintenance run of the organization is in progress."""
    report = run_maintenance(
        store, org.org_id, dry_run=dry_run, worker_id=f"api-{uuid.uuid4().hex[:8]}",
        requested_by=org.username,
    )  # fmt: skip
    return ok(present.maintenance_run(report))
