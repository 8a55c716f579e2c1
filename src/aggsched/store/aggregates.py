"""Aggregate queries: definitions, their instances and their stable views.

The catalog's other half (``store.catalog`` holds organizations, users, connections,
projects and cubes). Every function takes the caller's ``Session`` (one transaction, see
``Store.session``); lookups scoped by organization raise ``NotFoundError`` when the object
exists only in another organization.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import exists, func, select, update
from sqlalchemy.orm import Session, aliased

from aggsched.planning.naming import sanitize
from aggsched.store.catalog import enum_value, flush_or_conflict
from aggsched.store.errors import InvalidValueError, NotFoundError
from aggsched.store.models import (
    AggregateDefinition,
    AggregateInstance,
    Cube,
    DefinitionSubtype,
    DefinitionType,
    InstanceStatus,
)
from aggsched.store.types import utcnow

# --- aggregate definitions -----------------------------------------------------------


def upsert_definition(
    session: Session,
    cube: Cube,
    *,
    unique_name: str,
    name: str,
    type: DefinitionType | str,
    subtype: DefinitionSubtype | str,
    fingerprint: str,
    spec: dict[str, Any],
    fact_dataset: str,
    connection_id: str,
    incremental: bool = False,
    invalid_reason: str | None = None,
) -> AggregateDefinition:
    """Create or refresh a definition of ``cube`` (a republish revives removed ones);
    ``invalid_reason`` marks one the model defines but aggsched cannot build as written."""
    type_value = enum_value(DefinitionType, str(type), "definition type")
    subtype_value = enum_value(DefinitionSubtype, str(subtype), "definition subtype")
    definition = session.scalar(
        select(AggregateDefinition).where(
            AggregateDefinition.cube_id == cube.id,
            AggregateDefinition.unique_name == unique_name,
        )
    )
    if definition is None:
        definition = AggregateDefinition(
            org_id=cube.org_id, project_id=cube.project_id, cube_id=cube.id,
            unique_name=unique_name,
        )  # fmt: skip
        session.add(definition)
    definition.name = name
    definition.type = type_value
    definition.subtype = subtype_value
    definition.fingerprint = fingerprint
    definition.spec = spec
    definition.fact_dataset = fact_dataset
    definition.connection_id = connection_id
    definition.incremental = incremental
    definition.invalid_reason = invalid_reason
    definition.removed_at = None
    flush_or_conflict(session, f"aggregate definition {unique_name!r}")
    return definition


def get_definition(session: Session, org_id: str, definition_id: uuid.UUID) -> AggregateDefinition:
    definition = session.get(AggregateDefinition, definition_id)
    if definition is None or definition.org_id != org_id:
        raise NotFoundError(f"aggregate {definition_id} not found in organization {org_id!r}")
    return definition


def set_definition_blocked(
    session: Session, org_id: str, definition_id: uuid.UUID, blocked: bool
) -> AggregateDefinition:
    """Deactivate (``block``) or reactivate a definition; blocked ones are not built."""
    definition = get_definition(session, org_id, definition_id)
    definition.blocked = blocked
    session.flush()
    return definition


def mark_definition_removed(
    session: Session, definition: AggregateDefinition, now: datetime | None = None
) -> None:
    definition.removed_at = now or utcnow()
    session.flush()


# --- aggregate instances -------------------------------------------------------------


def create_instance(
    session: Session,
    definition: AggregateDefinition,
    *,
    batch_id: uuid.UUID | None = None,
    table_name: str | None = None,
    table_schema: str | None = None,
    source_instance_id: uuid.UUID | None = None,
    watermark: str | None = None,
    instance_id: uuid.UUID | None = None,
) -> AggregateInstance:
    """A new ``pending`` instance of ``definition`` (its table does not exist yet)."""
    instance = AggregateInstance(
        id=instance_id or uuid.uuid4(), definition_id=definition.id,
        org_id=definition.org_id, cube_id=definition.cube_id, batch_id=batch_id,
        status=InstanceStatus.PENDING.value, connection_id=definition.connection_id,
        table_name=table_name, table_schema=table_schema,
        source_instance_id=source_instance_id, watermark=watermark,
    )  # fmt: skip
    session.add(instance)
    session.flush()
    return instance


def get_instance(session: Session, org_id: str, instance_id: uuid.UUID) -> AggregateInstance:
    instance = session.get(AggregateInstance, instance_id)
    if instance is None or instance.org_id != org_id:
        raise NotFoundError(f"aggregate instance {instance_id} not found in {org_id!r}")
    return instance


def active_instance(session: Session, definition_id: uuid.UUID) -> AggregateInstance | None:
    return session.scalar(
        select(AggregateInstance).where(
            AggregateInstance.definition_id == definition_id,
            AggregateInstance.status == InstanceStatus.ACTIVE.value,
        )
    )


def set_instance_status(
    session: Session,
    instance_id: uuid.UUID,
    status: InstanceStatus | str,
    **fields: Any,
) -> AggregateInstance:
    """Move an instance to any status but ``active`` (use ``activate_instance``).

    ``fields`` may set: message, error, sql, number_of_rows, build_duration,
    materialization_start_time, materialization_end_time, watermark, batch_id,
    table_name, table_schema, drop_after.
    """
    value = enum_value(InstanceStatus, str(status), "instance status")
    if value == InstanceStatus.ACTIVE.value:
        raise InvalidValueError("use activate_instance to make an instance active")
    unknown = set(fields) - _SETTABLE_INSTANCE_FIELDS
    if unknown:
        raise InvalidValueError(f"cannot set instance fields: {', '.join(sorted(unknown))}")
    instance = session.get(AggregateInstance, instance_id)
    if instance is None:
        raise NotFoundError(f"aggregate instance {instance_id} not found")
    instance.status = value
    for key, field_value in fields.items():
        setattr(instance, key, field_value)
    session.flush()
    return instance


_SETTABLE_INSTANCE_FIELDS = frozenset(
    {
        "message", "error", "sql", "number_of_rows", "build_duration",
        "materialization_start_time", "materialization_end_time", "watermark",
        "batch_id", "table_name", "table_schema", "drop_after",
    }
)  # fmt: skip


def activate_instance(
    session: Session,
    instance_id: uuid.UUID,
    *,
    grace: timedelta = timedelta(minutes=10),
    now: datetime | None = None,
    takes_over_table: bool = False,
) -> AggregateInstance | None:
    """Make ``instance_id`` the active one of its definition; returns the one it replaced.

    In the caller's single transaction the previous active instance becomes ``deleted``
    (its table may be dropped after ``grace``, once running queries are done) and the
    new one ``active``. A concurrent second activation hits the one-active unique index
    and raises ``ConflictError`` instead of leaving two active tables. With
    ``takes_over_table`` (an incremental build updated the previous instance's table in
    place) the previous instance's table is never dropped: it is the new one's.
    """
    when = now or utcnow()
    instance = session.get(AggregateInstance, instance_id)
    if instance is None:
        raise NotFoundError(f"aggregate instance {instance_id} not found")
    if instance.status == InstanceStatus.ACTIVE.value:
        return None
    previous = active_instance(session, instance.definition_id)
    session.execute(
        update(AggregateInstance)
        .where(
            AggregateInstance.definition_id == instance.definition_id,
            AggregateInstance.status == InstanceStatus.ACTIVE.value,
        )
        .values(
            status=InstanceStatus.DELETED.value,
            drop_after=None if takes_over_table else when + grace,
            updated_at=when,
        )
        .execution_options(synchronize_session="fetch")
    )
    instance.status = InstanceStatus.ACTIVE.value
    flush_or_conflict(session, f"an active instance of aggregate {instance.definition_id}")
    return previous


def instances_to_drop(
    session: Session, now: datetime | None = None, limit: int = 100
) -> list[AggregateInstance]:
    """Instances whose grace period is over and whose table still exists.

    A table that an active instance uses is never returned: an incremental build updates
    the active table in place under a new instance, and a failed or lost one of those must
    not take the live table with it.
    """
    model = AggregateInstance
    live = aliased(AggregateInstance)
    in_use = exists().where(
        live.status == InstanceStatus.ACTIVE.value,
        live.definition_id == model.definition_id,
        live.table_name == model.table_name,
        live.table_schema == model.table_schema,
    )
    stmt = (
        select(model)
        .where(
            model.drop_after <= (now or utcnow()),
            model.table_dropped_at.is_(None),
            model.status != InstanceStatus.ACTIVE.value,
            ~in_use,
        )
        .order_by(model.drop_after)
        .limit(limit)
    )
    return list(session.scalars(stmt))


def keep_table(session: Session, instance_id: uuid.UUID, why: str) -> None:
    """Take an instance out of the drop queue, leaving its table (e.g. its connection is
    no longer mapped, so there is nowhere to drop it from)."""
    instance = session.get(AggregateInstance, instance_id)
    if instance is None:
        raise NotFoundError(f"aggregate instance {instance_id} not found")
    instance.drop_after = None
    instance.message = why
    session.flush()


def mark_table_dropped(
    session: Session, instance_id: uuid.UUID, now: datetime | None = None
) -> None:
    instance = session.get(AggregateInstance, instance_id)
    if instance is None:
        raise NotFoundError(f"aggregate instance {instance_id} not found")
    instance.table_dropped_at = now or utcnow()
    session.flush()


def cube_definitions(
    session: Session,
    cube_id: uuid.UUID,
    *,
    include_removed: bool = True,
    buildable: bool = False,
) -> list[AggregateDefinition]:
    """Every definition of a cube (removed ones too, by default), by unique_name;
    ``buildable``: only live ones with a spec (not removed, not invalid as written)."""
    stmt = select(AggregateDefinition).where(AggregateDefinition.cube_id == cube_id)
    if not include_removed or buildable:
        stmt = stmt.where(AggregateDefinition.removed_at.is_(None))
    if buildable:
        stmt = stmt.where(AggregateDefinition.invalid_reason.is_(None))
    return list(session.scalars(stmt.order_by(AggregateDefinition.unique_name)))


def definition_instances(
    session: Session,
    definition_id: uuid.UUID,
    statuses: Iterable[InstanceStatus | str] | None = None,
) -> list[AggregateInstance]:
    """Instances of one definition, newest first, optionally only some statuses."""
    stmt = select(AggregateInstance).where(AggregateInstance.definition_id == definition_id)
    if statuses is not None:
        values = [enum_value(InstanceStatus, str(s), "instance status") for s in statuses]
        stmt = stmt.where(AggregateInstance.status.in_(values))
    order = [AggregateInstance.created_at.desc(), AggregateInstance.id.desc()]
    return list(session.scalars(stmt.order_by(*order)))


def cube_has_pending_instances(session: Session, cube_id: uuid.UUID) -> bool:
    """True when a live, unblocked definition of the cube waits for its first build."""
    stmt = (
        select(AggregateInstance.id)
        .join(AggregateDefinition, AggregateDefinition.id == AggregateInstance.definition_id)
        .where(
            AggregateInstance.cube_id == cube_id,
            AggregateInstance.status == InstanceStatus.PENDING.value,
            AggregateDefinition.removed_at.is_(None),
            AggregateDefinition.blocked.is_(False),
        )
        .limit(1)
    )
    return session.scalar(stmt) is not None


def batch_instances(session: Session, batch_id: uuid.UUID) -> list[AggregateInstance]:
    """The instances a batch built or tried to build, in build order."""
    stmt = select(AggregateInstance).where(AggregateInstance.batch_id == batch_id)
    order = [AggregateInstance.materialization_start_time, AggregateInstance.created_at]
    return list(session.scalars(stmt.order_by(*order)))


def fail_unfinished_instances(
    session: Session, batch_id: uuid.UUID, message: str, now: datetime | None = None
) -> list[AggregateInstance]:
    """The batch's instances left ``inprogress`` become ``failed``, their tables due for
    dropping now (a lost worker's partial tables); returns them."""
    when = now or utcnow()
    stmt = select(AggregateInstance).where(
        AggregateInstance.batch_id == batch_id,
        AggregateInstance.status == InstanceStatus.INPROGRESS.value,
    )
    instances = list(session.scalars(stmt))
    for instance in instances:
        instance.status = InstanceStatus.FAILED.value
        instance.message = message
        instance.error = message
        instance.materialization_end_time = when
        instance.drop_after = when
    session.flush()
    return instances


def cube_connection_names(session: Session, cube_id: uuid.UUID) -> set[str]:
    """The SML connections the cube's live aggregates build on."""
    stmt = select(AggregateDefinition.connection_id).where(
        AggregateDefinition.cube_id == cube_id, AggregateDefinition.removed_at.is_(None)
    )
    return set(session.scalars(stmt.distinct()))


def cubes_using_connections(session: Session, org_id: str, names: Iterable[str]) -> set[uuid.UUID]:
    """Cubes of the organization with a live aggregate on one of these connections."""
    wanted = list(names)
    if not wanted:
        return set()
    stmt = select(AggregateDefinition.cube_id).where(
        AggregateDefinition.org_id == org_id,
        AggregateDefinition.connection_id.in_(wanted),
        AggregateDefinition.removed_at.is_(None),
    )
    return set(session.scalars(stmt.distinct()))


def cube_instances(
    session: Session, cube_id: uuid.UUID, statuses: Iterable[InstanceStatus | str]
) -> list[AggregateInstance]:
    """The cube's instances in some statuses, oldest first (one query for a whole batch)."""
    values = [enum_value(InstanceStatus, str(s), "instance status") for s in statuses]
    stmt = select(AggregateInstance).where(
        AggregateInstance.cube_id == cube_id, AggregateInstance.status.in_(values)
    )
    return list(session.scalars(stmt.order_by(AggregateInstance.created_at)))


def last_build_seconds(session: Session, cube_id: uuid.UUID) -> dict[uuid.UUID, tuple[float, bool]]:
    """For each live, unblocked definition of the cube: how long its latest successful
    build took (0.0 if never built) and whether it has an active instance. One query."""
    return last_build_seconds_by_cube(session, [cube_id]).get(cube_id, {})


def last_build_seconds_by_cube(
    session: Session, cube_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, dict[uuid.UUID, tuple[float, bool]]]:
    """``last_build_seconds`` of several cubes in one query (a scheduler pass queues
    batches for many cubes at once): cube id -> definition id -> (seconds, active)."""
    wanted = list(set(cube_ids))
    if not wanted:
        return {}
    done = (InstanceStatus.ACTIVE.value, InstanceStatus.DELETED.value)
    ranked = (
        select(
            AggregateInstance.definition_id,
            AggregateInstance.build_duration,
            func.row_number()
            .over(
                partition_by=AggregateInstance.definition_id,
                order_by=AggregateInstance.materialization_end_time.desc(),
            )
            .label("n"),
        )
        .where(
            AggregateInstance.cube_id.in_(wanted),
            AggregateInstance.status.in_(done),
            AggregateInstance.build_duration.is_not(None),
        )
        .subquery()
    )
    active = exists().where(
        AggregateInstance.definition_id == AggregateDefinition.id,
        AggregateInstance.status == InstanceStatus.ACTIVE.value,
    )
    stmt = (
        select(AggregateDefinition.cube_id, AggregateDefinition.id, ranked.c.build_duration, active)
        .outerjoin(ranked, (ranked.c.definition_id == AggregateDefinition.id) & (ranked.c.n == 1))
        .where(
            AggregateDefinition.cube_id.in_(wanted),
            AggregateDefinition.removed_at.is_(None),
            AggregateDefinition.blocked.is_(False),
            AggregateDefinition.invalid_reason.is_(None),
        )
    )
    out: dict[uuid.UUID, dict[uuid.UUID, tuple[float, bool]]] = {}
    for cube_id, definition_id, seconds, is_active in session.execute(stmt):
        out.setdefault(cube_id, {})[definition_id] = (seconds or 0.0, bool(is_active))
    return out


# --- stable views --------------------------------------------------------------------

_OUR_TABLE = re.compile(r"^as_agg_[0-9a-f]{8}_")
VIEW_NAME_MAX = 63  # PostgreSQL's identifier limit


def assign_view_name(session: Session, definition: AggregateDefinition) -> str:
    """The definition's stable view name: its sanitized unique name, made unique among the
    organization's live definitions on the same connection (and never shaped like an
    aggregate table's name, which maintenance treats as ours to drop)."""
    if definition.view_name:
        return definition.view_name
    base = sanitize(definition.unique_name)[:VIEW_NAME_MAX]
    if _OUR_TABLE.match(base):
        base = f"{base[: VIEW_NAME_MAX - 5]}_view"
    taken = exists().where(
        AggregateDefinition.org_id == definition.org_id,
        AggregateDefinition.connection_id == definition.connection_id,
        AggregateDefinition.view_name == base,
        AggregateDefinition.id != definition.id,
        AggregateDefinition.removed_at.is_(None),
    )
    if session.scalar(select(taken)):
        base = f"{base[: VIEW_NAME_MAX - 7]}_{definition.id.hex[:6]}"
    definition.view_name = base
    session.flush()
    return base


def set_view(
    session: Session, definition_id: uuid.UUID, schema: str | None, table: str | None
) -> None:
    """Record what the definition's view selects from now (None, None: it was dropped)."""
    definition = session.get(AggregateDefinition, definition_id)
    if definition is None:
        raise NotFoundError(f"aggregate {definition_id} not found")
    definition.view_schema = schema
    definition.view_table = table
    session.flush()


def views_on(session: Session, tables: Iterable[tuple[str, str]]) -> list[AggregateDefinition]:
    """Definitions whose view selects from one of these (schema, table)s."""
    wanted = list(tables)
    if not wanted:
        return []
    names = {t for _, t in wanted}
    stmt = select(AggregateDefinition).where(AggregateDefinition.view_table.in_(names))
    return [d for d in session.scalars(stmt) if (d.view_schema, d.view_table) in set(wanted)]


def views_to_drop(session: Session, limit: int = 500) -> list[AggregateDefinition]:
    """Views of definitions that a republish removed or made invalid."""
    stmt = (
        select(AggregateDefinition)
        .where(AggregateDefinition.view_table.is_not(None))
        .where(
            AggregateDefinition.removed_at.is_not(None)
            | AggregateDefinition.invalid_reason.is_not(None)
        )
        .limit(limit)
    )
    return list(session.scalars(stmt))
