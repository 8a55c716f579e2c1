"""`aggsched config`, `aggsched db` and `aggsched maintenance`, end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from aggsched.cli import app
from aggsched.store import upgrade
from aggsched.store.db import schema_version
from aggsched.telemetry.logs import reset_logging

SECRET = "jwt-secret-never-printed"


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AGGSCHED_HOME", str(tmp_path / "home"))
    for name in ("AGGSCHED_DATABASE_URL", "AGGSCHED_AUTO_MIGRATE", "AGGSCHED_JWT_SECRET"):
        monkeypatch.delenv(name, raising=False)
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(app, list(args), catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result.output

    yield run
    reset_logging()  # `serve` and `scheduler` configure the process's logging


def test_config_prints_the_effective_settings_with_secrets_masked(cli, monkeypatch, tmp_path):
    monkeypatch.setenv("AGGSCHED_JWT_SECRET", SECRET)
    monkeypatch.setenv("AGGSCHED_METRICS_TOKEN", "scrape-token")
    monkeypatch.setenv("AGGSCHED_MAX_CONCURRENT_BUILDS", "5")
    monkeypatch.setenv("AGGSCHED_DATABSE_URL", "typo")
    shown = json.loads(cli("config", "--json"))
    rows = {r["name"]: r for r in shown["settings"]}
    assert rows["AGGSCHED_JWT_SECRET"] == {"name": "AGGSCHED_JWT_SECRET", "value": "***",
                                           "source": "environment"}  # fmt: skip
    assert rows["AGGSCHED_METRICS_TOKEN"]["value"] == "***"
    assert rows["AGGSCHED_MAX_CONCURRENT_BUILDS"]["value"] == "5"
    assert rows["AGGSCHED_LOG_FORMAT"] == {"name": "AGGSCHED_LOG_FORMAT", "value": "auto",
                                           "source": "default"}  # fmt: skip
    assert shown["unknown_variables"] == ["AGGSCHED_DATABSE_URL"]
    text_out = cli("config")
    assert SECRET not in text_out and "scrape-token" not in text_out
    assert "AGGSCHED_DATABSE_URL is set but names no setting" in text_out

    monkeypatch.setenv("AGGSCHED_DATABASE_URL", "postgresql://user:pg-password@db.local/agg")
    masked = json.loads(cli("config", "--json"))
    url = {r["name"]: r for r in masked["settings"]}["AGGSCHED_DATABASE_URL"]["value"]
    assert url == "postgresql://user:***@db.local/agg"


@pytest.mark.parametrize(
    ("name", "value", "accepted"),
    [
        ("AGGSCHED_MAX_CONCURRENT_BUILDS", "many", "an integer ≥ 0"),
        ("AGGSCHED_HEARTBEAT_SECONDS", "0", "a number > 0"),
        ("AGGSCHED_LOG_FORMAT", "xml", "one of `auto`, `json`, `console`"),
        ("AGGSCHED_AUTO_MIGRATE", "sometimes", "`true` or `false`"),
    ],
)
def test_an_invalid_setting_stops_every_command(cli, monkeypatch, tmp_path, name, value, accepted):
    monkeypatch.setenv(name, value)
    for command in (["config"], ["maintenance", "run"], ["serve"], ["scheduler"]):
        out = " ".join(cli(*command, code=2).split())
        assert f"invalid setting {name}='{value}'" in out and f"accepted: {accepted}" in out
    assert not (tmp_path / "home").exists()  # nothing ran


def test_org_settings_are_set_checked_and_shown(cli):
    cli("config", "set", "aggregates.maintenance.schedule", "0 30 2 * * ?", "--org", "default")
    shown = json.loads(cli("config", "--org", "default", "--json"))
    org = {r["name"]: r for r in shown["organization"]}
    assert org["aggregates.maintenance.schedule"] == {
        "name": "aggregates.maintenance.schedule", "value": "0 30 2 * * ?",
        "source": "organization",
    }  # fmt: skip
    assert org["aggregates.maintenance.batchRetentionDays"]["source"] == "default"
    bad = cli("config", "set", "aggregates.maintenance.schedule", "every night", code=2)
    assert "not a Quartz cron expression" in bad
    unknown = cli("config", "set", "aggregates.maintenance.when", "x", code=2)
    assert "unknown setting" in unknown and "aggregates.maintenance.schedule" in unknown
    assert "not found" in cli("config", "--org", "nobody", code=1)
    shown = json.loads(cli("config", "--org", "default", "--json"))
    org = {r["name"]: r for r in shown["organization"]}
    assert org["aggregates.maintenance.schedule"]["value"] == "0 30 2 * * ?"  # unchanged


def test_db_upgrade_is_explicit_and_a_newer_schema_is_refused(cli, monkeypatch, tmp_path):
    url = f"sqlite:///{tmp_path / 'meta.db'}"
    monkeypatch.setenv("AGGSCHED_DATABASE_URL", url)
    monkeypatch.setenv("AGGSCHED_AUTO_MIGRATE", "false")
    upgrade(url, "0002")  # an older aggsched's database
    head = schema_version(url).code
    assert "database 0002, code" in cli("db", "version")
    refused = " ".join(cli("maintenance", "run", code=1).split())
    assert "schema revision 0002" in refused and "aggsched db upgrade" in refused
    assert f"schema upgraded from 0002 to {head}" in cli("db", "upgrade")
    assert f"schema already at {head}" in cli("db", "upgrade")
    assert "up to date" in cli("db", "version")
    assert "maintenance of 'default'" in cli("maintenance", "run")

    engine = create_engine(url)
    with engine.begin() as conn:  # a newer aggsched migrated it
        conn.execute(text("UPDATE alembic_version SET version_num = '0999'"))
    engine.dispose()
    for command in (["db", "upgrade"], ["db", "version"], ["maintenance", "run"],
                    ["serve"], ["scheduler"]):  # fmt: skip
        out = " ".join(cli(*command, code=1).split())
        assert "schema revision 0999" in out and f"aggsched's schema {head}" in out, command


def test_maintenance_run_dry_run_and_json(cli):
    dry = json.loads(cli("maintenance", "run", "--dry-run", "--json"))
    assert dry["dry_run"] is True and dry["batch_id"] == ""
    assert [i["name"] for i in dry["items"]] == [
        "health_check", "stable_views", "stray_tables", "expired_tables", "history",
        "query_log",
    ]  # fmt: skip
    real = json.loads(cli("maintenance", "run", "--json"))
    assert real["status"] == "done" and real["batch_id"]
    text_out = cli("maintenance", "run")
    assert "maintenance of 'default' (batch" in text_out and "health_check: 0 change(s)" in text_out
    assert "not found" in cli("maintenance", "run", "--org", "nobody", code=1)
