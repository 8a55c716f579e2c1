"""The console's cookies: the session (which carries the API token), CSRF and flash.

The session cookie holds the organization and the bearer token the API issued at sign-in
(or the OIDC token); the token is what the API checks on every call the console makes,
so the console keeps no session state of its own and any node can serve any page.
Cookies are HttpOnly and SameSite=Lax, and Secure when the request came over HTTPS (see
``AGGSCHED_CONSOLE_SECURE_COOKIES``).

CSRF: every page gets a random nonce cookie; every form carries ``HMAC(key, nonce)``,
where the key is derived from the server's token-signing key (so every node of a
cluster agrees). A POST whose form token does not match its nonce cookie, or whose
``Origin``/``Sec-Fetch-Site`` says it came from another site, changes nothing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

SESSION_COOKIE = "aggsched_session"
CSRF_COOKIE = "aggsched_csrf"
FLASH_COOKIE = "aggsched_flash"
CSRF_FIELD = "csrf_token"
FLASH_SECONDS = 60
MAX_COOKIE_CHARS = 3800  # browsers keep at most ~4096 bytes per cookie


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class SessionData:
    """A signed-in browser: the organization it works in and the API token."""

    org: str
    token: str
    source: Literal["local", "oidc"] = "local"

    def encode(self) -> str:
        raw = json.dumps({"o": self.org, "t": self.token, "s": self.source}).encode()
        return _b64(raw)

    @classmethod
    def decode(cls, value: str | None) -> SessionData | None:
        """The session a cookie holds, or None for anything malformed (never raises)."""
        if not value or len(value) > MAX_COOKIE_CHARS:
            return None
        try:
            data = json.loads(_unb64(value))
        except (ValueError, binascii.Error, UnicodeDecodeError):
            return None
        if not isinstance(data, dict):
            return None
        org, token, source = data.get("o"), data.get("t"), data.get("s", "local")
        if not (isinstance(org, str) and org and isinstance(token, str) and token):
            return None
        return cls(org, token, "oidc" if source == "oidc" else "local")


class CookiePolicy:
    """Sets and clears the console's cookies with the same flags everywhere."""

    def __init__(self, secure: Literal["auto", "always", "never"]) -> None:
        self.mode = secure

    def secure(self, request: Request) -> bool:
        if self.mode == "always":
            return True
        return self.mode == "auto" and request.url.scheme == "https"

    def set(
        self, response: Response, request: Request, name: str, value: str, *,
        max_age: int | None = None,
    ) -> None:  # fmt: skip
        response.set_cookie(
            name, value, max_age=max_age, path="/", httponly=True, samesite="lax",
            secure=self.secure(request),
        )  # fmt: skip

    def clear(self, response: Response, request: Request, name: str) -> None:
        response.delete_cookie(
            name, path="/", httponly=True, samesite="lax", secure=self.secure(request)
        )


class Signer:
    """HMAC-SHA256 with a key of its own purpose, derived from the server's key."""

    def __init__(self, server_key: bytes, purpose: str) -> None:
        self._key = hashlib.sha256(b"aggsched-console:" + purpose.encode() + b":" + server_key)
        self._key_bytes = self._key.digest()

    def sign(self, text: str) -> str:
        return hmac.new(self._key_bytes, text.encode(), hashlib.sha256).hexdigest()

    def verify(self, text: str, signature: str) -> bool:
        return hmac.compare_digest(self.sign(text), signature)

    def seal(self, payload: dict[str, Any], max_age: int) -> str:
        """A tamper-proof, expiring cookie value holding ``payload``."""
        body = _b64(json.dumps({**payload, "exp": int(time.time()) + max_age}).encode())
        return f"{body}.{self.sign(body)}"

    def unseal(self, value: str | None) -> dict[str, Any] | None:
        """The payload of a ``seal``ed value, or None when forged, broken or expired."""
        if not value or "." not in value or len(value) > MAX_COOKIE_CHARS:
            return None
        body, signature = value.rsplit(".", 1)
        if not self.verify(body, signature):
            return None
        try:
            data = json.loads(_unb64(body))
        except (ValueError, binascii.Error, UnicodeDecodeError):
            return None
        if not isinstance(data, dict) or int(data.get("exp", 0)) < time.time():
            return None
        return data


class CsrfRefused(Exception):
    """A state-changing request without proof that it came from one of our pages."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Csrf:
    """Nonce cookie + HMAC form token (see the module docstring)."""

    def __init__(self, signer: Signer) -> None:
        self.signer = signer

    @staticmethod
    def new_nonce() -> str:
        return secrets.token_urlsafe(32)

    def token_for(self, nonce: str) -> str:
        return self.signer.sign(nonce)

    def check(self, request: Request, form_token: object) -> None:
        """Raise ``CsrfRefused`` unless the request is same-origin and its form token
        matches its nonce cookie."""
        site = request.headers.get("sec-fetch-site")
        if site is not None and site not in ("same-origin", "none"):
            raise CsrfRefused(f"the form was sent from another site ({site})")
        origin = request.headers.get("origin")
        if origin is not None and not _same_host(origin, request):
            raise CsrfRefused(f"the form was sent from another origin ({origin})")
        nonce = request.cookies.get(CSRF_COOKIE)
        if not nonce:
            raise CsrfRefused("the form's security cookie is missing (are cookies blocked?)")
        if not isinstance(form_token, str) or not form_token:
            raise CsrfRefused("the form carries no security token")
        if not self.signer.verify(nonce, form_token):
            raise CsrfRefused("the form's security token does not match this browser")


def _same_host(origin: str, request: Request) -> bool:
    """``Origin`` names this server (host and port; the scheme may differ behind a proxy
    that terminates TLS)."""
    if origin == "null":
        return False
    given = urlsplit(origin).netloc.lower()
    host = request.headers.get("host", request.url.netloc).lower()
    return given == host


def safe_next(target: str | None, default: str = "/") -> str:
    """A local path to return to after sign-in; anything else (other hosts, ``//x``,
    backslashes, schemes) becomes ``default``."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return default
    if "\\" in target or any(ord(c) < 32 for c in target):
        return default
    return target


def encode_flash(kind: Literal["ok", "error"], message: str) -> str:
    return _b64(json.dumps({"k": kind, "m": message[:500]}).encode())


def decode_flash(value: str | None) -> tuple[str, str] | None:
    if not value:
        return None
    try:
        data = json.loads(_unb64(value))
        kind, message = str(data["k"]), str(data["m"])
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError):
        return None
    return ("error" if kind == "error" else "ok"), message
