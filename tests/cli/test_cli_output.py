"""What the CLI prints is what the data says: square brackets survive (rich markup is off),
SQL is printed unwrapped, and a failed aggregate names no table."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
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


def example(tmp_path: Path, edit=None) -> Path:  # type: ignore[no-untyped-def]
    repo = Path(shutil.copytree(TPCH_DUCKDB, tmp_path / "repo"))
    if edit:
        model = repo / "models" / "sales.yml"
        doc = yaml.safe_load(model.read_text())
        edit(repo, doc)
        model.write_text(yaml.safe_dump(doc, sort_keys=False))
    return repo


def map_connections(cli, url: str, schema: str) -> None:  # type: ignore[no-untyped-def]
    for name in ("tpch", "calendar"):
        cli("connection", "add", name, url, "--aggregate-schema", schema)


def test_square_brackets_in_errors_survive(cli, tmp_path: Path):
    def edit(_repo: Path, doc: dict) -> None:
        aggregate = doc["aggregates"][1]
        aggregate["metrics"].append("[Measures].[Revenue]")
        aggregate["attributes"][0]["relationships_path"] = ["[no such relationship]"]

    repo = str(example(tmp_path, edit))
    out = cli("publish", repo)  # the rest publishes; the bad aggregate is kept invalid
    assert "invalid aggregate Sales/sales_by_ship_year" in out
    assert 'unknown metric "[Measures].[Revenue]"' in out
    assert "[no such relationship]" in out
    out = cli("publish", repo, "--strict", code=1)
    assert 'unknown metric "[Measures].[Revenue]"' in out
    assert "[no such relationship]" in out
    assert "nothing was published" in out


def test_names_with_brackets_dry_run_sql_unwrapped_and_failed_rows_name_no_table(
    cli, tmp_path: Path, tpch_duckdb: str
):
    def edit(repo: Path, doc: dict) -> None:
        doc["aggregates"][1]["unique_name"] = "sales_by_ship_year [v2]"
        doc["aggregates"][1]["label"] = "[Measures].[Revenue] by year"
        orders = repo / "datasets" / "orders.yml"  # the orders aggregates fail at build
        orders.write_text(orders.read_text().replace("table: ORDERS", "table: ORDERS_GONE"))

    map_connections(cli, tpch_duckdb, "as_agg_out")
    published = json.loads(cli("publish", str(example(tmp_path, edit)), "--json"))
    cube = published["cubes"]["Sales"]
    assert "sales_by_ship_year [v2]" in cli("projects")

    plan = json.loads(cli("build", cube, "--dry-run", "--json"))
    text = cli("build", cube, "--dry-run").splitlines()
    assert any(". sales_by_ship_year [v2] (full, from " in line for line in text), text
    for step in plan:  # every statement is one line of the text output, exactly as run
        for statement in step["sql"].split(";\n"):
            assert len(statement) > 80  # longer than the console: it would have wrapped
            assert statement + ";" in text or statement in text, statement

    text = cli("build", cube, "--pending-only", code=1)  # two fail: exit status 1
    assert "[v2]" in text
    assert "orders_by_segment_and_year: " in text and "ORDERS_GONE" in text
    projects = json.loads(cli("projects", "--json"))[0]["cubes"][0]["aggregates"]
    built = {d["name"]: d["table"] for d in projects if d["status"] == "active"}
    assert "sales_by_ship_year [v2]" in built

    again = json.loads(cli("build", cube, "--pending-only", "--json", code=1))
    rows = {a["aggregate"]: a for a in again["aggregates"]}
    assert {"orders_by_segment_and_year", "system_orders_all"} <= set(rows), rows
    for row in rows.values():
        assert row["status"] == "failed" and "ORDERS_GONE" in row["error"]
        assert row["table"] is None  # its table was dropped: naming it would mislead
    with open_warehouse(tpch_duckdb) as wh:
        tables = set(wh.list_tables("as_agg_out", "as_agg_"))
    assert {t.split(".")[-1] for t in built.values()} == tables


def test_connection_sql_dialect(cli):
    cli("connection", "add", "shop", "duckdb:///tmp/x.duckdb", "--sql-dialect", "Postgresql")
    (row,) = json.loads(cli("connection", "list", "--json"))
    assert row["sql_dialect"] == "postgres"
    out = cli("connection", "add", "shop", "duckdb:///tmp/x.duckdb", "--sql-dialect", "x9", code=2)
    assert "unknown SQL dialect 'x9'" in out
    assert json.loads(cli("connection", "list", "--json"))[0]["sql_dialect"] == "postgres"
