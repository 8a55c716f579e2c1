"""Catalog queries: organizations, users, connections, projects and cubes (aggregate
definitions, instances and views: ``store.aggregates``).

Every function takes the caller's ``Session`` (one transaction, see ``Store.session``)
and returns ORM objects; lookups scoped by organization raise ``NotFoundError`` when the
object exists only in another organization, so the API cannot leak across tenants.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from contextlib import suppress
from datetime import datetime
from functools import cache
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from aggsched.planning.sqlgen import dialect_name
from aggsched.store.errors import ConflictError, InvalidValueError, NotFoundError
from aggsched.store.models import (
    Connection,
    Cube,
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


def flush_or_conflict(session: Session, what: str) -> None:
    """Flush pending changes, turning a uniqueness violation into ``ConflictError``."""
    try:
        session.flush()
    except IntegrityError as exc:
        raise ConflictError(f"{what} already exists") from exc


def enum_value(enum: type[Any], value: str, what: str) -> str:
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
    flush_or_conflict(session, f"organization {org_id!r}")
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
    flush_or_conflict(session, f"user {username!r}")
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
    value = enum_value(Role, str(role), "role")
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
    flush_or_conflict(session, f"connection {name!r}")
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
    flush_or_conflict(session, f"project {unique_name!r}")
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
    flush_or_conflict(session, f"cube {unique_name!r}")
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


def get_cube_by_id(session: Session, org_id: str, cube_id: uuid.UUID) -> Cube:
    """A live cube of the organization by id alone (for the CLI and workers)."""
    cube = session.get(Cube, cube_id)
    if cube is None or cube.org_id != org_id or cube.deleted_at is not None:
        raise NotFoundError(f"cube {cube_id} not found in organization {org_id!r}")
    return cube


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
