"""Every failure is the error envelope: unknown routes, wrong methods, oversized bodies,
crashes (500 without a stack trace), and the OpenAPI document describes the envelope."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from api_helpers import ApiEnv
from fastapi.testclient import TestClient

from aggsched.api import create_app
from aggsched.config import Settings


def _is_error_envelope(body: dict[str, object], i18n: str) -> bool:
    status = body["status"]
    assert isinstance(status, dict)
    return body["response"] is None and status["i18n_message"] == i18n and "errors" in body


def test_unknown_route_and_method(api: ApiEnv) -> None:
    missing = api.client.get("/no/such/thing")
    assert missing.status_code == 404
    assert _is_error_envelope(missing.json(), "response.error.not_found")
    wrong = api.client.patch("/org/default/aggregates-creation/builds/history")
    assert wrong.status_code == 405
    assert _is_error_envelope(wrong.json(), "response.error.method_not_allowed")


def test_crash_is_500_without_trace(api: ApiEnv, tmp_path: Path) -> None:
    app = create_app(Settings(home=tmp_path, database_url=api.settings.database_url), api.store)

    def explode() -> None:
        raise RuntimeError("secret internals /etc/passwd")

    app.add_api_route("/explode", explode)
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/explode")
    assert response.status_code == 500
    assert _is_error_envelope(response.json(), "response.error.internal")
    assert "secret" not in response.text and "Traceback" not in response.text


def test_oversized_json_is_413_and_changes_nothing(api: ApiEnv, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, database_url=api.settings.database_url,
                        max_json_bytes=200)  # fmt: skip
    app = create_app(settings, api.store)
    app.state.authenticator = api.client.app.state.authenticator  # type: ignore[attr-defined]
    url = f"{api.cube_path()}/scheduler"
    body = {"time_expression": "0 25 06 ? * *", "path": "aggregate/create", "pad": "x" * 500}
    with TestClient(app) as client:
        declared = client.post(url, json=body, headers=api.headers())
        assert declared.status_code == 413
        assert _is_error_envelope(declared.json(), "response.error.payload_too_large")

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted while streaming
            yield b'{"time_expression": "0 25 06 ? * *", "pad": "'
            yield b"x" * 500
            yield b'"}'

        streamed = client.post(url, content=chunks(), headers={
            **api.headers(), "Content-Type": "application/json"})  # fmt: skip
        assert streamed.status_code == 413
    listed = api.client.get(url, headers=api.headers()).json()["response"]
    assert all("pad" not in s for s in listed)


def test_openapi_documents_envelopes(api: ApiEnv) -> None:
    spec = api.client.get("/openapi.json").json()
    paths = spec["paths"]
    for path in (
        "/org/{orgId}/aggregates-creation/builds/history",
        "/org/{orgId}/project/{projectId}/cube/{cubeId}/aggregates-creation/scheduler",
        "/org/{orgId}/project/{projectId}/cube/{cubeId}/aggregates-creation/execute",
        "/aggregates/orgId/{orgId}",
        "/{orgId}/auth",
    ):
        assert path in paths, path
    history = paths["/org/{orgId}/aggregates-creation/builds/history"]["get"]
    ok_schema = history["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert "Envelope" in ok_schema
    assert "ErrorEnvelope" in str(history["responses"]["404"])
    assert api.client.get("/docs").status_code == 200
