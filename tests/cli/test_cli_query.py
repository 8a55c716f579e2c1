"""`aggsched query` and `aggsched queries`, end to end on a real DuckDB warehouse."""

from __future__ import annotations

import csv
import io
import json

from aggsched.examples import TPCH_DUCKDB
from aggsched.warehouse import open_warehouse
from cli.test_cli_catalog import cli  # noqa: F401  (the fixture)


def test_query_from_the_command_line(cli, tpch_duckdb: str):  # noqa: F811
    for name in ("tpch", "calendar"):
        cli("connection", "add", name, tpch_duckdb, "--aggregate-schema", "as_agg_cliq")
    cube = json.loads(cli("publish", str(TPCH_DUCKDB), "--json"))["cubes"]["Sales"]
    cli("build", cube, "--pending-only", "--json")

    answer = json.loads(
        cli("query", cube, "-m", "revenue", "-m", "line_count", "--by", "Ship Mode",
            "--where", '"Ship Mode" in (\'AIR\', \'[RAIL]\') and revenue > 0', "--json")
    )  # fmt: skip
    assert [c["name"] for c in answer["columns"]] == ["Ship Mode", "revenue", "line_count"]
    assert answer["served_from"] == "aggregate"
    assert answer["served_by"][0]["definition"] == "sales_by_flag_and_mode"
    with open_warehouse(tpch_duckdb) as wh:
        (count,) = wh.fetch_one(
            """SELECT COUNT(*) FROM "TPCH_SF1"."LINEITEM" WHERE "L_SHIPMODE" = 'AIR'"""
        )
    assert answer["rows"] == [["AIR", answer["rows"][0][1], count]]

    table = cli("query", cube, "-m", "quantity", "--by", "Return Flag", "--order", "-quantity")
    assert "Return Flag" in table and "quantity" in table
    rows = list(csv.reader(io.StringIO(
        cli("query", cube, "-m", "quantity", "--by", "Return Flag", "--csv"))))  # fmt: skip
    assert rows[0] == ["Return Flag", "quantity"] and {r[0] for r in rows[1:]} == {"A", "N", "R"}
    explained = cli("query", cube, "-m", "revenue", "--by", "Ship Year", "--explain")
    assert "aggregate sales_by_ship_year" in explained and "SELECT" in explained
    # the SQL is printed whole, one statement, never wrapped inside a literal
    assert "\n" not in explained.split("SELECT", 1)[1].strip()

    bad = cli("query", cube, "-m", "revenu", code=2)
    assert 'unknown metric "revenu"' in bad and "revenue" in bad
    bad = cli("query", cube, "-m", "revenue", "--where", "revenue >", code=2)
    assert "cannot parse the filter" in bad

    log = json.loads(cli("queries", "--cube", cube, "--json"))
    assert log["total"] == 3  # an explained query does not run and is not logged
    assert {q["served_by"] for q in log["data"]} <= {"aggregate", "base", "mixed"}
    assert log["data"][-1]["metrics"] == ["revenue", "line_count"]
