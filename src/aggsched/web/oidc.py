"""Console sign-in with OIDC: the authorization code flow with PKCE (RFC 7636).

The browser is sent to the issuer's authorization endpoint with a random ``state``,
``nonce`` and PKCE challenge, kept in a sealed, short-lived cookie; the issuer sends it
back with a code, which the server exchanges at the token endpoint. The token the API
accepts (the access token when it is an RS256 JWT of the issuer with the configured
audience, else the ID token) becomes the session's token, so the console's calls are
checked by the API exactly like any other OIDC caller's, roles included.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import anyio
import httpx
import jwt

from aggsched.api.auth import Authenticator, Principal
from aggsched.api.errors import ApiError
from aggsched.config import Settings

HTTP_TIMEOUT_SECONDS = 10.0
FLOW_SECONDS = 600  # how long a sign-in may take at the issuer


class OidcError(Exception):
    """The sign-in could not be completed; the message says why, for the sign-in page."""


@dataclass(frozen=True)
class Endpoints:
    authorization: str
    token: str


@dataclass(frozen=True)
class Started:
    """Where to send the browser, and what to remember until it comes back."""

    url: str
    remember: dict[str, str]


def _challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


class OidcClient:
    """One relying party: the configured client at the configured issuer."""

    def __init__(self, settings: Settings, authenticator: Authenticator) -> None:
        assert settings.oidc_issuer and settings.console_oidc_client_id
        self.issuer = settings.oidc_issuer.rstrip("/")
        self.client_id = settings.console_oidc_client_id
        self.client_secret = settings.console_oidc_client_secret
        self.scopes = settings.console_oidc_scopes
        self.public_url = settings.console_public_url
        self.authenticator = authenticator
        self._endpoints: Endpoints | None = None

    @classmethod
    def from_settings(cls, settings: Settings, authenticator: Authenticator) -> OidcClient | None:
        if not (settings.oidc_issuer and settings.console_oidc_client_id):
            return None
        return cls(settings, authenticator)

    def redirect_uri(self, request_base: str) -> str:
        base = (self.public_url or request_base).rstrip("/")
        return f"{base}/oidc/callback"

    async def endpoints(self) -> Endpoints:
        """The issuer's endpoints from its discovery document (fetched once)."""
        if self._endpoints is None:
            url = f"{self.issuer}/.well-known/openid-configuration"
            try:
                async with httpx.AsyncClient(timeout=HTTP_TIMEOUT_SECONDS) as client:
                    response = await client.get(url)
                    response.raise_for_status()
                    document = response.json()
                self._endpoints = Endpoints(
                    str(document["authorization_endpoint"]), str(document["token_endpoint"])
                )
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                raise OidcError(
                    f"the identity provider's discovery document failed: {exc}"
                ) from exc
        return self._endpoints

    async def start(self, org: str, next_path: str, request_base: str) -> Started:
        endpoints = await self.endpoints()
        state, nonce = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        verifier = secrets.token_urlsafe(64)
        params = {
            "response_type": "code", "client_id": self.client_id,
            "redirect_uri": self.redirect_uri(request_base), "scope": self.scopes,
            "state": state, "nonce": nonce, "code_challenge": _challenge(verifier),
            "code_challenge_method": "S256",
        }  # fmt: skip
        separator = "&" if "?" in endpoints.authorization else "?"
        remember = {"state": state, "nonce": nonce, "verifier": verifier, "org": org,
                    "next": next_path}  # fmt: skip
        return Started(endpoints.authorization + separator + urlencode(params), remember)

    async def finish(
        self, code: str, remembered: dict[str, Any], request_base: str
    ) -> tuple[str, Principal]:
        """Exchange the code; the token to keep in the session and who it names."""
        endpoints = await self.endpoints()
        form = {
            "grant_type": "authorization_code", "code": code,
            "redirect_uri": self.redirect_uri(request_base), "client_id": self.client_id,
            "code_verifier": str(remembered["verifier"]),
        }  # fmt: skip
        if self.client_secret:
            form["client_secret"] = self.client_secret
        try:
            async with httpx.AsyncClient(timeout=HTTP_TIMEOUT_SECONDS) as client:
                response = await client.post(endpoints.token, data=form)
            answer = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise OidcError(f"the identity provider's token endpoint failed: {exc}") from exc
        if response.status_code != 200 or not isinstance(answer, dict):
            problem = answer.get("error_description") or answer.get("error") if isinstance(
                answer, dict) else None  # fmt: skip
            raise OidcError(
                f"the identity provider refused the code: {problem or response.status_code}"
            )
        id_token = answer.get("id_token")
        if isinstance(id_token, str):  # JWKS look-ups block: off the event loop
            await anyio.to_thread.run_sync(self._check_nonce, id_token, str(remembered["nonce"]))
        for candidate in (answer.get("access_token"), id_token):
            if isinstance(candidate, str) and candidate.count(".") == 2:
                try:
                    principal = await anyio.to_thread.run_sync(self.authenticator.verify, candidate)
                except ApiError:
                    continue
                return candidate, principal
        raise OidcError(
            "the identity provider's tokens are not accepted by the API (check "
            "AGGSCHED_OIDC_AUDIENCE and the roles claim)"
        )

    def _check_nonce(self, id_token: str, expected: str) -> None:
        """The ID token is the issuer's, for this client, and answers this sign-in."""
        oidc = self.authenticator.oidc
        if oidc is None:
            raise OidcError("OIDC is not configured on the API (AGGSCHED_OIDC_ISSUER)")
        try:
            key = oidc.client().get_signing_key_from_jwt(id_token)
            claims = jwt.decode(id_token, key.key, algorithms=["RS256"], audience=self.client_id,
                                issuer=oidc.issuer)  # fmt: skip
        except (jwt.PyJWTError, jwt.PyJWKClientError) as exc:
            raise OidcError(f"the ID token is not valid: {exc}") from exc
        if claims.get("nonce") != expected:
            raise OidcError("the ID token does not answer this sign-in (nonce mismatch)")
