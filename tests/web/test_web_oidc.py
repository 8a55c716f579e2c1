"""Console sign-in with OIDC against a real (loopback) OpenID provider: the whole
authorization-code flow with PKCE, the API accepting the resulting token with the
roles it carries, and every way the flow can be refused."""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from console_env import ConsoleEnv
from fastapi.testclient import TestClient
from oidc_provider import Running

from aggsched.web import create_app
from aggsched.web.session import SessionData


@pytest.fixture
def idp() -> Iterator[Running]:
    running = Running()
    yield running
    running.close()


@pytest.fixture
def oidc_client(console: ConsoleEnv, idp: Running) -> TestClient:
    settings = console.settings.model_copy(update={
        "oidc_issuer": idp.provider.issuer, "oidc_audience": idp.provider.audience,
        "console_oidc_client_id": idp.provider.client_id,
    })  # fmt: skip
    return TestClient(create_app(settings, console.store), raise_server_exceptions=False)


def _start(client: TestClient, org: str = "default", next_path: str = "/builds") -> str:
    started = client.get("/oidc/login", params={"org": org, "next": next_path},
                         follow_redirects=False)  # fmt: skip
    assert started.status_code == 303
    return started.headers["location"]


def _callback(authorize_url: str) -> str:
    """What the browser does at the provider: it answers with a redirect to us."""
    answer = httpx.get(authorize_url, follow_redirects=False)
    assert answer.status_code == 302, answer.text
    target = urlsplit(answer.headers["location"])
    assert target.netloc == "testserver" and target.path == "/oidc/callback"
    return f"{target.path}?{target.query}"


def test_the_whole_code_flow_with_pkce(oidc_client: TestClient, idp: Running) -> None:
    login = oidc_client.get("/login")
    assert 'action="/oidc/login"' in login.text
    assert idp.provider.issuer.split("//")[1] in login.headers["content-security-policy"]
    authorize = _start(oidc_client)
    asked = {k: v[0] for k, v in parse_qs(urlsplit(authorize).query).items()}
    assert authorize.startswith(f"{idp.provider.issuer}/authorize?")
    assert asked["client_id"] == "aggsched-console" and asked["response_type"] == "code"
    assert asked["code_challenge_method"] == "S256" and len(asked["code_challenge"]) == 43
    assert asked["redirect_uri"] == "http://testserver/oidc/callback"
    assert asked["scope"] == "openid profile" and asked["state"] and asked["nonce"]
    done = oidc_client.get(_callback(authorize), follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == "/builds"
    (sent,) = idp.provider.token_requests
    assert sent["grant_type"] == "authorization_code" and sent["code_verifier"]
    session = SessionData.decode(oidc_client.cookies.get("aggsched_session"))
    assert session is not None and session.source == "oidc" and session.org == "default"
    page = oidc_client.get("/builds")
    assert page.status_code == 200
    assert "<strong>alice</strong>" in page.text and "aggregates_view" in page.text
    forms = re.findall(r'<form method="(\w+)" action="([^"]*)"', page.text)
    assert [f for f in forms if f[0] == "post"] == [("post", "/logout")]


def test_refusals(oidc_client: TestClient, idp: Running) -> None:
    # a state that is not the one this browser started with
    authorize = _start(oidc_client)
    callback = _callback(authorize)
    forged = re.sub(r"state=[^&]+", "state=forged", callback)
    answer = oidc_client.get(forged)
    assert answer.status_code == 400 and "does not match this sign-in" in answer.text
    assert oidc_client.cookies.get("aggsched_session") is None
    # the provider said no
    _start(oidc_client)
    refusal = {"error": "access_denied", "error_description": "user cancelled"}
    denied = oidc_client.get("/oidc/callback", params=refusal)
    assert denied.status_code == 400 and "user cancelled" in denied.text
    # a callback nobody started here (no flow cookie)
    stranger = TestClient(oidc_client.app, raise_server_exceptions=False)
    lost = stranger.get("/oidc/callback", params={"code": "x", "state": "y"})
    assert lost.status_code == 400 and "not started here" in lost.text
    # a code used twice: the provider refuses the second exchange
    authorize = _start(oidc_client)
    asked = parse_qs(urlsplit(authorize).query)
    callback = _callback(authorize)
    first = oidc_client.get(callback, follow_redirects=False)
    assert first.status_code == 303
    oidc_client.cookies.clear()
    again = oidc_client.get("/oidc/login?org=default", follow_redirects=False)
    state = parse_qs(urlsplit(again.headers["location"]).query)["state"][0]
    code = parse_qs(urlsplit(callback).query)["code"][0]
    replay = oidc_client.get("/oidc/callback", params={"code": code, "state": state})
    assert replay.status_code == 401 and "unknown or used code" in replay.text
    assert asked["state"][0] != state
    # signed in at the provider, but with no role in the organization asked for
    idp.provider.roles = ["acme:admin"]
    authorize = _start(oidc_client, org="default")
    refused = oidc_client.get(_callback(authorize))
    assert refused.status_code == 403 and "refuses you" in refused.text
    assert oidc_client.cookies.get("aggsched_session") is None


def test_off_unless_configured(console: ConsoleEnv) -> None:
    client = TestClient(console.app, raise_server_exceptions=False)
    assert 'action="/oidc/login"' not in client.get("/login").text
    assert client.get("/oidc/login").status_code == 404
