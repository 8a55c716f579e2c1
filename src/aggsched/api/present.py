"""ORM rows -> API payload models (the only place that knows both shapes)."""

from __future__ import annotations

import uuid
from typing import Any

from aggsched.api import schemas
from aggsched.api.envelope import ZERO_TIME, timestamp
from aggsched.engine.maintenance import MaintenanceReport
from aggsched.store import tokens
from aggsched.store.models import (
    AggregateDefinition,
    AggregateInstance,
    ApiToken,
    BuildBatch,
    Connection,
    Cube,
    Execution,
    Project,
    Schedule,
)
from aggsched.store.queries import HitStats
from aggsched.store.schedules import ListedSchedule
from aggsched.warehouse.url import redact_url


def _id(value: uuid.UUID | None) -> str:
    return "" if value is None else str(value)


def batch(row: BuildBatch) -> schemas.Batch:
    return schemas.Batch(
        batchType=row.batch_type, createDate=timestamp(row.create_date),
        cubeId=_id(row.cube_id), endTime=timestamp(row.end_time),
        estimateTime=row.estimate_time, id=str(row.id), organizationId=row.org_id,
        projectId=_id(row.project_id), startTime=timestamp(row.start_time), status=row.status,
    )  # fmt: skip


def maintenance_items(details: dict[str, Any] | None) -> list[schemas.MaintenanceItem] | None:
    """The per-item record of a maintenance batch (None for a build batch)."""
    if not details:
        return None
    return [schemas.MaintenanceItem.model_validate(item) for item in details.get("items", [])]


def maintenance_run(report: MaintenanceReport) -> schemas.MaintenanceRun:
    return schemas.MaintenanceRun(
        batch_id=_id(report.batch_id), organization_id=report.org_id, dry_run=report.dry_run,
        status=report.status.value, message=report.message,
        items=maintenance_items(report.details()) or [],
    )  # fmt: skip


def batch_instance(row: AggregateInstance, definition_name: str) -> schemas.BatchInstance:
    return schemas.BatchInstance(
        id=str(row.id), definition_id=str(row.definition_id), definition_name=definition_name,
        status=row.status, table_name=row.table_name, table_schema=row.table_schema,
        number_of_rows=row.number_of_rows, seconds=row.build_duration, sql=row.sql,
        error=row.error, message=row.message or "",
        materialization_start_time=timestamp(row.materialization_start_time),
        materialization_end_time=timestamp(row.materialization_end_time),
    )  # fmt: skip


def batch_detail(row: BuildBatch, instances: list[schemas.BatchInstance]) -> schemas.BatchDetail:
    return schemas.BatchDetail(
        **batch(row).model_dump(), message=row.message or "", requestedBy=row.requested_by,
        jobId=_id(row.job_id), cancelRequested=row.cancel_requested, instances=instances,
        maintenance=maintenance_items(row.details),
    )  # fmt: skip


def execution(row: Execution | None) -> schemas.LatestExecution:
    """An execution; before the first one, empty strings and the zero time (AtScale)."""
    if row is None:
        return schemas.LatestExecution(executedAt=timestamp(None), id="", jobId="")
    return schemas.LatestExecution(
        executedAt=timestamp(row.executed_at), id=str(row.id), jobId=str(row.job_id)
    )


def schedule(row: Schedule, latest: Execution | None) -> schemas.ScheduleOut:
    return schemas.ScheduleOut(
        created_at=timestamp(row.created_at), created_by_user=row.created_by_user,
        cube_id=str(row.cube_id), full_build=row.full_build, job_id=str(row.job_id),
        latest_execution=execution(latest), organization_Id=row.org_id, path=row.path,
        project_id=str(row.project_id), time_expression=row.time_expression,
        time_zone=row.time_zone, active=row.active, next_fire_at=timestamp(row.next_fire_at),
    )  # fmt: skip


def listed_schedules(
    rows: list[ListedSchedule], org_id: str, project_id: uuid.UUID, cube_id: uuid.UUID
) -> list[dict[str, object]]:
    """``schedules.schedule_page`` rows (ids and times already API text) as
    ``ScheduleOut`` JSON objects, built directly: a list answers with a thousand of
    these, and a model, a UUID or a datetime per item costs more than the query. The
    org, project and cube are the request's, the same for every item."""
    project, cube = str(project_id), str(cube_id)
    never = {"executedAt": ZERO_TIME, "id": "", "jobId": ""}
    return [
        {
            "created_at": created_at, "created_by_user": user, "cube_id": cube,
            "full_build": full_build, "job_id": job_id,
            "latest_execution": (
                {"executedAt": latest_at, "id": latest_id, "jobId": job_id}
                if latest_id is not None else never
            ),
            "organization_Id": org_id, "path": path, "project_id": project,
            "time_expression": text, "time_zone": zone, "active": active,
            "next_fire_at": next_fire_at or ZERO_TIME,
        }
        for (job_id, created_at, user, full_build, path, text, zone, active, next_fire_at,
             latest_id, latest_at) in rows
    ]  # fmt: skip


