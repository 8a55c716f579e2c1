"""Maintenance: each organization's next fire, the run records, and the reads it checks.

A run is a ``build_batches`` row of type ``maintenance`` with no project or cube. It is
created ``inprogress`` by the node that runs it (never ``pending``, so build workers never
claim it); at most one runs per organization at a time. Its ``details`` hold what each
maintenance item did.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from aggsched.store import batches
from aggsched.store.errors import ConflictError, NotFoundError
from aggsched.store.models import (
    AggregateDefinition,
    AggregateInstance,
    BatchStatus,
    BatchType,
    BuildBatch,
    Connection,
    InstanceStatus,
    MaintenanceSchedule,
    Organization,
)
from aggsched.store.types import utcnow

MAINTENANCE = BatchType.MAINTENANCE.value
INPROGRESS = BatchStatus.INPROGRESS.value

# --- schedules -------------------------------------------------------------------------


def schedule_rows(session: Session) -> dict[tuple[str, str], MaintenanceSchedule]:
    """Every organization's upkeep schedule rows, by (organization id, job)."""
    return {(row.org_id, row.job): row for row in session.scalars(select(MaintenanceSchedule))}


def set_schedule(
    session: Session,
    org_id: str,
    time_expression: str,
    next_fire_at: datetime | None,
    row: MaintenanceSchedule | None = None,
    job: str = "maintenance",
) -> MaintenanceSchedule:
    """Create or update the organization's row of `job` (``next_fire_at`` None: does not
    fire)."""
    if row is None:
        row = session.get(MaintenanceSchedule, (org_id, job))
    if row is None:
        try:
            with session.begin_nested():  # another node may create it at the same moment
                row = MaintenanceSchedule(org_id=org_id, job=job, time_expression=time_expression,
                                          next_fire_at=next_fire_at)  # fmt: skip
                session.add(row)
            return row
        except IntegrityError:
            row = session.get(MaintenanceSchedule, (org_id, job), populate_existing=True)
            assert row is not None
    row.time_expression = time_expression
    row.next_fire_at = next_fire_at
    session.flush()
    return row


