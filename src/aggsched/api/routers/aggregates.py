"""AtScale's aggregate endpoints: list definitions and instances, deactivate
(``?block=true``) and reactivate (``?unblock=true``)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy.orm import Session

from aggsched.api import present, schemas
from aggsched.api.deps import Limit, Offset, OrgRead, OrgWrite, StoreDep
from aggsched.api.envelope import Envelope, ok
from aggsched.api.errors import ApiError
from aggsched.api.validation import IsoDateTime
from aggsched.store import aggregates, api_views, limits, org_settings, utcnow
from aggsched.store import queries as query_log
from aggsched.store.models import (
    AggregateDefinition,
    Cube,
    DefinitionSubtype,
    InstanceStatus,
)

router = APIRouter(prefix="/aggregates/orgId/{orgId}", tags=["aggregates"])

LIVE = (InstanceStatus.PENDING.value, InstanceStatus.INPROGRESS.value, InstanceStatus.ACTIVE.value)


def definitions_page(
    session: Session, rows: list[AggregateDefinition]
) -> list[schemas.DefinitionOut]:
    """Definitions with their derived status, newest instance, counts and query
    utilization (6 queries)."""
    ids = [row.id for row in rows]
    statuses = api_views.definition_statuses(session, ids)
    latest = api_views.latest_instances(session, ids)
    counts = api_views.instance_counts(session, ids)
    used = query_log.definition_hits(session, ids)
    hits = query_log.instance_hits(session, [i.id for i in latest.values()])
    out = []
    for row in rows:
        cube = session.get(Cube, row.cube_id)
        out.append(
            present.definition(
                row,
                cube_name=cube.name if cube else "",
                status=statuses[row.id],
                latest=latest.get(row.id),
                instance_count=counts.get(row.id, 0),
                utilization=used[row.id].hits if row.id in used else 0,
                latest_hits=hits.get(latest[row.id].id) if row.id in latest else None,
            )
        )
    return out


@router.get("", response_model=Envelope[schemas.Page[schemas.DefinitionOut]])
def list_definitions(
    org: OrgRead,
    store: StoreDep,
    id: uuid.UUID | None = None,
    projectId: uuid.UUID | None = None,
    cubeId: uuid.UUID | None = None,
    status: Annotated[str | None, Query(pattern="^(active|invalid|pending)$")] = None,
    subtype: DefinitionSubtype | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> dict[str, object]:
    """Aggregate definitions; ``status`` is derived from their instances."""
    with store.session() as session:
        rows, total = api_views.list_definitions(
            session, org.org_id, definition_id=id, project_id=projectId, cube_id=cubeId,
            status=status, subtype=subtype.value if subtype else None, limit=limit,
            offset=offset,
        )  # fmt: skip
        data = definitions_page(session, rows)
    return ok(schemas.Page(data=data, limit=limit, offset=offset, total=total))


@router.get("/instances", response_model=Envelope[schemas.Page[schemas.InstanceOut]])
def list_instances(
    org: OrgRead,
    store: StoreDep,
    definitionId: uuid.UUID | None = None,
    projectId: uuid.UUID | None = None,
    cubeId: uuid.UUID | None = None,
    status: InstanceStatus | None = None,
    batchId: uuid.UUID | None = None,
    tableName: Annotated[str | None, Query(max_length=limits.NAME)] = None,
    startTime: Annotated[IsoDateTime | None, Query()] = None,
    endTime: Annotated[IsoDateTime | None, Query()] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> dict[str, object]:
    """Aggregate instances, newest first; ``startTime``/``endTime`` bound the
    materialization window (ISO-8601; a time without offset is UTC)."""
    with store.session() as session:
        rows, total = api_views.list_instances(
            session, org.org_id, definition_id=definitionId, project_id=projectId,
            cube_id=cubeId, status=status.value if status else None, batch_id=batchId,
            table_name=tableName, start_time=startTime, end_time=endTime,
            limit=limit, offset=offset,
        )  # fmt: skip
        hits = query_log.instance_hits(session, [r.id for r in rows])
        data = [present.instance(row, hits.get(row.id)) for row in rows]
    return ok(schemas.Page(data=data, limit=limit, offset=offset, total=total))


@router.delete(
    "/definitionId/{definitionId}/instanceId/{instanceId}",
    response_model=Envelope[schemas.InstanceOut],
)
def deactivate(
    org: OrgWrite,
    store: StoreDep,
    definitionId: uuid.UUID,
    instanceId: uuid.UUID,
    block: bool = False,
) -> dict[str, object]:
    """Deactivate an instance: it becomes ``deleted`` (its table is dropped after the
    organization's grace period, so running queries finish); with ``block=true`` the
    definition is not built again until unblocked."""
    with store.session() as session:
        definition = aggregates.get_definition(session, org.org_id, definitionId)
        instance = aggregates.get_instance(session, org.org_id, instanceId)
        if instance.definition_id != definition.id:
            raise ApiError(404, f"aggregate instance {instanceId} not found in {definitionId}")
        if instance.status != InstanceStatus.DELETED.value:
            aggregates.set_instance_status(
                session, instance.id, InstanceStatus.DELETED,
                drop_after=utcnow() + _drop_grace(session, org.org_id),
                message="deactivated through the API",
            )  # fmt: skip
        if block:
            aggregates.set_definition_blocked(session, org.org_id, definition.id, True)
        return ok(present.instance(instance))


def _drop_grace(session: Session, org_id: str) -> timedelta:
    seconds = org_settings.get_int_setting(session, org_id, "aggregates.instance.drop.graceSeconds")
    return timedelta(seconds=max(0, seconds))


@router.put("/definitionId/{definitionId}", response_model=Envelope[schemas.DefinitionOut])
def reactivate(
    org: OrgWrite, store: StoreDep, definitionId: uuid.UUID, unblock: bool = False
) -> dict[str, object]:
    """Reactivate (``unblock=true``): the definition may be built again; when it has no
    live instance a pending one is created so the next batch builds it."""
    with store.session() as session:
        definition = aggregates.get_definition(session, org.org_id, definitionId)
        if unblock:
            aggregates.set_definition_blocked(session, org.org_id, definition.id, False)
            live = aggregates.definition_instances(session, definition.id, LIVE)
            if not live and definition.removed_at is None:
                aggregates.create_instance(session, definition)
        return ok(definitions_page(session, [definition])[0])