def instance(row: AggregateInstance, hits: HitStats | None = None) -> schemas.InstanceOut:
    stats = schemas.InstanceStats(
        materialization_start_time=timestamp(row.materialization_start_time),
        materialization_end_time=timestamp(row.materialization_end_time),
        build_duration=row.build_duration or 0.0, number_of_rows=row.number_of_rows or 0,
        hits=hits.hits if hits else 0, last_hit=timestamp(hits.last_hit if hits else None),
    )  # fmt: skip
    return schemas.InstanceOut(
        id=str(row.id), status=row.status, message=row.message or "",
        table_name=row.table_name or "", table_schema=row.table_schema or "",
        connection_id=row.connection_id or "", stats=stats,
        definition_id=str(row.definition_id), batch_id=_id(row.batch_id),
        error=row.error or "", organization_id=row.org_id, cube_id=str(row.cube_id),
        created_at=timestamp(row.created_at), drop_after=timestamp(row.drop_after),
    )  # fmt: skip


def _names(items: Any) -> list[str]:
    if not isinstance(items, list):
        return []
    return [str(item.get("name", "")) for item in items if isinstance(item, dict)]


def definition(
    row: AggregateDefinition,
    *,
    cube_name: str,
    status: str,
    latest: AggregateInstance | None,
    instance_count: int,
    utilization: int = 0,
    latest_hits: HitStats | None = None,
) -> schemas.DefinitionOut:
    spec = row.spec or {}
    stats = schemas.DefinitionStats(
        number_of_instances=instance_count,
        number_of_rows=(latest.number_of_rows or 0) if latest else 0,
        build_duration=(latest.build_duration or 0.0) if latest else 0.0,
        query_utilization=utilization,
    )
    attributes = schemas.DefinitionAttributes(
        dimensions=_names(spec.get("attributes")), metrics=_names(spec.get("metrics"))
    )
    return schemas.DefinitionOut(
        id=str(row.id), name=row.name, unique_name=row.unique_name, type=row.type,
        subtype=row.subtype, incremental=row.incremental, organization_id=row.org_id,
        project_id=str(row.project_id), cube_id=str(row.cube_id), cube_name=cube_name,
        connection_id=row.connection_id, attributes=attributes, stats=stats,
        latest_instance=instance(latest, latest_hits) if latest else None, blocked=row.blocked,
        status=status, invalid_reason=row.invalid_reason, justification=row.justification,
    )  # fmt: skip


def connection(row: Connection) -> schemas.ConnectionOut:
    return schemas.ConnectionOut(
        id=str(row.id), name=row.name, url=redact_url(row.url),
        aggregate_schema=row.aggregate_schema, database_override=row.database_override,
        schema_override=row.schema_override, sql_dialect=row.sql_dialect,
        created_at=timestamp(row.created_at),
    )  # fmt: skip


def cube(row: Cube) -> schemas.CubeOut:
    return schemas.CubeOut(
        id=str(row.id), name=row.name, unique_name=row.unique_name,
        project_id=str(row.project_id), organization_id=row.org_id,
        created_at=timestamp(row.created_at),
    )  # fmt: skip


def project(row: Project, cubes: list[Cube]) -> schemas.ProjectOut:
    return schemas.ProjectOut(
        id=str(row.id), name=row.name, unique_name=row.unique_name, version=row.version,
        organization_id=row.org_id, published_at=timestamp(row.published_at),
        published_by=row.published_by or "", cubes=[cube(c) for c in cubes],
    )  # fmt: skip


def api_token(row: ApiToken, username: str) -> schemas.ApiTokenOut:
    return schemas.ApiTokenOut(
        id=str(row.id), username=username, organization_id=row.org_id, name=row.name,
        created_by=row.created_by, created_at=timestamp(row.created_at),
        expires_at=timestamp(row.expires_at), revoked_at=timestamp(row.revoked_at),
        status=tokens.token_status(row),
    )  # fmt: skip
