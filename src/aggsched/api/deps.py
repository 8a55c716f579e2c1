"""FastAPI dependencies: the store, the caller, and the caller's access to an org.

Access rules: any role reads; ``admin`` and ``aggregates_manage`` change schedules,
builds and aggregates; only ``admin`` publishes projects and manages connections. A
caller with no role in an organization (or an organization that does not exist) gets
404, never 403, so nobody learns which organizations exist.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from aggsched.api.auth import Authenticator, Principal, unauthorized
from aggsched.api.errors import ApiError, bad_request
from aggsched.config import Settings
from aggsched.store import Store, catalog, limits
from aggsched.store.errors import NotFoundError
from aggsched.store.models import Cube, Role

READ = frozenset(Role)
WRITE = frozenset({Role.ADMIN, Role.AGGREGATES_MANAGE})
ADMIN = frozenset({Role.ADMIN})

_bearer = HTTPBearer(auto_error=False, description="`GET /{orgId}/auth` returns the token")


def get_store(request: Request) -> Store:
    return request.app.state.store  # type: ignore[no-any-return]


def get_settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


def get_authenticator(request: Request) -> Authenticator:
    return request.app.state.authenticator  # type: ignore[no-any-return]


StoreDep = Annotated[Store, Depends(get_store)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


def current_principal(
    authenticator: Annotated[Authenticator, Depends(get_authenticator)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The verified caller; 401 when the bearer token is missing or not valid."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise unauthorized("missing bearer token; get one from GET /{orgId}/auth")
    return authenticator.verify(credentials.credentials)


@dataclass(frozen=True)
class OrgContext:
    """An authorised request on one organization."""

    org_id: str
    principal: Principal
    roles: frozenset[Role]

    @property
    def username(self) -> str:
        return self.principal.username


def _roles(store: Store, principal: Principal, org_id: str) -> frozenset[Role]:
    """The caller's roles in ``org_id``; empty when the org does not exist."""
    with store.session() as session:
        try:
            catalog.get_org(session, org_id)
        except NotFoundError:
            return frozenset()
        if principal.source != "local":
            return principal.token_roles.get(org_id, frozenset())
        user = catalog.get_user_by_name(session, principal.username)
        if user is None:
            raise unauthorized("the token's user no longer exists", error="invalid_token")
        return frozenset(catalog.roles_for(session, user.id, org_id))


OrgIdPath = Annotated[str, Path(max_length=limits.ORG_ID, description="Organization id")]


def _access(needed: frozenset[Role], what: str) -> Callable[..., OrgContext]:
    def dependency(
        orgId: OrgIdPath,
        store: StoreDep,
        principal: Annotated[Principal, Depends(current_principal)],
    ) -> OrgContext:
        roles = _roles(store, principal, orgId)
        if not roles:
            raise ApiError(404, f"organization {orgId!r} not found")
        if principal.org is not None and principal.org != orgId:
            raise unauthorized(
                f"the token was issued for organization {principal.org!r}; "
                f"get one for {orgId!r} from /{orgId}/auth",
                error="invalid_token",
            )
        if not roles & needed:
            allowed = " or ".join(sorted(r.value for r in needed))
            raise ApiError(403, f"{what} needs the {allowed} role in organization {orgId!r}")
        return OrgContext(orgId, principal, roles)

    return dependency


OrgRead = Annotated[OrgContext, Depends(_access(READ, "reading"))]
OrgWrite = Annotated[OrgContext, Depends(_access(WRITE, "this change"))]
OrgAdmin = Annotated[OrgContext, Depends(_access(ADMIN, "this change"))]

ProjectId = Annotated[uuid.UUID, Path(description="Project id (UUID)")]
CubeId = Annotated[uuid.UUID, Path(description="Cube id (UUID)")]
JobId = Annotated[uuid.UUID, Path(description="Schedule id (UUID)")]

Limit = Annotated[int, Query(ge=1, le=1000, description="Page size")]
Offset = Annotated[int, Query(ge=0, le=2**62, description="Rows to skip")]


def find_cube(session: Session, org_id: str, project_id: uuid.UUID, cube_id: uuid.UUID) -> Cube:
    """The cube; 404 when the project or cube is not the org's, 400 when the cube is
    the org's but belongs to another project."""
    try:
        return catalog.get_cube(session, org_id, project_id, cube_id)
    except NotFoundError:
        catalog.get_project(session, org_id, project_id)
        other = session.get(Cube, cube_id)
        if other is not None and other.org_id == org_id and other.deleted_at is None:
            raise bad_request(
                "cubeId", f"cube {cube_id} belongs to project {other.project_id}, not {project_id}"
            ) from None
        raise