def claim_due(session: Session, now: datetime, limit: int = 100) -> list[MaintenanceSchedule]:
    """Rows whose fire has come, locked until the caller's transaction ends; other nodes
    skip them (PostgreSQL ``SKIP LOCKED``; SQLite has one scheduler node)."""
    stmt = (
        select(MaintenanceSchedule)
        .where(MaintenanceSchedule.next_fire_at <= now)
        .order_by(
            MaintenanceSchedule.next_fire_at, MaintenanceSchedule.org_id, MaintenanceSchedule.job
        )
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list(session.scalars(stmt))


# --- runs ------------------------------------------------------------------------------


def running_run(session: Session, org_id: str) -> BuildBatch | None:
    """The organization's maintenance run in progress, if any."""
    stmt = select(BuildBatch).where(
        BuildBatch.org_id == org_id,
        BuildBatch.batch_type == MAINTENANCE,
        BuildBatch.status == INPROGRESS,
    )
    return session.scalars(stmt.limit(1)).first()


def start_run(
    session: Session,
    org_id: str,
    *,
    worker_id: str,
    requested_by: str,
    now: datetime | None = None,
) -> BuildBatch:
    """Record a new run, in progress on ``worker_id``; ``ConflictError`` while another
    run of the organization is in progress (the organization row is locked meanwhile,
    so two starters cannot both pass the check)."""
    when = now or utcnow()
    org = session.scalars(
        select(Organization).where(Organization.id == org_id).with_for_update()
    ).first()
    if org is None:
        raise NotFoundError(f"organization {org_id!r} not found")
    running = running_run(session, org_id)
    if running is not None:
        raise ConflictError(
            f"maintenance of {org_id!r} is already running (batch {running.id} on "
            f"{running.worker_id}, since {running.start_time})"
        )
    batch = BuildBatch(
        org_id=org_id, project_id=None, cube_id=None, batch_type=MAINTENANCE,
        status=INPROGRESS, create_date=when, start_time=when, heartbeat_at=when,
        worker_id=worker_id, attempts=1, requested_by=requested_by,
    )  # fmt: skip
    session.add(batch)
    session.flush()
    return batch


def finish_run(
    session: Session,
    batch_id: uuid.UUID,
    status: BatchStatus,
    *,
    worker_id: str,
    message: str,
    details: dict[str, Any],
    now: datetime | None = None,
) -> BuildBatch:
    """Close the run with what it did (``ConflictError`` if recovery closed it first)."""
    batch = batches.finish_batch(
        session, batch_id, status, worker_id=worker_id, message=message[:4000], now=now
    )
    batch.details = details
    session.flush()
    return batch


# --- what the health check and the stray-table sweep read -------------------------------


@dataclass(frozen=True)
class LiveTable:
    """An active instance's table and what the store says about it."""

    instance_id: uuid.UUID
    definition_id: uuid.UUID
    definition_name: str
    cube_id: uuid.UUID
    connection: str
    schema: str
    table: str
    rows: int | None


def active_tables(session: Session, org_id: str) -> list[LiveTable]:
    """The organization's active instances with a table, by connection and table."""
    stmt = (
        select(AggregateInstance, AggregateDefinition.name)
        .join(AggregateDefinition, AggregateDefinition.id == AggregateInstance.definition_id)
        .where(
            AggregateInstance.org_id == org_id,
            AggregateInstance.status == InstanceStatus.ACTIVE.value,
            AggregateInstance.table_name.is_not(None),
            AggregateInstance.table_schema.is_not(None),
        )
        .order_by(AggregateInstance.connection_id, AggregateInstance.table_name)
    )
    return [
        LiveTable(
            i.id,
            i.definition_id,
            name,
            i.cube_id,
            i.connection_id or "",
            i.table_schema or "",
            i.table_name or "",
            i.number_of_rows,
        )
        for i, name in session.execute(stmt)
    ]


def busy_cubes(session: Session, org_id: str) -> set[uuid.UUID]:
    """Cubes of the organization with a build in progress (their tables may be changing)."""
    stmt = select(BuildBatch.cube_id).where(
        BuildBatch.org_id == org_id,
        BuildBatch.status == INPROGRESS,
        BuildBatch.cube_id.is_not(None),
    )
    return {cube for cube in session.scalars(stmt) if cube is not None}


def invalidate_missing(
    session: Session,
    instance_id: uuid.UUID,
    reason: str,
    *,
    table_exists: bool,
    drop_after: datetime,
    now: datetime | None = None,
) -> AggregateInstance | None:
    """The active instance becomes ``invalid`` with ``reason`` and its definition gets a
    ``pending`` instance for the cube's next batch. Nothing changes (None) when the
    instance is no longer active (the row is locked first) or its cube is building now.
    A table that still exists (damaged) is dropped after ``drop_after`` — never while an
    active instance uses it (see ``aggregates.instances_to_drop``); a missing one is marked
    dropped."""
    when = now or utcnow()
    instance = session.get(AggregateInstance, instance_id, with_for_update=True)
    if instance is None or instance.status != InstanceStatus.ACTIVE.value:
        return None
    if instance.cube_id in busy_cubes(session, instance.org_id):
        return None
    instance.status = InstanceStatus.INVALID.value
    instance.message = reason
    instance.error = reason
    instance.updated_at = when
    if table_exists:
        instance.drop_after = drop_after
    else:
        instance.table_dropped_at = when
    definition = session.get(AggregateDefinition, instance.definition_id)
    if definition is not None and definition.removed_at is None and not definition.blocked:
        session.add(
            AggregateInstance(
                definition_id=definition.id,
                org_id=definition.org_id,
                cube_id=definition.cube_id,
                status=InstanceStatus.PENDING.value,
                connection_id=definition.connection_id,
                message=f"to replace invalid instance {instance.id}: {reason}",
            )
        )
    session.flush()
    return instance


def org_connections(session: Session, org_id: str) -> list[Connection]:
    return list(session.scalars(select(Connection).where(Connection.org_id == org_id)))


def aggregate_schemas(session: Session, org_id: str) -> dict[str, set[str]]:
    """Per SML connection of the organization, the schemas that hold its aggregate tables:
    the connection's aggregate schema and any schema an instance was built in."""
    connections = org_connections(session, org_id)
    found: dict[str, set[str]] = {c.name: {c.aggregate_schema} for c in connections}
    stmt = (
        select(AggregateInstance.connection_id, AggregateInstance.table_schema)
        .where(
            AggregateInstance.org_id == org_id,
            AggregateInstance.connection_id.is_not(None),
            AggregateInstance.table_schema.is_not(None),
        )
        .distinct()
    )
    for connection, schema in session.execute(stmt):
        if connection in found and schema:
            found[connection].add(schema)
    return found


def owned_tables(session: Session, schemas: Iterable[str]) -> set[tuple[str, str]]:
    """``(schema, table)`` of every instance, of any organization, whose table has not been
    dropped: a table one of them names is never a stray, whichever warehouse it is on."""
    wanted = list(schemas)
    if not wanted:
        return set()
    stmt = select(AggregateInstance.table_schema, AggregateInstance.table_name).where(
        and_(
            AggregateInstance.table_schema.in_(wanted),
            AggregateInstance.table_name.is_not(None),
            AggregateInstance.table_dropped_at.is_(None),
        )
    )
    return {(schema or "", table or "") for schema, table in session.execute(stmt.distinct())}


@dataclass(frozen=True)
class ViewTarget:
    """A definition's stable view: where it is recorded to point, and where it should
    (the active instance's table; None when the definition has no active table)."""

    definition_id: uuid.UUID
    connection: str
    view_name: str
    view_schema: str | None
    view_table: str | None
    target_schema: str | None
    target_table: str | None


def view_targets(session: Session, org_id: str) -> list[ViewTarget]:
    """The organization's definitions that have (or should have) a stable view."""
    active = {
        i.definition_id: i
        for i in session.scalars(
            select(AggregateInstance).where(
                AggregateInstance.org_id == org_id,
                AggregateInstance.status == InstanceStatus.ACTIVE.value,
            )
        )
    }
    found = []
    stmt = select(AggregateDefinition).where(
        AggregateDefinition.org_id == org_id, AggregateDefinition.view_name.is_not(None)
    )
    for d in session.scalars(stmt):
        live = d.removed_at is None and d.invalid_reason is None
        inst = active.get(d.id) if live else None
        if inst is None and d.view_table is None:
            continue
        found.append(
            ViewTarget(
                d.id,
                d.connection_id,
                d.view_name or "",
                d.view_schema,
                d.view_table,
                inst.table_schema if inst else None,
                inst.table_name if inst else None,
            )
        )
    return found
