"""The advisor (extension): demand-defined aggregates from the query log, on request."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from aggsched.api.deps import CubeId, OrgWrite, ProjectId, StoreDep, find_cube
from aggsched.api.envelope import Envelope, ok
from aggsched.api.errors import ApiError
from aggsched.engine.advisor import Advisor, AdvisorFailed, report_json

router = APIRouter(tags=["aggregates"])


@router.post(
    "/org/{orgId}/project/{projectId}/cube/{cubeId}/aggregates/advise",
    response_model=Envelope[dict[str, Any]],
)
def advise(
    org: OrgWrite,
    store: StoreDep,
    projectId: ProjectId,
    cubeId: CubeId,
    apply: Annotated[bool, Query(description="create the proposals (default: a dry run)")] = False,
) -> dict[str, object]:
    """Propose demand-defined aggregates for the cube from its query log (what each would
    cost, what it saves, which queries justify it) and the ones to retire; ``apply=true``
    creates and retires them. Every run is recorded as an ``advisor`` batch."""
    with store.session() as session:
        find_cube(session, org.org_id, projectId, cubeId)
    advisor = Advisor(store)
    try:
        report, batch_id = advisor.advise_and_record(
            org.org_id, cubeId, apply=apply, requested_by=org.username
        )
    except AdvisorFailed as exc:
        raise ApiError(502, f"the advisor failed: {exc} (batch {exc.batch_id})") from exc
    return ok({**report_json(report), "batch_id": str(batch_id)})
