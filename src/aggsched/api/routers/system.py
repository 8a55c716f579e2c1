"""Login (AtScale's ``GET /{orgId}/auth``), liveness/readiness and ``whoami``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import PlainTextResponse
from fastapi.security import HTTPBasic, HTTPBasicCredentials

from aggsched.api import schemas
from aggsched.api.auth import unauthorized
from aggsched.api.deps import OrgRead, StoreDep
from aggsched.api.envelope import Envelope, ErrorEnvelope, ok
from aggsched.api.errors import ApiError
from aggsched.api.validation import unsafe_character
from aggsched.store import catalog, limits

router = APIRouter(tags=["system"])
_basic = HTTPBasic(auto_error=False, description="user name and password")


@router.get("/healthz", response_model=Envelope[schemas.Health])
def healthz() -> dict[str, object]:
    """Liveness: the process answers (no auth, no database)."""
    return ok(schemas.Health(status="ok"))


@router.get(
    "/readyz",
    response_model=Envelope[schemas.Health],
    responses={503: {"model": ErrorEnvelope, "description": "database unreachable"}},
)
def readyz(store: StoreDep) -> dict[str, object]:
    """Readiness: the metadata database answers a query."""
    try:
        store.ping()
    except Exception as exc:
        raise ApiError(503, f"metadata database unreachable: {type(exc).__name__}") from exc
    return ok(schemas.Health(status="ready"))


@router.get(
    "/{orgId}/auth",
    response_model=None,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                     "description": "a bearer token (JWT) as plain text"}},
)  # fmt: skip
def login(
    orgId: Annotated[str, Path(max_length=limits.ORG_ID)],
    request: Request,
    store: StoreDep,
    credentials: Annotated[HTTPBasicCredentials | None, Depends(_basic)],
) -> PlainTextResponse:
    """HTTP Basic in, a JWT out as plain text (AtScale's installer API). Unknown users
    and wrong passwords get 401; a user without a role in the org gets 404."""
    if credentials is None:
        raise unauthorized("HTTP Basic credentials required", scheme="Basic")
    name = credentials.username
    if len(name) > limits.NAME or unsafe_character(name):  # no such user can exist
        raise unauthorized("wrong user name or password", scheme="Basic")
    with store.session() as session:
        user = catalog.verify_password(session, credentials.username, credentials.password)
        if user is None:
            raise unauthorized("wrong user name or password", scheme="Basic")
        if not catalog.roles_for(session, user.id, orgId):
            raise ApiError(404, f"organization {orgId!r} not found")
    token = request.app.state.authenticator.issuer.issue(user.username, orgId)
    return PlainTextResponse(token)


@router.get("/org/{orgId}/whoami", response_model=Envelope[schemas.WhoAmI])
def whoami(org: OrgRead) -> dict[str, object]:
    """The caller and their roles in the organization (cheap: auth only)."""
    roles = sorted(role.value for role in org.roles)
    return ok(schemas.WhoAmI(username=org.username, organization_id=org.org_id, roles=roles))
