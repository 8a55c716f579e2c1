"""Pydantic models of every payload (field names exactly as AtScale spells them).

Seed fields (DESIGN.md) are never renamed or dropped; extensions are additive and
documented per field. Timestamps are strings in ``envelope.timestamp`` format.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from aggsched.api.validation import Name, RequiredName, TimeExpression, Url, ZoneName
from aggsched.store.tokens import MAX_DAYS

T = TypeVar("T")

TIME = "RFC 3339 UTC with microseconds; 0001-01-01T00:00:00Z when it never happened"


class Page(BaseModel, Generic[T]):
    """A page of a list (extension: AtScale's aggregate lists use the same members)."""

    data: list[T]
    limit: int
    offset: int
    total: int


# --- builds ------------------------------------------------------------------------


class Batch(BaseModel):
    """One build batch, as in AtScale's builds history. A ``maintenance`` batch (one
    organization's maintenance run) has empty ``cubeId`` and ``projectId``."""

    batchType: str
    createDate: str = Field(description=TIME)
    cubeId: str
    endTime: str = Field(description=TIME)
    estimateTime: int = Field(description="estimated seconds")
    id: str
    organizationId: str
    projectId: str
    startTime: str = Field(description=TIME)
    status: str


class BuildHistory(BaseModel):
    data: list[Batch]
    force_pull: bool
    limit: int
    offset: int
    total: int = Field(description="extension: batches matching the filters")


class BatchInstance(BaseModel):
    """One aggregate a batch built or tried to build (extension)."""

    id: str
    definition_id: str
    definition_name: str
    status: str
    table_name: str | None
    table_schema: str | None
    number_of_rows: int | None
    seconds: float | None
    sql: str | None
    error: str | None
    message: str
    materialization_start_time: str = Field(description=TIME)
    materialization_end_time: str = Field(description=TIME)


class MaintenanceItem(BaseModel):
    """What one maintenance item did (or, in a dry run, would do)."""

    name: str = Field(description="health_check, stray_tables, expired_tables, history, ...")
    count: int = Field(description="changes made (dry run: that would be made)")
    actions: list[str]
    problems: list[str] = Field(description="what could not be checked or done")
    notes: list[str]


class BatchDetail(Batch):
    """A batch with what it did (extension)."""

    message: str
    requestedBy: str
    jobId: str
    cancelRequested: bool
    instances: list[BatchInstance]
    maintenance: list[MaintenanceItem] | None = Field(
        default=None, description="a maintenance batch: what each item did"
    )


class MaintenanceRun(BaseModel):
    """One maintenance run of an organization (extension)."""

    batch_id: str = Field(description="the maintenance batch recorded; empty for a dry run")
    organization_id: str
    dry_run: bool
    status: str
    message: str
    items: list[MaintenanceItem]


# --- schedules ---------------------------------------------------------------------


class LatestExecution(BaseModel):
    executedAt: str = Field(description=TIME)
    id: str
    jobId: str


class ScheduleOut(BaseModel):
    """A schedule. ``organization_Id`` is spelled as AtScale spells it."""

    created_at: str = Field(description=TIME)
    created_by_user: str
    cube_id: str
    full_build: bool
    job_id: str
    latest_execution: LatestExecution
    organization_Id: str
    path: str
    project_id: str
    time_expression: str
    time_zone: str = Field(description="extension: IANA zone the expression runs in")
    active: bool = Field(description="extension: false while paused")
    next_fire_at: str = Field(description="extension: " + TIME)


class ScheduleCreate(BaseModel):
    """POST scheduler body; the same names are also accepted as query parameters (a
    value in the body wins over the query parameter of the same name)."""

    model_config = ConfigDict(extra="ignore")

    time_expression: TimeExpression | None = Field(default=None, examples=["0 25 06 ? * *"])
    path: Name | None = Field(default=None, examples=["aggregate/create"])
    full_build: bool | None = None
    time_zone: ZoneName | None = Field(default=None, examples=["UTC"])


class ExecuteBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    full_build: bool | None = None


class ExecuteResult(BaseModel):
    success: bool
    batch_id: str = Field(description="extension: the queued (or already pending) batch")
    batchType: str = Field(description="extension")
    coalesced: bool = Field(description="extension: true when an already pending batch")


class ScheduleHistory(BaseModel):
    history: list[LatestExecution]
    job_id: str
    limit: int = Field(description="extension")
    offset: int = Field(description="extension")
    total: int = Field(description="extension")


# --- aggregates --------------------------------------------------------------------


class InstanceStats(BaseModel):
    materialization_start_time: str = Field(description=TIME)
    materialization_end_time: str = Field(description=TIME)
    build_duration: float = Field(description="seconds")
    number_of_rows: int
    hits: int = Field(0, description="logged queries this instance answered (extension)")
    last_hit: str = Field("0001-01-01T00:00:00Z", description=TIME)


class InstanceOut(BaseModel):
    id: str
    status: str
    message: str
    table_name: str
    table_schema: str
    connection_id: str
    stats: InstanceStats
    definition_id: str
    batch_id: str
    error: str
    organization_id: str
    cube_id: str
    created_at: str = Field(description=TIME)
    drop_after: str = Field(description=TIME)


class DefinitionAttributes(BaseModel):
    dimensions: list[str] = Field(description="attribute names (dimension.level)")
    metrics: list[str] = Field(description="metric names")


class DefinitionStats(BaseModel):
    number_of_instances: int
    number_of_rows: int = Field(description="rows of the latest instance (0 if none)")
    build_duration: float = Field(description="seconds of the latest instance (0 if none)")
    query_utilization: int = Field(0, description="logged queries its instances answered")


class DefinitionOut(BaseModel):
    id: str
    name: str
    unique_name: str
    type: str
    subtype: str
    incremental: bool
    organization_id: str
    project_id: str
    cube_id: str
    cube_name: str
    connection_id: str
    attributes: DefinitionAttributes
    stats: DefinitionStats
    latest_instance: InstanceOut | None
    blocked: bool
    status: str = Field(description="active | pending | invalid (derived from instances)")
    invalid_reason: str | None = Field(
        None, description="why the model's aggregate cannot be built as written"
    )
    justification: dict[str, Any] | None = Field(
        None,
        description="a demand-defined aggregate's reasons: the logged queries that justified "
        "it, its estimated benefit and rows",
    )


# --- catalog -----------------------------------------------------------------------


class ConnectionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: RequiredName
    url: Url = Field(description="may hold ${VAR} placeholders for secrets")
    aggregate_schema: RequiredName = "as_agg"
    database_override: Name | None = None
    schema_override: Name | None = None
    sql_dialect: str | None = Field(
        default=None,
        max_length=64,
        description="dialect the model's SQL on this connection is written in (snowflake, "
        "postgres, databricks, bigquery, duckdb ...); default: the SML connection's platform",
    )


class ConnectionOut(BaseModel):
    id: str
    name: str
    url: str = Field(description="as stored; a literal password is shown as ***")
    aggregate_schema: str
    database_override: str | None
    schema_override: str | None
    sql_dialect: str | None = Field(description="null: the SML connection's platform")
    created_at: str = Field(description=TIME)


class CubeOut(BaseModel):
    id: str
    name: str
    unique_name: str
    project_id: str
    organization_id: str
    created_at: str = Field(description=TIME)


class ProjectOut(BaseModel):
    id: str
    name: str
    unique_name: str
    version: str | None
    organization_id: str
    published_at: str = Field(description=TIME)
    published_by: str
    cubes: list[CubeOut]


class DefinitionChangeOut(BaseModel):
    cube: str
    definition: str
    change: str = Field(description="added | changed | unchanged | removed | invalid")
    reason: str | None = Field(None, description="why an invalid aggregate cannot be built")


class PublishOut(BaseModel):
    project_id: str
    project: str
    cubes: dict[str, str]
    changes: list[DefinitionChangeOut]
    queued_batches: list[str]
    warnings: list[str]


# --- API tokens --------------------------------------------------------------------


class ApiTokenCreate(BaseModel):
    """A long-lived API token for ``username`` (who must hold a role in the org)."""

    model_config = ConfigDict(extra="forbid")

    username: RequiredName
    days: int = Field(default=90, ge=1, le=MAX_DAYS, description="lifetime in days")
    name: Name = Field(default="", description="what the token is for")


class ApiTokenOut(BaseModel):
    id: str
    username: str
    organization_id: str
    name: str
    created_by: str
    created_at: str = Field(description=TIME)
    expires_at: str = Field(description=TIME)
    revoked_at: str = Field(description=TIME)
    status: str = Field(description="active | expired | revoked")


class ApiTokenCreated(ApiTokenOut):
    token: str = Field(description="the bearer token; shown once, only its hash is kept")


class WhoAmI(BaseModel):
    username: str
    organization_id: str
    roles: list[str]


class Health(BaseModel):
    status: str
