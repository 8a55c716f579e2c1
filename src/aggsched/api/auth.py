"""Authentication: local HS256 tokens (AtScale's ``GET /{orgId}/auth``) and OIDC RS256.

Local mode: ``GET /{orgId}/auth`` checks HTTP Basic credentials against the store (argon2)
and returns a JWT signed with a key kept in ``<home>/jwt.key`` (created once, mode 0600)
or ``AGGSCHED_JWT_SECRET``. Its roles are read from the store on every request, so a
revoked role takes effect at once.

OIDC mode (``AGGSCHED_OIDC_ISSUER`` set): RS256 tokens from that issuer are also accepted,
checked against its JWKS (``AGGSCHED_OIDC_JWKS_URL``, else the discovery document's
``jwks_uri``, else ``<issuer>/.well-known/jwks.json``) and ``AGGSCHED_OIDC_AUDIENCE``.
Roles come from the claim named by ``AGGSCHED_OIDC_ROLES_CLAIM`` (default ``roles``):
either a list of ``"<org>:<role>"`` strings (``["default:aggregates_view"]``) or an
object mapping an org id to a role or a list of roles (``{"default": ["admin"]}``).
Unknown role names are ignored.

API tokens (``aggsched_...``, made by ``aggsched token create`` or ``POST
/org/{orgId}/tokens``) are opaque and long-lived; each use looks up the stored hash, so a
revoked token is refused from the next request on.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt

from aggsched.api.errors import ApiError
from aggsched.api.validation import unsafe_character
from aggsched.config import Settings
from aggsched.store import Store, limits, tokens
from aggsched.store.models import Role

LOCAL_ISSUER = "aggsched"
LOCAL_ALGORITHM = "HS256"
DISCOVERY_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class Principal:
    """Who is calling: a local user (roles in the store) or an OIDC subject (roles in
    the token)."""

    username: str
    source: str  # "local" or "oidc"
    token_roles: Mapping[str, frozenset[Role]] = field(default_factory=dict)
    org: str | None = None  # a local token is issued for one organization (/{orgId}/auth)


def unauthorized(message: str, scheme: str = "Bearer", error: str | None = None) -> ApiError:
    """A 401 carrying the ``WWW-Authenticate`` challenge RFC 6750/7617 ask for."""
    challenge = f'{scheme} realm="aggsched"'
    if error:
        challenge += f', error="{error}"'
    return ApiError(401, message, headers={"WWW-Authenticate": challenge})


def load_or_create_key(settings: Settings) -> bytes:
    """The HS256 key: the configured secret, or ``<home>/jwt.key`` made once (0600)."""
    if settings.jwt_secret:
        return settings.jwt_secret.encode()
    path = Path(settings.ensure_home()) / "jwt.key"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
    return path.read_text().strip().encode()


class TokenIssuer:
    """Signs and checks local tokens."""

    def __init__(self, key: bytes, lifetime: timedelta) -> None:
        self._key = key
        self.lifetime = lifetime

    def issue(self, username: str, org_id: str, now: datetime | None = None) -> str:
        moment = now or datetime.now(UTC)
        claims = {
            "sub": username,
            "org": org_id,
            "iss": LOCAL_ISSUER,
            "iat": int(moment.timestamp()),
            "exp": int((moment + self.lifetime).timestamp()),
        }
        return jwt.encode(claims, self._key, algorithm=LOCAL_ALGORITHM)

    def verify(self, token: str) -> Principal:
        try:
            claims = jwt.decode(
                token, self._key, algorithms=[LOCAL_ALGORITHM], issuer=LOCAL_ISSUER,
                options={"require": ["exp", "sub", "iss"]},
            )  # fmt: skip
        except jwt.ExpiredSignatureError as exc:
            raise unauthorized("token expired", error="invalid_token") from exc
        except jwt.PyJWTError as exc:
            raise unauthorized(f"invalid token: {exc}", error="invalid_token") from exc
        org = claims.get("org")
        return Principal(username=str(claims["sub"]), source="local", org=org and str(org))


def parse_roles_claim(value: Any) -> dict[str, frozenset[Role]]:
    """Roles per org from an OIDC claim (list of ``org:role`` or ``{org: role(s)}``)."""
    pairs: list[tuple[str, str]] = []
    if isinstance(value, list):
        pairs = [
            tuple(item.split(":", 1)) for item in value if isinstance(item, str) and ":" in item
        ]  # type: ignore[misc]
    elif isinstance(value, dict):
        for org, roles in value.items():
            for role in [roles] if isinstance(roles, str) else roles or []:
                if isinstance(role, str):
                    pairs.append((str(org), role))
    known = {role.value for role in Role}
    result: dict[str, set[Role]] = {}
    for org, role in pairs:
        if role in known:
            result.setdefault(org, set()).add(Role(role))
    return {org: frozenset(roles) for org, roles in result.items()}


class OidcVerifier:
    """Checks RS256 tokens of one external issuer against its JWKS (fetched lazily)."""

    def __init__(self, settings: Settings) -> None:
        assert settings.oidc_issuer
        self.issuer = settings.oidc_issuer
        self.audience = settings.oidc_audience
        self.roles_claim = settings.oidc_roles_claim
        self.username_claim = settings.oidc_username_claim
        self._jwks_url = settings.oidc_jwks_url
        self._client: jwt.PyJWKClient | None = None
        self._lock = threading.Lock()

    def _discover(self) -> str:
        base = self.issuer.rstrip("/")
        try:
            url = f"{base}/.well-known/openid-configuration"
            with urllib.request.urlopen(url, timeout=DISCOVERY_TIMEOUT_SECONDS) as response:
                return str(json.load(response)["jwks_uri"])
        except (OSError, ValueError, KeyError):
            return f"{base}/.well-known/jwks.json"

    def client(self) -> jwt.PyJWKClient:
        with self._lock:
            if self._client is None:
                url = self._jwks_url or self._discover()
                self._client = jwt.PyJWKClient(url, timeout=int(DISCOVERY_TIMEOUT_SECONDS))
            return self._client

    def verify(self, token: str) -> Principal:
        try:
            key = self.client().get_signing_key_from_jwt(token)
            claims = jwt.decode(
                token, key.key, algorithms=["RS256"], issuer=self.issuer,
                audience=self.audience, options={"require": ["exp", "iss", "sub"],
                                                 "verify_aud": self.audience is not None},
            )  # fmt: skip
        except jwt.ExpiredSignatureError as exc:
            raise unauthorized("token expired", error="invalid_token") from exc
        except (jwt.PyJWTError, jwt.PyJWKClientError) as exc:
            raise unauthorized(f"invalid token: {exc}", error="invalid_token") from exc
        username = str(claims.get(self.username_claim) or claims["sub"])
        if len(username) > limits.NAME or unsafe_character(username):
            raise unauthorized("invalid token: unusable user name claim", error="invalid_token")
        roles = parse_roles_claim(claims.get(self.roles_claim))
        return Principal(username=username, source="oidc", token_roles=roles)


class ApiTokenVerifier:
    """Checks long-lived API tokens against the store (hash lookup on every request)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def verify(self, token: str) -> Principal:
        with self.store.session() as session:
            found = tokens.find_token(session, token)
            if found is None:
                raise unauthorized("unknown API token", error="invalid_token")
            row, user = found
            status = tokens.token_status(row)
            if status != "active":
                raise unauthorized(f"API token {status}", error="invalid_token")
            return Principal(username=user.username, source="local", org=row.org_id)


