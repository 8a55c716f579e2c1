"""SQLAlchemy 2 typed ORM models: the whole metadata schema (see DESIGN.md vocabulary).

Later work adds columns, not tables, so every concept the API, build engine, scheduler and
workers need already has its table here. Enumerated values are plain strings guarded by
named CHECK constraints (portable across SQLite and PostgreSQL, no native enum types to
migrate). Indexes are ascending only: a B-tree scanned backwards serves ``ORDER BY ...
DESC`` on both backends, and plain column indexes compare cleanly in ``alembic check``.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from aggsched.planning.plan import BatchType
from aggsched.store import limits
from aggsched.store.types import UTCDateTime, utcnow

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

DEFAULT_ORG_ID = "default"


class Role(StrEnum):
    ADMIN = "admin"
    AGGREGATES_MANAGE = "aggregates_manage"
    AGGREGATES_VIEW = "aggregates_view"


class DefinitionType(StrEnum):
    USER_DEFINED = "user_defined"
    SYSTEM_DEFINED = "system_defined"


class DefinitionSubtype(StrEnum):
    MANUAL = "manual"
    PREDICTION_DEFINED = "prediction_defined"
    DEMAND_DEFINED = "demand_defined"


class InstanceStatus(StrEnum):
    PENDING = "pending"
    INPROGRESS = "inprogress"
    ACTIVE = "active"
    FAILED = "failed"
    CANCELLED = "cancelled"
    DELETED = "deleted"
    INVALID = "invalid"


class BatchStatus(StrEnum):
    PENDING = "pending"
    INPROGRESS = "inprogress"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


def _one_of(column: str, enum: type[StrEnum], name: str) -> CheckConstraint:
    """A named CHECK constraint limiting ``column`` to the values of ``enum``."""
    values = ", ".join(f"'{member.value}'" for member in enum)
    return CheckConstraint(f"{column} IN ({values})", name=name)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
    }


def _org_fk() -> Mapped[str]:
    return mapped_column(String(limits.ORG_ID), ForeignKey("organizations.id"), index=True)


def _created() -> Mapped[datetime]:
    return mapped_column(default=utcnow)


def _updated() -> Mapped[datetime]:
    return mapped_column(default=utcnow, onupdate=utcnow)


class Organization(Base):
    """A tenant (``orgId``). The ``default`` organization is created by the migration."""

    __tablename__ = "organizations"
    id: Mapped[str] = mapped_column(String(limits.ORG_ID), primary_key=True)
    name: Mapped[str] = mapped_column(String(limits.NAME))
    created_at: Mapped[datetime] = _created()


class User(Base):
    """A login. Only the argon2 hash of the password is kept."""

    __tablename__ = "users"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    username: Mapped[str] = mapped_column(String(limits.NAME), unique=True)
    password_hash: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = _created()


class Membership(Base):
    """One role of one user in one organization (a user may hold several roles)."""

    __tablename__ = "memberships"
    __table_args__ = (_one_of("role", Role, "role"),)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    org_id: Mapped[str] = mapped_column(
        String(limits.ORG_ID), ForeignKey("organizations.id"), primary_key=True
    )
    role: Mapped[str] = mapped_column(String(limits.ENUM), primary_key=True)


class OrgSetting(Base):
    """AtScale-style per-organization setting (``aggregates.batch.max.failures`` ...)."""

    __tablename__ = "settings"
    org_id: Mapped[str] = mapped_column(
        String(limits.ORG_ID), ForeignKey("organizations.id"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(limits.NAME), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Connection(Base):
    """An SML connection name mapped to a warehouse URL (``${ENV}`` placeholders only)."""

    __tablename__ = "connections"
    __table_args__ = (UniqueConstraint("org_id", "name"),)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    org_id: Mapped[str] = _org_fk()
    name: Mapped[str] = mapped_column(String(limits.NAME))
    url: Mapped[str] = mapped_column(Text)
    aggregate_schema: Mapped[str] = mapped_column(String(limits.NAME), default="as_agg")
    database_override: Mapped[str | None] = mapped_column(String(limits.NAME))
    schema_override: Mapped[str | None] = mapped_column(String(limits.NAME))
    # the dialect the model's SQL on this connection is written in (sqlglot name);
    # None: the SML connection's platform decides
    sql_dialect: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = _created()


class Project(Base):
    """One published SML repository (catalog); republishing updates it in place."""

    __tablename__ = "projects"
    __table_args__ = (UniqueConstraint("org_id", "unique_name"),)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    org_id: Mapped[str] = _org_fk()
    unique_name: Mapped[str] = mapped_column(String(limits.NAME))
    name: Mapped[str] = mapped_column(String(limits.NAME))
    version: Mapped[str | None] = mapped_column(String(limits.VERSION))
    source_digest: Mapped[str | None] = mapped_column(String(limits.DIGEST))
    published_at: Mapped[datetime] = _created()
    published_by: Mapped[str | None] = mapped_column(String(limits.NAME))


class Cube(Base):
    """One SML model of a project. Soft-deleted when a republish drops the model."""

    __tablename__ = "cubes"
    __table_args__ = (UniqueConstraint("project_id", "unique_name"),)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    project_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    org_id: Mapped[str] = _org_fk()
    unique_name: Mapped[str] = mapped_column(String(limits.NAME))
    name: Mapped[str] = mapped_column(String(limits.NAME))
    created_at: Mapped[datetime] = _created()
    deleted_at: Mapped[datetime | None]
    # the queryable model (planning.cube.CubeSpec as JSON), written at each publish
    query_spec: Mapped[str | None] = mapped_column(Text)
    spec_updated_at: Mapped[datetime | None]


class AggregateDefinition(Base):
    """What an aggregate contains (attributes + metrics of one cube), not a table."""

    __tablename__ = "aggregate_definitions"
    __table_args__ = (
        UniqueConstraint("cube_id", "unique_name"),
        _one_of("type", DefinitionType, "type"),
        _one_of("subtype", DefinitionSubtype, "subtype"),
    )
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    org_id: Mapped[str] = _org_fk()
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    cube_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("cubes.id", ondelete="CASCADE"), index=True
    )
    unique_name: Mapped[str] = mapped_column(String(limits.NAME))
    name: Mapped[str] = mapped_column(String(limits.NAME))
    type: Mapped[str] = mapped_column(String(limits.ENUM))
    subtype: Mapped[str] = mapped_column(String(limits.ENUM))
    fingerprint: Mapped[str] = mapped_column(String(limits.DIGEST))
    spec: Mapped[dict[str, Any]] = mapped_column(default=dict)
    fact_dataset: Mapped[str] = mapped_column(String(limits.NAME))
    connection_id: Mapped[str] = mapped_column(String(limits.NAME))
    incremental: Mapped[bool] = mapped_column(default=False)
    blocked: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()
    removed_at: Mapped[datetime | None]
    # set when the model's aggregate cannot be built as written (the precise reason); such
    # a definition is listed as `invalid` and never built
    invalid_reason: Mapped[str | None] = mapped_column(Text)
    # the stable view named after the definition in the aggregate schema, and the table
    # it selects from now (None: no view exists)
    view_name: Mapped[str | None] = mapped_column(String(limits.NAME))
    view_schema: Mapped[str | None] = mapped_column(String(limits.NAME))
    view_table: Mapped[str | None] = mapped_column(String(limits.NAME))
    # a demand-defined aggregate's reasons: the logged queries that justified it, its
    # estimated benefit and rows, the advisor run that made it
    justification: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class AggregateInstance(Base):
    """One materialization (one warehouse table) of a definition.

    The partial unique index keeps at most one ``active`` instance per definition, so a
    racing second activation fails in the database instead of leaving two live tables.
    """

    __tablename__ = "aggregate_instances"
    __table_args__ = (
        _one_of("status", InstanceStatus, "status"),
        Index(
            "uq_aggregate_instances_one_active",
            "definition_id",
            unique=True,
            sqlite_where=text("status = 'active'"),
            postgresql_where=text("status = 'active'"),
        ),
        Index("ix_aggregate_instances_org_cube_status", "org_id", "cube_id", "status"),
        Index("ix_aggregate_instances_drop_after", "drop_after"),
    )
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    definition_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("aggregate_definitions.id", ondelete="CASCADE"), index=True
    )
    org_id: Mapped[str] = mapped_column(String(limits.ORG_ID), ForeignKey("organizations.id"))
    cube_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cubes.id", ondelete="CASCADE"))
    batch_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("build_batches.id", ondelete="SET NULL"), index=True
    )
    status: Mapped[str] = mapped_column(String(limits.ENUM), default=InstanceStatus.PENDING.value)
    message: Mapped[str] = mapped_column(Text, default="")
    table_name: Mapped[str | None] = mapped_column(String(limits.NAME))
    table_schema: Mapped[str | None] = mapped_column(String(limits.NAME))
    connection_id: Mapped[str | None] = mapped_column(String(limits.NAME))
    number_of_rows: Mapped[int | None] = mapped_column(Integer)
    build_duration: Mapped[float | None] = mapped_column(Float)
    materialization_start_time: Mapped[datetime | None]
    materialization_end_time: Mapped[datetime | None]
    sql: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    source_instance_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("aggregate_instances.id", ondelete="SET NULL")
    )
    watermark: Mapped[str | None] = mapped_column(Text)
    drop_after: Mapped[datetime | None]
    table_dropped_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()


class Schedule(Base):
    """A Quartz cron schedule on a cube (``job_id``); soft-deleted so history stays."""

    __tablename__ = "schedules"
    __table_args__ = (
        Index("ix_schedules_active_next_fire_at", "active", "next_fire_at"),
        Index("ix_schedules_org_cube_created", "org_id", "cube_id", "created_at", "job_id"),
    )
    job_id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    org_id: Mapped[str] = mapped_column(String(limits.ORG_ID), ForeignKey("organizations.id"))
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    cube_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cubes.id", ondelete="CASCADE"))
    time_expression: Mapped[str] = mapped_column(String(limits.TIME_EXPRESSION))
    time_zone: Mapped[str] = mapped_column(String(limits.TIME_ZONE), default="UTC")
    path: Mapped[str] = mapped_column(String(limits.NAME), default="aggregate/create")
    full_build: Mapped[bool] = mapped_column(default=True)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = _created()
    created_by_user: Mapped[str] = mapped_column(String(limits.NAME), default="")
    next_fire_at: Mapped[datetime | None]
    deleted_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = _updated()


class Execution(Base):
    """One firing of a schedule; UNIQUE(job_id, scheduled_fire_time) stops double fires."""

    __tablename__ = "executions"
    __table_args__ = (
        UniqueConstraint("job_id", "scheduled_fire_time"),
        Index("ix_executions_job_id_executed_at_id", "job_id", "executed_at", "id"),
    )
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("schedules.job_id", ondelete="CASCADE"))
    org_id: Mapped[str] = mapped_column(String(limits.ORG_ID), ForeignKey("organizations.id"))
    cube_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cubes.id", ondelete="CASCADE"))
    scheduled_fire_time: Mapped[datetime]
    executed_at: Mapped[datetime] = _created()
    batch_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("build_batches.id", ondelete="SET NULL")
    )
    misfire: Mapped[bool] = mapped_column(default=False)
    coalesced: Mapped[bool] = mapped_column(default=False)


class BuildBatch(Base):
    """One run of the build engine for one cube, queued then claimed by a worker.

    A ``maintenance`` batch records one maintenance run of a whole organization: it has
    no project or cube (both NULL) and keeps what each maintenance item did in
    ``details``; it is never ``pending``, so build workers never claim one.
    """

    __tablename__ = "build_batches"
    __table_args__ = (
        _one_of("batch_type", BatchType, "batch_type"),
        _one_of("status", BatchStatus, "status"),
        Index("ix_build_batches_history", "org_id", "create_date", "id"),
        Index("ix_build_batches_cube_history", "org_id", "cube_id", "create_date", "id"),
        Index("ix_build_batches_claim", "status", "create_date"),
        Index(
            "uq_build_batches_one_inprogress_per_cube",
            "cube_id",
            unique=True,
            sqlite_where=text("status = 'inprogress'"),
            postgresql_where=text("status = 'inprogress'"),
        ),
    )
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    org_id: Mapped[str] = mapped_column(String(limits.ORG_ID), ForeignKey("organizations.id"))
    project_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE")
    )
    cube_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("cubes.id", ondelete="CASCADE"))
    batch_type: Mapped[str] = mapped_column(String(limits.BATCH_TYPE))
    status: Mapped[str] = mapped_column(String(limits.ENUM), default=BatchStatus.PENDING.value)
    create_date: Mapped[datetime] = _created()
    start_time: Mapped[datetime | None]
    end_time: Mapped[datetime | None]
    estimate_time: Mapped[int] = mapped_column(default=0)
    message: Mapped[str] = mapped_column(Text, default="")
    requested_by: Mapped[str] = mapped_column(String(limits.NAME), default="")
    job_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("schedules.job_id", ondelete="SET NULL")
    )
    execution_id: Mapped[uuid.UUID | None]
    worker_id: Mapped[str | None] = mapped_column(String(limits.NAME))
    heartbeat_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(default=0)
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    details: Mapped[dict[str, Any] | None]


class MaintenanceSchedule(Base):
    """When an organization's upkeep job fires next: ``maintenance`` (health checks,
    stray tables, history) and ``advisor`` (demand-defined aggregates), one row each.

    The cron expression is the organization's setting for the job; the copy kept here
    shows when the setting changed, so the next fire is recomputed.
    """

    __tablename__ = "maintenance_schedules"
    org_id: Mapped[str] = mapped_column(
        String(limits.ORG_ID), ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    job: Mapped[str] = mapped_column(String(limits.ENUM), primary_key=True, default="maintenance")
    time_expression: Mapped[str] = mapped_column(String(limits.TIME_EXPRESSION))
    next_fire_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = _updated()


class SizeEstimate(Base):
    """An estimated row count (of an aggregate's grain, or a fact) in the warehouse,
    cached per cube so the advisor does not estimate the same grain on every run."""

    __tablename__ = "size_estimates"
    cube_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("cubes.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    rows: Mapped[float] = mapped_column(Float)
    estimated_at: Mapped[datetime] = _created()


class QueryLog(Base):
    """One semantic query: what it asked, the grain it needed, what answered it, how long
    it took. The advisor learns from it; hit counts and query utilization come from it."""

    __tablename__ = "query_log"
    __table_args__ = (
        Index("ix_query_log_org_created", "org_id", "created_at"),
        Index("ix_query_log_cube_created", "cube_id", "created_at"),
    )
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    org_id: Mapped[str] = mapped_column(String(limits.ORG_ID), ForeignKey("organizations.id"))
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    cube_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cubes.id", ondelete="CASCADE"))
    username: Mapped[str] = mapped_column(String(limits.NAME), default="")
    created_at: Mapped[datetime] = _created()
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    filter_attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    grain: Mapped[dict[str, Any]] = mapped_column(default=dict)
    grain_key: Mapped[str] = mapped_column(String(64), default="")
    served_by: Mapped[str] = mapped_column(String(limits.ENUM), default="base")
    duration_ms: Mapped[float] = mapped_column(Float, default=0.0)
    planning_ms: Mapped[float] = mapped_column(Float, default=0.0)
    rows: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    sql: Mapped[str | None] = mapped_column(Text)


class QueryHit(Base):
    """An aggregate instance that answered (part of) a logged query."""

    __tablename__ = "query_hits"
    __table_args__ = (
        Index("ix_query_hits_instance", "instance_id", "created_at"),
        Index("ix_query_hits_definition", "definition_id", "created_at"),
    )
    query_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("query_log.id", ondelete="CASCADE"), primary_key=True
    )
    instance_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    definition_id: Mapped[uuid.UUID] = mapped_column()
    created_at: Mapped[datetime] = _created()


class ApiToken(Base):
    """A long-lived API token of one user in one organization (AtScale's last 90 days),
    for scripts; browser sessions keep short JWTs. Only the SHA-256 of the secret is kept
    (the secret is 256 random bits, so a fast hash is enough: nothing to brute-force).
    Revoking stamps ``revoked_at``; every request checks it, so it takes effect at once."""

    __tablename__ = "api_tokens"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    token_hash: Mapped[str] = mapped_column(String(limits.DIGEST), unique=True)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    org_id: Mapped[str] = _org_fk()
    name: Mapped[str] = mapped_column(String(limits.NAME), default="")
    created_by: Mapped[str] = mapped_column(String(limits.NAME), default="")
    created_at: Mapped[datetime] = _created()
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class Lease(Base):
    """A named, expiring lock (the single scheduler node on SQLite)."""

    __tablename__ = "leases"
    name: Mapped[str] = mapped_column(String(limits.NAME), primary_key=True)
    holder: Mapped[str] = mapped_column(String(limits.NAME))
    expires_at: Mapped[datetime]


__all__ = [
    "DEFAULT_ORG_ID",
    "AggregateDefinition",
    "AggregateInstance",
    "ApiToken",
    "Base",
    "BatchStatus",
    "BatchType",
    "BuildBatch",
    "Connection",
    "Cube",
    "DefinitionSubtype",
    "DefinitionType",
    "Execution",
    "InstanceStatus",
    "Lease",
    "MaintenanceSchedule",
    "Membership",
    "OrgSetting",
    "Organization",
    "Project",
    "QueryHit",
    "QueryLog",
    "Role",
    "Schedule",
    "SizeEstimate",
    "User",
]
