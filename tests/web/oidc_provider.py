"""A small OpenID provider on loopback for the console's sign-in tests: discovery, JWKS,
an authorization endpoint that signs the configured user in at once, and a token
endpoint that checks the code, the redirect URI, the client and the PKCE verifier
(RFC 7636, S256) before issuing RS256 tokens."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

KID = "console-test-key"


@dataclass
class Provider:
    issuer: str = ""
    client_id: str = "aggsched-console"
    audience: str = "aggsched-api"
    user: str = "alice"
    roles: list[str] = field(default_factory=lambda: ["default:aggregates_view"])
    key: Any = field(default_factory=lambda: rsa.generate_private_key(65537, 2048))
    codes: dict[str, dict[str, str]] = field(default_factory=dict)
    token_requests: list[dict[str, str]] = field(default_factory=list)

    def jwks(self) -> dict[str, Any]:
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        return {"keys": [{**public, "kid": KID, "use": "sig", "alg": "RS256"}]}

    def sign(self, claims: dict[str, Any]) -> str:
        now = int(time.time())
        body = {"iss": self.issuer, "iat": now, "exp": now + 600, **claims}
        return jwt.encode(body, self.key, algorithm="RS256", headers={"kid": KID})

    def authorize(self, query: dict[str, str]) -> tuple[int, dict[str, str]]:
        if query.get("client_id") != self.client_id or query.get("response_type") != "code":
            return 400, {}
        code = secrets.token_urlsafe(16)
        self.codes[code] = query
        target = query["redirect_uri"] + "?" + urlencode({"code": code, "state": query["state"]})
        return 302, {"Location": target}

    def token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        self.token_requests.append(form)
        asked = self.codes.pop(form.get("code", ""), None)  # a code works once
        if asked is None:
            return 400, {"error": "invalid_grant", "error_description": "unknown or used code"}
        digest = hashlib.sha256(form.get("code_verifier", "").encode()).digest()
        challenge = base64.urlsafe_b64encode(digest).decode().rstrip("=")
        if asked.get("code_challenge_method") != "S256" or challenge != asked["code_challenge"]:
            return 400, {"error": "invalid_grant", "error_description": "PKCE verifier mismatch"}
        if (
            form.get("redirect_uri") != asked["redirect_uri"]
            or form.get("client_id") != self.client_id
        ):
            return 400, {"error": "invalid_grant", "error_description": "client or redirect"}
        claims = {"sub": f"sub-{self.user}", "preferred_username": self.user, "roles": self.roles}
        return 200, {
            "token_type": "Bearer",
            "access_token": self.sign({**claims, "aud": self.audience}),
            "id_token": self.sign({**claims, "aud": self.client_id, "nonce": asked["nonce"]}),
        }


def _handler(provider: Provider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_args: object) -> None:
            pass

        def _send(
            self, status: int, body: Any = None, headers: dict[str, str] | None = None
        ) -> None:
            data = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            if url.path == "/.well-known/openid-configuration":
                self._send(200, {
                    "issuer": provider.issuer, "jwks_uri": f"{provider.issuer}/jwks",
                    "authorization_endpoint": f"{provider.issuer}/authorize",
                    "token_endpoint": f"{provider.issuer}/token",
                })  # fmt: skip
            elif url.path == "/jwks":
                self._send(200, provider.jwks())
            elif url.path == "/authorize":
                status, headers = provider.authorize(query)
                self._send(status, None, headers)
            else:
                self._send(404, {"error": "not found"})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            if urlsplit(self.path).path == "/token":
                status, body = provider.token(form)
                self._send(status, body)
            else:
                self._send(404, {"error": "not found"})

    return Handler


class Running:
    """The provider serving on a free loopback port until closed."""

    def __init__(self) -> None:
        self.provider = Provider()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.provider))
        self.provider.issuer = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
