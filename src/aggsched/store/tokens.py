"""Long-lived API tokens: create (the secret is shown once), list, revoke, check.

AtScale's API tokens last 90 days; the JWTs ``GET /{orgId}/auth`` issues last an hour,
which suits a browser but not a nightly script. An API token is an opaque random string
(``aggsched_`` + 43 characters); the store keeps only its SHA-256, so a leaked database
does not leak usable tokens. Each use looks the hash up, so a revoked or expired token
stops working at once. The token carries no roles of its own: the caller gets the
user's roles in the token's organization as they are at the time of the request.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from aggsched.store import limits
from aggsched.store.errors import InvalidValueError, NotFoundError
from aggsched.store.models import ApiToken, User
from aggsched.store.types import utcnow

PREFIX = "aggsched_"
MAX_DAYS = 3650
"""Longest lifetime accepted (ten years); AtScale's default is 90 days."""


@dataclass(frozen=True)
class CreatedToken:
    """A new token's row and its secret (shown to the creator once, never stored)."""

    row: ApiToken
    secret: str


def token_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def looks_like_api_token(value: str) -> bool:
    """Whether a bearer credential is one of ours (not a JWT), judged by its prefix."""
    return value.startswith(PREFIX)


def create_token(
    session: Session,
    *,
    user: User,
    org_id: str,
    days: int,
    name: str = "",
    created_by: str = "",
    now: datetime | None = None,
) -> CreatedToken:
    """A token for ``user`` in ``org_id`` valid ``days`` days (1 to ``MAX_DAYS``)."""
    if not 1 <= days <= MAX_DAYS:
        raise InvalidValueError(f"days must be between 1 and {MAX_DAYS}, got {days}")
    if len(name) > limits.NAME:
        raise InvalidValueError(f"token name longer than {limits.NAME} characters")
    moment = now or utcnow()
    secret = PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        token_hash=token_hash(secret), user_id=user.id, org_id=org_id, name=name,
        created_by=created_by[: limits.NAME], created_at=moment,
        expires_at=moment + timedelta(days=days),
    )  # fmt: skip
    session.add(row)
    session.flush()
    return CreatedToken(row, secret)


def list_tokens(session: Session, org_id: str | None = None) -> list[tuple[ApiToken, str]]:
    """Tokens (newest first) with their user's name; every organization when ``org_id``
    is None (the CLI)."""
    stmt = select(ApiToken, User.username).join(User, User.id == ApiToken.user_id)
    if org_id is not None:
        stmt = stmt.where(ApiToken.org_id == org_id)
    stmt = stmt.order_by(ApiToken.created_at.desc(), ApiToken.id)
    return [(row, username) for row, username in session.execute(stmt)]


def get_token(session: Session, token_id: uuid.UUID, org_id: str | None = None) -> ApiToken:
    row = session.get(ApiToken, token_id)
    if row is None or (org_id is not None and row.org_id != org_id):
        raise NotFoundError(f"API token {token_id} not found")
    return row


def revoke_token(
    session: Session, token_id: uuid.UUID, org_id: str | None = None, now: datetime | None = None
) -> ApiToken:
    """Revoke (idempotent: a revoked token keeps its first revocation time)."""
    row = get_token(session, token_id, org_id)
    if row.revoked_at is None:
        row.revoked_at = now or utcnow()
        session.flush()
    return row


def token_status(row: ApiToken, now: datetime | None = None) -> str:
    """``active``, ``expired`` or ``revoked``."""
    if row.revoked_at is not None:
        return "revoked"
    return "expired" if row.expires_at <= (now or utcnow()) else "active"


def find_token(session: Session, secret: str) -> tuple[ApiToken, User] | None:
    """The token ``secret`` stands for and its user (whatever its status), else None."""
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == token_hash(secret)))
    if row is None:
        return None
    user = session.get(User, row.user_id)
    return None if user is None else (row, user)
