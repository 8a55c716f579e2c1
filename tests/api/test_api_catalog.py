"""Publishing uploads, connections (no secrets out), projects and cubes."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pytest
from api_helpers import ApiEnv
from fastapi.testclient import TestClient

from aggsched.api import create_app
from aggsched.config import Settings


def _zip(root: Path, prefix: str = "repo/") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                archive.write(path, prefix + path.relative_to(root).as_posix())
    return buffer.getvalue()


def _tgz(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_publish_zip_upload(api: ApiEnv, sml_tpch: Path) -> None:
    files = {"file": ("tpch.zip", _zip(sml_tpch), "application/zip")}
    response = api.client.post("/org/default/projects", files=files, headers=api.headers())
    assert response.status_code == 200, response.text
    result = response.json()["response"]
    assert result["project_id"] == str(api.project_id) and result["project"] == "tpc-h"
    assert all(c["change"] == "unchanged" for c in result["changes"])
    listed = api.client.get("/org/default/projects", headers=api.headers("viewer")).json()
    assert {p["unique_name"] for p in listed["response"]} == {"tpc-h", "tpc-h-copy"}
    one = api.client.get(f"/org/default/projects/{api.project_id}", headers=api.headers())
    assert one.json()["response"]["cubes"][0]["id"] == str(api.cube_id)


def test_publish_reports_every_sml_error(api: ApiEnv) -> None:
    broken = {
        "catalog.yml": b"unique_name: broken\nobject_type: catalog\nlabel: b\nversion: 1\n",
        "models/m.yml": b"unique_name: m\nobject_type: model\nlabel: m\nrelationships: []\n"
                        b"dimensions: [nope]\nmetrics: [missing]\n",
    }  # fmt: skip
    files = {"file": ("b.tgz", _tgz(broken), "application/gzip")}
    response = api.client.post("/org/default/projects", files=files, headers=api.headers())
    assert response.status_code == 400, response.text
    errors = response.json()["errors"]
    assert len(errors) >= 2
    assert any(e["field"].startswith("models/m.yml:") for e in errors)
    listed = api.client.get("/org/default/projects", headers=api.headers()).json()["response"]
    assert "broken" not in {p["unique_name"] for p in listed}


def test_publish_bad_archive_role_and_size(api: ApiEnv, sml_tpch: Path, tmp_path: Path) -> None:
    junk = {"file": ("x.zip", b"not an archive", "application/zip")}
    response = api.client.post("/org/default/projects", files=junk, headers=api.headers())
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "file"
    files = {"file": ("tpch.zip", _zip(sml_tpch), "application/zip")}
    denied = api.client.post("/org/default/projects", files=files, headers=api.headers("manager"))
    assert denied.status_code == 403
    small = Settings(home=tmp_path, database_url=api.settings.database_url, max_upload_bytes=1000)
    with TestClient(create_app(small, api.store)) as client:
        token = api.tokens["admin"]
        client.app.state.authenticator = api.client.app.state.authenticator  # type: ignore[attr-defined]
        big = client.post("/org/default/projects", files=files,
                          headers={"Authorization": f"Bearer {token}"})  # fmt: skip
        assert big.status_code == 413
        assert big.json()["status"]["i18n_message"] == "response.error.payload_too_large"


def test_connections_never_return_secrets(api: ApiEnv) -> None:
    url = "/org/default/connections"
    literal = {"name": "wh", "url": "postgresql://bob:hunter2@db:5432/dw"}
    placeholder = {"name": "wh2", "url": "postgresql://bob:${PG_PASSWORD}@db/dw",
                   "aggregate_schema": "aggs"}  # fmt: skip
    for body in (literal, placeholder):
        assert api.client.post(url, json=body, headers=api.headers()).status_code == 200
    listed = api.client.get(url, headers=api.headers("viewer")).json()["response"]
    urls = {c["name"]: c["url"] for c in listed}
    assert "hunter2" not in urls["wh"] and "***" in urls["wh"]
    assert urls["wh2"] == "postgresql://bob:${PG_PASSWORD}@db/dw"
    assert api.client.post(url, json=literal, headers=api.headers("viewer")).status_code == 403
    extra = api.client.post(url, json={**literal, "password": "x"}, headers=api.headers())
    assert extra.status_code == 400
    assert api.client.delete(f"{url}/wh", headers=api.headers()).status_code == 200
    assert api.client.delete(f"{url}/wh", headers=api.headers()).status_code == 404
    names = {c["name"] for c in api.client.get(url, headers=api.headers()).json()["response"]}
    assert "wh" not in names and "wh2" in names


def test_cube_endpoints(api: ApiEnv) -> None:
    base = f"/org/default/project/{api.project_id}/cube/{api.cube_id}"
    cube = api.client.get(base, headers=api.headers()).json()["response"]
    assert cube["id"] == str(api.cube_id) and cube["project_id"] == str(api.project_id)
    aggs = api.client.get(f"{base}/aggregates", headers=api.headers()).json()["response"]
    assert aggs["total"] >= 1 and {d["cube_id"] for d in aggs["data"]} == {str(api.cube_id)}
    inst = api.client.get(f"{base}/aggregates/instances", headers=api.headers()).json()
    assert {i["cube_id"] for i in inst["response"]["data"]} == {str(api.cube_id)}


def test_an_uploaded_project_never_sees_the_server_environment(
    api: ApiEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGGSCHED_TEST_SECRET", "hunter2")
    repo = {
        "catalog.yml": b"unique_name: env-probe\nobject_type: catalog\nlabel: probe\n"
        b"version: ${AGGSCHED_TEST_SECRET}\n",
        "models/m.yml": b"unique_name: m\nobject_type: model\nlabel: m\nrelationships: []\n"
        b"metrics: []\n",
    }
    files = {"file": ("p.tgz", _tgz(repo), "application/gzip")}
    response = api.client.post("/org/default/projects", files=files, headers=api.headers())
    listed = api.client.get("/org/default/projects", headers=api.headers()).text
    assert "hunter2" not in response.text and "hunter2" not in listed


@pytest.mark.parametrize(
    "url",
    ["postgresql://db/dw?user=bob&password=hunter2", "postgresql://bob:hunter2@db:5432/dw"],
)
def test_connection_passwords_never_come_back(api: ApiEnv, url: str) -> None:
    body = {"name": "probe", "url": url}
    created = api.client.post("/org/default/connections", json=body, headers=api.headers())
    assert created.status_code == 200, created.text
    listed = api.client.get("/org/default/connections", headers=api.headers()).text
    assert "hunter2" not in created.text and "hunter2" not in listed and "***" in listed


@pytest.mark.parametrize("url", ["postgresql://bob:hunter2@[::1/dw", "mysql://db/x", "pg://x"])
def test_malformed_connection_urls_are_refused(api: ApiEnv, url: str) -> None:
    body = {"name": "probe2", "url": url}
    response = api.client.post("/org/default/connections", json=body, headers=api.headers())
    assert response.status_code == 400
    assert "hunter2" not in response.text
    assert response.json()["errors"][0]["field"] == "url"
