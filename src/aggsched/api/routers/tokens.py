"""Long-lived API tokens of an organization (extension; admin only): create, list,
revoke. The token itself is in the creation answer only; the store keeps its hash."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path

from aggsched.api import present, schemas
from aggsched.api.deps import OrgAdmin, StoreDep
from aggsched.api.envelope import Envelope, ok
from aggsched.api.errors import bad_request
from aggsched.store import catalog, tokens
from aggsched.store.models import User

router = APIRouter(prefix="/org/{orgId}/tokens", tags=["tokens"])

TokenId = Annotated[uuid.UUID, Path(description="API token id (UUID)")]


@router.get("", response_model=Envelope[list[schemas.ApiTokenOut]])
def list_api_tokens(org: OrgAdmin, store: StoreDep) -> dict[str, object]:
    """The organization's API tokens, newest first (never the tokens themselves)."""
    with store.session() as session:
        rows = tokens.list_tokens(session, org.org_id)
        return ok([present.api_token(row, username) for row, username in rows])


@router.post("", response_model=Envelope[schemas.ApiTokenCreated])
def create_api_token(
    org: OrgAdmin, store: StoreDep, body: schemas.ApiTokenCreate
) -> dict[str, object]:
    """A token for a user of the organization, valid ``days`` days (90 by default, as
    AtScale's). It acts with the user's roles in this organization at each request."""
    with store.session() as session:
        user = catalog.get_user_by_name(session, body.username)
        if user is None or not catalog.roles_for(session, user.id, org.org_id):
            raise bad_request(
                "username", f"no user {body.username!r} with a role in organization {org.org_id!r}"
            )
        created = tokens.create_token(
            session, user=user, org_id=org.org_id, days=body.days, name=body.name,
            created_by=org.username,
        )  # fmt: skip
        out = present.api_token(created.row, user.username)
    return ok(schemas.ApiTokenCreated(**out.model_dump(), token=created.secret))


@router.delete("/{tokenId}", response_model=Envelope[schemas.ApiTokenOut])
def revoke_api_token(org: OrgAdmin, store: StoreDep, tokenId: TokenId) -> dict[str, object]:
    """Revoke at once: the next request with the token gets 401."""
    with store.session() as session:
        row = tokens.revoke_token(session, tokenId, org.org_id)
        user = session.get(User, row.user_id)
        return ok(present.api_token(row, user.username if user else ""))
