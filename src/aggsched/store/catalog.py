"""Catalog queries: organizations, users, connections, projects, cubes, aggregates.

Every function takes the caller's ``Session`` (one transaction, see ``Store.session``)
and returns ORM objects; lookups scoped by organization raise ``NotFoundError`` when the
object exists only in another organization, so the API cannot leak across tenants.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from contextlib import suppress
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import exists, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from aggsched.planning.naming import sanitize
from aggsched.planning.sqlgen import dialect_name
from aggsched.store.errors import ConflictError, InvalidValueError, NotFoundError
from aggsched.store.models import (
    AggregateDefinition,
    AggregateInstance,
    Connection,
    Cube,
    DefinitionSubtype,
    DefinitionType,
    InstanceStatus,
    Membership,
    Organization,
    Project,
    Role,
    User,
)
from aggsched.store.types import utcnow

_hasher = PasswordHasher()


# argon2 hash of a random password nobody knows, with the hasher's parameters
_DUMMY_HASH = (
    "$argon2id$v=19$m=65536,t=3,p=4$8NE6H6lK3oNvF9JqGVr2kg$"
    "bm+gVeqDkKarpiOIAXviX2FaG9RiBQ6f2zlvYKh317c"
)


@cache
def _dummy_hash() -> str:
    """What an unknown user's password is checked against, at the cost of a real check (so
    timing does not reveal which names exist). A constant, not hashed at import (every CLI
    start imports this module) nor at first use (the first failed login then cost two
    argon2 runs, over 2 s on a loaded machine); made anew only if the parameters differ."""
    if _hasher.check_needs_rehash(_DUMMY_HASH):
        return _hasher.hash("not a password of anyone")
    return _DUMMY_HASH


def _flush_or_conflict(session: Session, what: str) -> None:
    """Flush pending changes, turning a uniqueness violation into ``ConflictError``."""
    try:
        session.flush()
    except IntegrityError as exc:
        raise ConflictError(f"{what} already exists") from exc


def _enum(enum: type[Any], value: str, what: str) -> str:
    try:
        return str(enum(value).value)
    except ValueError as exc:
        allowed = ", ".join(member.value for member in enum)
        raise InvalidValueError(f"{what} {value!r} is not one of: {allowed}") from exc


# --- organizations -------------------------------------------------------------------


def get_org(session: Session, org_id: str) -> Organization:
    org = session.get(Organization, org_id)
    if org is None:
        raise NotFoundError(f"organization {org_id!r} not found")
    return org


def list_orgs(session: Session) -> list[Organization]:
    return list(session.scalars(select(Organization).order_by(Organization.id)))


def add_org(session: Session, org_id: str, name: str | None = None) -> Organization:
    if not org_id or len(org_id) > 64:
        raise InvalidValueError(f"organization id {org_id!r} must be 1-64 characters")
    org = Organization(id=org_id, name=name or org_id)
    session.add(org)
    _flush_or_conflict(session, f"organization {org_id!r}")
    return org


def ensure_org(session: Session, org_id: str, name: str | None = None) -> Organization:
    """The organization, created if missing (idempotent, for bootstrap and tests)."""
    return session.get(Organization, org_id) or add_org(session, org_id, name)


# --- users ---------------------------------------------------------------------------


def add_user(session: Session, username: str, password: str) -> User:
    """A new user; only the argon2 hash of ``password`` is stored."""
    if not username.strip():
        raise InvalidValueError("username must not be empty")
    if not password:
        raise InvalidValueError(f"password for user {username!r} must not be empty")
    user = User(username=username, password_hash=_hasher.hash(password))
    session.add(user)
    _flush_or_conflict(session, f"user {username!r}")
    return user


def get_user_by_name(session: Session, username: str) -> User | None:
    return session.scalar(select(User).where(User.username == username))


def verify_password(session: Session, username: str, password: str) -> User | None:
    """The user when ``password`` matches, else None (unknown user or wrong password)."""
    user = get_user_by_name(session, username)
    if user is None:
        with suppress(VerificationError, InvalidHashError):
            _hasher.verify(_dummy_hash(), password)  # same work: timing does not reveal names
        return None
    try:
        _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    return user


def grant_role(session: Session, user_id: uuid.UUID, org_id: str, role: Role | str) -> None:
    """Give ``user_id`` ``role`` in ``org_id`` (idempotent)."""
    value = _enum(Role, str(role), "role")
    if session.get(Membership, (user_id, org_id, value)) is None:
        session.add(Membership(user_id=user_id, org_id=org_id, role=value))
        session.flush()


def roles_for(session: Session, user_id: uuid.UUID, org_id: str) -> set[Role]:
    rows = session.scalars(
        select(Membership.role).where(Membership.user_id == user_id, Membership.org_id == org_id)
    )
    return {Role(role) for role in rows}


# --- connections ---------------------------------------------------------------------


def upsert_connection(
    session: Session,
    org_id: str,
    name: str,
    url: str,
    *,
    aggregate_schema: str = "as_agg",
    database_override: str | None = None,
    schema_override: str | None = None,
    sql_dialect: str | None = None,
) -> Connection:
    """Create or replace the mapping of SML connection ``name`` to a warehouse URL
    (``sql_dialect``: what the model's SQL there is written in; None: its platform's)."""
    try:
        dialect = dialect_name(sql_dialect) if sql_dialect else None
    except ValueError as exc:
        raise InvalidValueError(str(exc)) from exc
    conn = session.scalar(
        select(Connection).where(Connection.org_id == org_id, Connection.name == name)
    )
    if conn is None:
        conn = Connection(org_id=org_id, name=name)
        session.add(conn)
    conn.url = url
    conn.aggregate_schema = aggregate_schema
    conn.database_override = database_override
    conn.schema_override = schema_override
    conn.sql_dialect = dialect
    _flush_or_conflict(session, f"connection {name!r}")
    return conn


def list_connections(session: Session, org_id: str) -> list[Connection]:
    stmt = select(Connection).where(Connection.org_id == org_id).order_by(Connection.name)
    return list(session.scalars(stmt))


def get_connection(session: Session, org_id: str, name: str) -> Connection:
    conn = session.scalar(
        select(Connection).where(Connection.org_id == org_id, Connection.name == name)
    )
    if conn is None:
        raise NotFoundError(f"connection {name!r} not found in organization {org_id!r}")
    return conn


def delete_connection(session: Session, org_id: str, name: str) -> None:
    session.delete(get_connection(session, org_id, name))
    session.flush()


# --- projects and cubes --------------------------------------------------------------


def upsert_project(
    session: Session,
    org_id: str,
    unique_name: str,
    *,
    name: str,
    version: str | None = None,
    source_digest: str | None = None,
    published_by: str | None = None,
    now: datetime | None = None,
) -> Project:
    """Create the project or record a republish of it (same id, new digest and time)."""
    project = get_project_by_name(session, org_id, unique_name)
    if project is None:
        project = Project(org_id=org_id, unique_name=unique_name)
        session.add(project)
    project.name = name
    project.version = version
    project.source_digest = source_digest
    project.published_by = published_by
    project.published_at = now or utcnow()
    _flush_or_conflict(session, f"project {unique_name!r}")
    return project


def get_project(session: Session, org_id: str, project_id: uuid.UUID) -> Project:
    project = session.get(Project, project_id)
    if project is None or project.org_id != org_id:
        raise NotFoundError(f"project {project_id} not found in organization {org_id!r}")
    return project


def get_project_by_name(session: Session, org_id: str, unique_name: str) -> Project | None:
    return session.scalar(
        select(Project).where(Project.org_id == org_id, Project.unique_name == unique_name)
    )


def list_projects(session: Session, org_id: str) -> list[Project]:
    stmt = select(Project).where(Project.org_id == org_id).order_by(Project.unique_name)
    return list(session.scalars(stmt))


def upsert_cube(
    session: Session,
    project: Project,
    unique_name: str,
    name: str,
    query_spec: str | None = None,
) -> Cube:
    """Create the cube, or rename/undelete it when a republish brings it back;
    ``query_spec`` is its queryable model (planning.cube.CubeSpec JSON)."""
    cube = session.scalar(
        select(Cube).where(Cube.project_id == project.id, Cube.unique_name == unique_name)
    )
    if cube is None:
        cube = Cube(project_id=project.id, org_id=project.org_id, unique_name=unique_name)
        session.add(cube)
    cube.name = name
    cube.deleted_at = None
    if query_spec is not None and query_spec != cube.query_spec:
        cube.query_spec = query_spec
        cube.spec_updated_at = utcnow()
    _flush_or_conflict(session, f"cube {unique_name!r}")
    return cube


def get_cube(
    session: Session,
    org_id: str,
    project_id: uuid.UUID,
    cube_id: uuid.UUID,
    *,
    include_deleted: bool = False,
) -> Cube:
    """The cube, only if it belongs to that project and organization (else 404)."""
    cube = session.get(Cube, cube_id)
    if (
        cube is None
        or cube.org_id != org_id
        or cube.project_id != project_id
        or (cube.deleted_at is not None and not include_deleted)
    ):
        raise NotFoundError(
            f"cube {cube_id} not found in project {project_id} of organization {org_id!r}"
        )
    return cube


def list_cubes(
    session: Session, project_id: uuid.UUID, *, include_deleted: bool = False
) -> list[Cube]:
    stmt = select(Cube).where(Cube.project_id == project_id)
    if not include_deleted:
        stmt = stmt.where(Cube.deleted_at.is_(None))
    return list(session.scalars(stmt.order_by(Cube.unique_name)))


def mark_cube_deleted(session: Session, cube: Cube, now: datetime | None = None) -> None:
    cube.deleted_at = now or utcnow()
    session.flush()


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
    type_value = _enum(DefinitionType, str(type), "definition type")
    subtype_value = _enum(DefinitionSubtype, str(subtype), "definition subtype")
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
    _flush_or_conflict(session, f"aggregate definition {unique_name!r}")
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
    value = _enum(InstanceStatus, str(status), "instance status")
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
    _flush_or_conflict(session, f"an active instance of aggregate {instance.definition_id}")
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
        values = [_enum(InstanceStatus, str(s), "instance status") for s in statuses]
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


def get_cube_by_id(session: Session, org_id: str, cube_id: uuid.UUID) -> Cube:
    """A live cube of the organization by id alone (for the CLI and workers)."""
    cube = session.get(Cube, cube_id)
    if cube is None or cube.org_id != org_id or cube.deleted_at is not None:
        raise NotFoundError(f"cube {cube_id} not found in organization {org_id!r}")
    return cube


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


def lock_cube(session: Session, cube_id: uuid.UUID) -> Cube | None:
    """The cube row locked until the transaction ends (PostgreSQL), so concurrent
    requests for one cube's batch queue one after the other and coalesce."""
    stmt = select(Cube).where(Cube.id == cube_id).with_for_update()
    return session.scalars(stmt.execution_options(populate_existing=True)).one_or_none()


def lock_cubes(session: Session, cube_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Any]:
    """Several cube rows (id, org_id, project_id, deleted_at) locked in one statement, in
    id order, so two nodes locking overlapping sets wait for each other, never deadlock."""
    wanted = sorted(set(cube_ids))
    if not wanted:
        return {}
    stmt = (
        select(Cube.id, Cube.org_id, Cube.project_id, Cube.deleted_at)
        .where(Cube.id.in_(wanted))
        .order_by(Cube.id)
        .with_for_update()
    )
    return {row.id: row for row in session.execute(stmt)}


def cube_instances(
    session: Session, cube_id: uuid.UUID, statuses: Iterable[InstanceStatus | str]
) -> list[AggregateInstance]:
    """The cube's instances in some statuses, oldest first (one query for a whole batch)."""
    values = [_enum(InstanceStatus, str(s), "instance status") for s in statuses]
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
