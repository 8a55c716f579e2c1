"""`aggsched org add`, `aggsched user add` and `aggsched serve` (a real uvicorn process)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import typer
from typer.testing import CliRunner

from aggsched.cli import admin_cmd
from aggsched.store import Store, catalog
from aggsched.store.models import Role


@pytest.fixture
def cli(tmp_path: Path) -> tuple[typer.Typer, dict[str, str]]:
    app = typer.Typer()
    admin_cmd.register(app)
    return app, {"AGGSCHED_HOME": str(tmp_path), "AGGSCHED_DATABASE_URL": ""}


def test_org_and_user_add(cli: tuple[typer.Typer, dict[str, str]], tmp_path: Path) -> None:
    app, env = cli
    runner = CliRunner()
    assert runner.invoke(app, ["org", "add", "acme"], env=env).exit_code == 0
    again = runner.invoke(app, ["org", "add", "acme"], env=env)
    assert again.exit_code == 1 and "already exists" in again.output
    added = runner.invoke(
        app, ["user", "add", "ann", "--org", "acme", "--role", "admin", "--password-stdin"],
        input="pw-1\n", env=env,
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    wrong_org = runner.invoke(
        app, ["user", "add", "bob", "--org", "nowhere", "--password-stdin"], input="x\n", env=env
    )
    assert wrong_org.exit_code == 1 and "nowhere" in wrong_org.output
    bad_role = runner.invoke(app, ["user", "add", "bob", "--role", "king"], env=env)
    assert bad_role.exit_code == 2
    store = Store.open(f"sqlite:///{tmp_path / 'aggsched.db'}")
    with store.session() as session:
        user = catalog.verify_password(session, "ann", "pw-1")
        assert user is not None
        assert catalog.roles_for(session, user.id, "acme") == {Role.ADMIN}
        assert catalog.get_user_by_name(session, "bob") is None
        assert "pw-1" not in user.password_hash
    store.dispose()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_runs_uvicorn(cli: tuple[typer.Typer, dict[str, str]], tmp_path: Path) -> None:
    app, env = cli
    runner = CliRunner()
    result = runner.invoke(
        app, ["user", "add", "root", "--role", "admin", "--password-stdin"], input="pw\n", env=env
    )
    assert result.exit_code == 0, result.output
    port = _free_port()
    code = (
        "import typer; from aggsched.cli import server_cmd; app = typer.Typer(); "
        "server_cmd.register(app); app.command('noop')(lambda: None); app()"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code, "serve", "--port", str(port), "--log-level", "warning"],
        env={**os.environ, **env},
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                assert time.monotonic() < deadline and process.poll() is None
                time.sleep(0.1)
        token = httpx.get(f"{base}/default/auth", auth=("root", "pw")).text
        me = httpx.get(f"{base}/org/default/whoami", headers={"Authorization": f"Bearer {token}"})
        assert me.json()["response"]["roles"] == ["admin"]
        assert httpx.get(f"{base}/readyz").json()["response"]["status"] == "ready"
    finally:
        process.terminate()
        process.wait(timeout=10)
