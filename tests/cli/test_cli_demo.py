"""`aggsched demo`: set up twice (idempotent), then a real server process builds on request."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from aggsched.cli import app
from aggsched.config import Settings
from aggsched.store import Store, catalog, schedules


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("AGGSCHED_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("AGGSCHED_DATABASE_URL", raising=False)
    return tmp_path / "home"


def test_demo_sets_up_once_then_serves_and_builds(home: Path):
    runner = CliRunner()
    first = runner.invoke(app, ["demo", "--setup-only", "--scale", "0.01"], catch_exceptions=False)
    assert first.exit_code == 0, first.output
    password = re.search(r"password (\S+)", first.output).group(1)
    assert "curl -s -u admin:" in first.output and "/aggregates-creation/execute" in first.output
    again = runner.invoke(app, ["demo", "--setup-only", "--scale", "0.01"], catch_exceptions=False)
    assert f"password {password}" in again.output  # reused, not regenerated
    store = Store.from_settings(Settings())
    with store.session() as s:
        (project,) = catalog.list_projects(s, "default")
        (cube,) = catalog.list_cubes(s, project.id)
        assert len(schedules.list_schedules(s, "default", cube.id)) == 1
        assert catalog.verify_password(s, "admin", password) is not None
    store.dispose()

    port = _free_port()
    env = {**os.environ, "AGGSCHED_HOME": str(home), "AGGSCHED_WORKER_POLL_SECONDS": "0.2"}
    server = subprocess.Popen(
        [sys.executable, "-m", "aggsched.cli", "serve", "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        token = _wait_for_token(base, password)
        auth = {"Authorization": f"Bearer {token}"}
        cube_url = f"{base}/org/default/project/{project.id}/cube/{cube.id}/aggregates-creation"
        done = _wait_for(lambda: _statuses(base, auth) == ["done"], 60)
        assert done, _statuses(base, auth)  # the publish batch, built by the server's workers
        queued = httpx.post(f"{cube_url}/execute", headers=auth).json()["response"]
        assert queued["success"] is True
        assert _wait_for(lambda: _statuses(base, auth) == ["done", "done"], 60)
    finally:
        server.send_signal(signal.SIGTERM)
        output = server.communicate(timeout=60)[0]
    assert server.returncode == 0, output


def _statuses(base: str, auth: dict[str, str]) -> list[str]:
    page = httpx.get(f"{base}/org/default/aggregates-creation/builds/history", headers=auth)
    return [b["status"] for b in page.json()["response"]["data"]]


def _wait_for(check, seconds: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return False


def _wait_for_token(base: str, password: str) -> str:
    deadline = time.monotonic() + 30
    while True:
        try:
            reply = httpx.get(f"{base}/default/auth", auth=("admin", password))
            if reply.status_code == 200:
                return reply.text
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.2)


@pytest.mark.spark
@pytest.mark.timeout(600)  # two processes each start a JVM: slow on a loaded machine
def test_demo_on_spark_builds_in_an_in_process_spark(home: Path, spark_installed: Path) -> None:
    """`aggsched demo --warehouse spark`: TPC-H registered in a local Spark kept in the demo
    directory; a second process (the metastore outlives the first) builds the cube there."""
    cache = Path(__file__).resolve().parents[2] / ".aggsched" / "cache"
    env = {**os.environ, "AGGSCHED_HOME": str(home), "AGGSCHED_CACHE_DIR": str(cache),
           "COLUMNS": "500"}  # fmt: skip  # no wrapping of the printed paths
    cli = [sys.executable, "-m", "aggsched.cli"]
    setup = subprocess.run(
        [*cli, "demo", "--setup-only", "--warehouse", "spark", "--scale", "0.01"],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert setup.returncode == 0, setup.stdout + setup.stderr
    assert f"warehouse spark://local[2]{home}/demo/spark" in setup.stdout
    cube_id = re.search(r"cube Sales (\S+)", setup.stdout).group(1)
    built = subprocess.run(
        [*cli, "build", cube_id, "--json"], env=env, capture_output=True, text=True, timeout=300
    )
    assert built.returncode == 0, built.stdout + built.stderr
    report = json.loads(built.stdout)
    assert report["status"] == "done" and report["aggregates"], report
    assert all(a["status"] == "active" and a["rows"] for a in report["aggregates"]), report
    assert (home / "demo" / "spark" / "warehouse" / "as_agg.db").is_dir()
