"""Authentication and authorization (SQLite and PostgreSQL): local tokens, OIDC RS256
tokens checked against a JWKS served by a local HTTP server, roles and tenant isolation."""

from __future__ import annotations

import json
import os
import stat
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from api_helpers import ApiEnv, basic
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient
from jwt.algorithms import RSAAlgorithm

from aggsched.api import create_app
from aggsched.api.auth import load_or_create_key, parse_roles_claim
from aggsched.config import Settings
from aggsched.store.models import Role


def _assert_401(response: Any, scheme: str = "Bearer") -> None:
    assert response.status_code == 401, response.text
    assert response.headers["WWW-Authenticate"].startswith(scheme)
    body = response.json()
    assert body["response"] is None
    assert body["status"]["i18n_message"] == "response.error.unauthorized"


def test_login_returns_plain_text_jwt(api_any: ApiEnv) -> None:
    response = api_any.client.get("/default/auth", headers=basic("viewer"))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    claims = jwt.decode(response.text, options={"verify_signature": False})
    assert claims["sub"] == "viewer" and claims["exp"] - claims["iat"] == 3600


def test_login_rejects_bad_credentials(api_any: ApiEnv) -> None:
    _assert_401(api_any.client.get("/default/auth", headers=basic("viewer", "wrong")), "Basic")
    _assert_401(api_any.client.get("/default/auth", headers=basic("nobody")), "Basic")
    _assert_401(api_any.client.get("/default/auth"), "Basic")
    other_org = api_any.client.get("/acme/auth", headers=basic("viewer"))
    assert other_org.status_code == 404


@pytest.mark.parametrize(
    "token", [None, "not-a-jwt", "a.b.c", jwt.encode({"sub": "admin"}, "k" * 32, "HS256")]
)
def test_bad_tokens_get_401(api_any: ApiEnv, token: str | None) -> None:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    _assert_401(api_any.client.get("/org/default/whoami", headers=headers))


def test_expired_and_foreign_tokens_get_401(api_any: ApiEnv) -> None:
    issuer = api_any.client.app.state.authenticator.issuer  # type: ignore[attr-defined]
    old = issuer.issue("admin", "default", now=datetime.now(UTC) - timedelta(hours=2))
    _assert_401(api_any.client.get("/org/default/whoami", headers=_bearer(old)))
    forged = jwt.encode(
        {"sub": "admin", "iss": "aggsched", "exp": int(time.time()) + 60}, "x" * 32, "HS256"
    )
    _assert_401(api_any.client.get("/org/default/whoami", headers=_bearer(forged)))


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_viewer_reads_but_cannot_change(api_any: ApiEnv) -> None:
    viewer = api_any.headers("viewer")
    client, base = api_any.client, api_any.cube_path()
    assert client.get(f"{base}/scheduler", headers=viewer).status_code == 200
    body = {"time_expression": "0 0 1 * * ?", "path": "aggregate/create"}
    denied = [
        client.post(f"{base}/scheduler", json=body, headers=viewer),
        client.post(f"{base}/execute", headers=viewer),
        client.delete(f"{base}/scheduler/jobId/{uuid.uuid4()}", headers=viewer),
        client.put(f"/aggregates/orgId/default/definitionId/{api_any.cube_id}?unblock=true",
                   headers=viewer),
    ]  # fmt: skip
    for response in denied:
        assert response.status_code == 403, response.text
        assert response.json()["status"]["i18n_message"] == "response.error.forbidden"
    manager = client.post(f"{base}/scheduler", json=body, headers=api_any.headers("manager"))
    assert manager.status_code == 200
    assert manager.json()["response"]["created_by_user"] == "manager"


def test_no_existence_leaks_across_orgs(api_any: ApiEnv) -> None:
    client = api_any.client
    acme = api_any.headers("acme_admin")
    for path in (
        "/org/default/aggregates-creation/builds/history",
        f"{api_any.cube_path()}/scheduler",
        "/aggregates/orgId/default",
        "/org/nowhere/whoami",
    ):
        response = client.get(path, headers=acme)
        assert response.status_code == 404, path
        assert response.json()["status"]["i18n_message"] == "response.error.not_found"
    # acme's own org, default's project id: the project is not acme's -> 404 too
    foreign = client.get(f"{api_any.cube_path('acme')}/scheduler", headers=acme)
    assert foreign.status_code == 404
    assert client.get("/org/acme/whoami", headers=api_any.headers()).status_code == 404


def test_key_is_generated_once_with_mode_0600(tmp_path: Any) -> None:
    settings = Settings(home=tmp_path)
    first = load_or_create_key(settings)
    assert stat.S_IMODE(os.stat(tmp_path / "jwt.key").st_mode) == 0o600
    assert load_or_create_key(settings) == first and len(first) >= 32
    assert load_or_create_key(Settings(home=tmp_path, jwt_secret="configured")) == b"configured"


