"""The catalog and build commands, end to end on a real DuckDB warehouse."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aggsched.cli import app
from aggsched.examples import TPCH_DUCKDB
from aggsched.warehouse import open_warehouse


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AGGSCHED_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("AGGSCHED_DATABASE_URL", raising=False)
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(app, list(args), catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result.output

    return run


def test_publish_map_and_build_the_example_project(cli, tpch_duckdb: str):
    for name in ("tpch", "calendar"):
        out = cli("connection", "add", name, tpch_duckdb, "--aggregate-schema", "as_agg_cli")
        assert "->" in out
    listed = json.loads(cli("connection", "list", "--json"))
    assert {c["name"] for c in listed} == {"tpch", "calendar"}
    published = json.loads(cli("publish", str(TPCH_DUCKDB), "--json"))
    assert published["ok"] and published["project"] == "tpch-demo"
    cube = published["cubes"]["Sales"]
    assert len(published["queued_batches"]) == 1

    plan = json.loads(cli("build", cube, "--dry-run", "--json"))
    order = [step["aggregate"] for step in plan]
    # finest first: the three-attribute aggregates, then the coarser ones
    assert order.index("sales_by_ship_month_supplier_region") < order.index("sales_by_ship_year")
    assert order[-1].startswith("system_")
    year = next(s for s in plan if s["aggregate"] == "sales_by_ship_year")
    assert year["source"] == "sales_by_ship_month_supplier_region"
    assert year["sql"].startswith('CREATE TABLE "as_agg_cli"."as_agg_<new id>_sales_by_ship')
    with open_warehouse(tpch_duckdb) as wh:
        assert wh.list_tables("as_agg_cli", "as_agg_") == []  # a dry run changes nothing

    built = json.loads(cli("build", cube, "--pending-only", "--json"))
    assert built["status"] == "done"
    assert {a["status"] for a in built["aggregates"]} == {"active"}
    again = json.loads(cli("build", cube, "--json"))  # incremental where possible
    modes = {a["aggregate"]: a["mode"] for a in again["aggregates"]}
    assert modes["sales_by_ship_year"] == "incremental"
    assert modes["orders_by_segment_and_year"] == "full"  # count distinct: always full
    projects = json.loads(cli("projects", "--json"))
    rows = {d["name"]: d for d in projects[0]["cubes"][0]["aggregates"]}
    assert rows["sales_by_ship_year"]["status"] == "active" and rows["sales_by_ship_year"]["rows"]


def test_publish_reports_every_error_and_stores_nothing(cli, tmp_path: Path):
    import shutil

    repo = Path(shutil.copytree(TPCH_DUCKDB, tmp_path / "broken"))
    metric = repo / "metrics" / "revenue.yml"
    metric.write_text(
        metric.read_text().replace("calculation_method: sum", "calculation_method: summ")
    )
    model = repo / "models" / "sales.yml"
    model.write_text(model.read_text().replace("dimension: Ship Mode\n", "dimension: Ship Mood\n"))
    out = cli("publish", str(repo), code=1)
    assert "metrics/revenue.yml" in out and "summ" in out
    assert "models/sales.yml" in out
    assert "nothing was published" in out
    assert json.loads(cli("projects", "--json")) == []


def test_build_of_an_unknown_cube_is_a_clear_error(cli):
    out = cli("build", "6dff8020-a9b3-430a-acd4-169f9edfd224", code=1)
    assert "not found" in out
    out = cli("build", "not-a-uuid", code=2)
    assert "not a UUID" in out