class Authenticator:
    """Routes a bearer token to the API-token verifier by its prefix, else to the local or
    the OIDC verifier by its algorithm."""

    def __init__(
        self,
        issuer: TokenIssuer,
        oidc: OidcVerifier | None,
        api_tokens: ApiTokenVerifier | None = None,
    ) -> None:
        self.issuer = issuer
        self.oidc = oidc
        self.api_tokens = api_tokens

    @classmethod
    def from_settings(cls, settings: Settings, store: Store | None = None) -> Authenticator:
        lifetime = timedelta(seconds=settings.jwt_lifetime_seconds)
        local = TokenIssuer(load_or_create_key(settings), lifetime)
        oidc = OidcVerifier(settings) if settings.oidc_issuer else None
        return cls(local, oidc, ApiTokenVerifier(store) if store is not None else None)

    def verify(self, token: str) -> Principal:
        if self.api_tokens is not None and tokens.looks_like_api_token(token):
            return self.api_tokens.verify(token)
        try:
            algorithm = jwt.get_unverified_header(token).get("alg")
        except jwt.PyJWTError as exc:
            raise unauthorized(f"malformed token: {exc}", error="invalid_token") from exc
        if algorithm == LOCAL_ALGORITHM:
            return self.issuer.verify(token)
        if algorithm == "RS256" and self.oidc is not None:
            return self.oidc.verify(token)
        raise unauthorized(f"token algorithm {algorithm!r} not accepted", error="invalid_token")