def test_configured_secret_signs_tokens(api_any: ApiEnv, tmp_path: Any) -> None:
    settings = Settings(home=tmp_path, jwt_secret="a-configured-secret-of-32-bytes!")
    app = create_app(settings, api_any.store)
    with TestClient(app) as client:
        token = client.get("/default/auth", headers=basic("admin")).text
        jwt.decode(token, "a-configured-secret-of-32-bytes!", algorithms=["HS256"])
        assert client.get("/org/default/whoami", headers=_bearer(token)).status_code == 200
        # the module app's own key does not verify it
        _assert_401(api_any.client.get("/org/default/whoami", headers=_bearer(token)))


def test_roles_claim_forms() -> None:
    assert parse_roles_claim(["default:admin", "acme:aggregates_view", "junk", "x:nope"]) == {
        "default": frozenset({Role.ADMIN}),
        "acme": frozenset({Role.AGGREGATES_VIEW}),
    }
    assert parse_roles_claim({"default": "aggregates_manage", "acme": ["admin"]}) == {
        "default": frozenset({Role.AGGREGATES_MANAGE}),
        "acme": frozenset({Role.ADMIN}),
    }
    assert parse_roles_claim(None) == {}


# --- OIDC ----------------------------------------------------------------------------


class _Issuer:
    """An RSA key pair whose public half a local HTTP server publishes as a JWKS."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public = json.loads(RSAAlgorithm.to_jwk(self.key.public_key()))
        self.jwks = {"keys": [{**public, "kid": "k1", "use": "sig", "alg": "RS256"}]}
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                documents = {
                    "/.well-known/openid-configuration": {"jwks_uri": f"{issuer.url}/keys"},
                    "/keys": issuer.jwks,
                }
                document = documents.get(self.path)
                self.send_response(200 if document else 404)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(json.dumps(document or {}).encode())

            def log_message(self, *args: object) -> None:
                return None

        return Handler

    def token(self, key: Any = None, kid: str = "k1", **claims: Any) -> str:
        now = int(time.time())
        payload = {"iss": self.url, "aud": "aggsched", "sub": "u-1", "iat": now,
                   "exp": now + 300, "preferred_username": "alice", **claims}  # fmt: skip
        return jwt.encode(payload, key or self.key, "RS256", headers={"kid": kid})


@pytest.fixture(scope="module")
def oidc() -> Iterator[_Issuer]:
    issuer = _Issuer()
    yield issuer
    issuer.server.shutdown()


@pytest.fixture
def oidc_client(api_any: ApiEnv, oidc: _Issuer, tmp_path: Any) -> Iterator[TestClient]:
    settings = Settings(home=tmp_path, oidc_issuer=oidc.url, oidc_audience="aggsched")
    with TestClient(create_app(settings, api_any.store)) as client:
        yield client


def test_oidc_token_roles_from_list_and_dict(
    oidc_client: TestClient, oidc: _Issuer, api_any: ApiEnv
) -> None:
    as_list = oidc.token(roles=["default:aggregates_view"])
    response = oidc_client.get("/org/default/whoami", headers=_bearer(as_list))
    assert response.status_code == 200, response.text
    assert response.json()["response"] == {
        "username": "alice", "organization_id": "default", "roles": ["aggregates_view"],
    }  # fmt: skip
    post = oidc_client.post(f"{api_any.cube_path()}/execute", headers=_bearer(as_list))
    assert post.status_code == 403
    as_dict = oidc.token(roles={"default": ["aggregates_manage"]})
    post = oidc_client.post(f"{api_any.cube_path()}/execute", headers=_bearer(as_dict))
    assert post.status_code == 200
    no_role = oidc.token(roles={"acme": "admin"})
    assert oidc_client.get("/org/default/whoami", headers=_bearer(no_role)).status_code == 404


def test_oidc_rejects_bad_tokens(oidc_client: TestClient, oidc: _Issuer) -> None:
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())
    bad = [
        oidc.token(key=other_key, roles=["default:admin"]),
        oidc.token(kid="unknown", roles=["default:admin"]),
        oidc.token(aud="someone-else", roles=["default:admin"]),
        oidc.token(iss="https://evil.example", roles=["default:admin"]),
        oidc.token(exp=now - 10, iat=now - 400, roles=["default:admin"]),
    ]
    for token in bad:
        _assert_401(oidc_client.get("/org/default/whoami", headers=_bearer(token)))


def test_a_token_is_good_for_the_organization_it_was_issued_for(api_any: ApiEnv) -> None:
    from aggsched.store import catalog

    with api_any.store.session() as s:  # the default admin also administers acme
        user = catalog.get_user_by_name(s, "admin")
        catalog.grant_role(s, user.id, "acme", "admin")
    client = api_any.client
    acme_token = client.get("/acme/auth", headers=basic("admin")).text
    bearer = {"Authorization": f"Bearer {acme_token}"}
    assert client.get("/org/acme/whoami", headers=bearer).status_code == 200
    wrong = client.get("/org/default/whoami", headers=bearer)
    assert wrong.status_code == 401 and "issued for organization 'acme'" in wrong.text
    assert "invalid_token" in wrong.headers["WWW-Authenticate"]
