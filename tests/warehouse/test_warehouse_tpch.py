"""Real TPC-H + DATECUSTOM data, loaded into DuckDB and PostgreSQL by the session fixtures."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import duckdb
import pytest
import sqlglot
import yaml

from aggsched.warehouse import Warehouse, open_warehouse
from aggsched.warehouse.tpch import (
    DATECUSTOM_COLUMNS,
    TPCH_TABLES,
    TpchError,
    datecustom_row,
    datecustom_rows,
    generate_tpch,
    load_tpch,
    parquet_file,
)

COLUMN_NAMES = [c for c, _ in DATECUSTOM_COLUMNS]


@pytest.fixture(
    scope="module", params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def tpch(request: pytest.FixtureRequest) -> Iterator[Warehouse]:
    """A warehouse connected to the loaded TPC-H fixture database of each engine."""
    url = request.getfixturevalue("tpch_duckdb" if request.param == "duckdb" else "tpch_postgres")
    with open_warehouse(url) as warehouse:
        yield warehouse


def parquet_scalar(path: Path, expression: str) -> object:
    with duckdb.connect() as con:
        row = con.execute(f"SELECT {expression} FROM read_parquet(?)", [str(path)]).fetchone()
    assert row is not None
    return row[0]


def run(wh: Warehouse, duckdb_sql: str) -> list[tuple[object, ...]]:
    """Test queries are written once in DuckDB SQL and transpiled for the engine."""
    return wh.fetch_all(sqlglot.transpile(duckdb_sql, read="duckdb", write=wh.dialect)[0])


# ------------------------------------------------------------------ generation
def test_generation_is_cached(tpch_parquet: Path) -> None:
    before = {t: parquet_file(tpch_parquet, t).stat().st_mtime_ns for t in TPCH_TABLES}
    assert generate_tpch(0.01, tpch_parquet.parent) == tpch_parquet
    after = {t: parquet_file(tpch_parquet, t).stat().st_mtime_ns for t in TPCH_TABLES}
    assert before == after
    assert tpch_parquet.name == "tpch-sf0.01"


def test_bad_scale_and_missing_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(TpchError, match="must be positive"):
        generate_tpch(0, tmp_path)
    with duckdb.connect() as con, open_warehouse("duckdb:///:memory:") as wh:
        con.execute(f"COPY (SELECT 1 AS r_regionkey) TO '{tmp_path / 'region.parquet'}'")
        with pytest.raises(TpchError, match=r"missing: .*nation\.parquet"):
            load_tpch(wh, tmp_path)


# ------------------------------------------------------------------ TPC-H tables
def test_row_counts_match_the_parquet_files(tpch: Warehouse, tpch_parquet: Path) -> None:
    for table in TPCH_TABLES:
        expected = parquet_scalar(parquet_file(tpch_parquet, table), "count(*)")
        assert tpch.row_count("TPCH_SF1", table) == expected, table
    assert tpch.row_count("TPCH_SF1", "LINEITEM") == 60175  # TPC-H SF 0.01
    assert tpch.row_count("TPCH_SF1", "NATION") == 25


def test_values_survive_the_load(tpch: Warehouse, tpch_parquet: Path) -> None:
    """Sums over decimals, dates and text (trailing spaces included) are unchanged."""
    checks = {
        "sum(l_extendedprice * (1 - l_discount))": 'SUM("L_EXTENDEDPRICE" * (1 - "L_DISCOUNT"))',
        "max(l_shipdate)": 'MAX("L_SHIPDATE")',
        "sum(length(l_comment))": 'SUM(LENGTH("L_COMMENT"))',
        "count(DISTINCT l_shipmode)": 'COUNT(DISTINCT "L_SHIPMODE")',
    }
    lineitem = parquet_file(tpch_parquet, "LINEITEM")
    for parquet_expr, loaded_expr in checks.items():
        [(loaded,)] = run(tpch, f'SELECT {loaded_expr} FROM "TPCH_SF1"."LINEITEM"')
        assert loaded == parquet_scalar(lineitem, parquet_expr), parquet_expr


def test_tables_and_columns_are_spelled_as_the_sml_datasets(
    tpch: Warehouse, sml_tpch: Path
) -> None:
    schemas = {"Connection - TPCH": "TPCH_SF1", "Connection - DateCustom": "PUBLIC"}
    for dataset_file in sorted((sml_tpch / "datasets").glob("*.yml")):
        dataset = yaml.safe_load(dataset_file.read_text())
        schema, table = schemas[dataset["connection_id"]], dataset["table"]
        literal_schema = sqlglot.exp.Literal.string(schema).sql()
        literal_table = sqlglot.exp.Literal.string(table).sql()
        columns = {
            row[0]
            for row in tpch.fetch_all(
                "SELECT column_name FROM information_schema.columns "
                f"WHERE table_schema = {literal_schema} AND table_name = {literal_table}"
            )
        }
        physical = {c["name"] for c in dataset["columns"] if "sql" not in c}
        assert physical <= columns, (dataset_file.name, sorted(physical - columns))


@pytest.mark.postgres
def test_postgres_column_types(tpch_postgres: str) -> None:
    with open_warehouse(tpch_postgres) as wh:
        rows = wh.fetch_all(
            "SELECT column_name, data_type, numeric_precision, numeric_scale "
            "FROM information_schema.columns "
            "WHERE table_schema = 'TPCH_SF1' AND table_name = 'LINEITEM'"
        )
    types = {name: (kind, precision, scale) for name, kind, precision, scale in rows}
    assert types["L_ORDERKEY"] == ("bigint", 64, 0)
    assert types["L_EXTENDEDPRICE"] == ("numeric", 15, 2)
    assert types["L_SHIPDATE"][0] == "date"
    assert types["L_COMMENT"][0] == "text"


# ------------------------------------------------------------------ DATECUSTOM
def test_datecustom_has_ten_years_of_days(tpch: Warehouse) -> None:
    [(count, first, last)] = run(
        tpch, 'SELECT COUNT(*), MIN("PK_DATE"), MAX("PK_DATE") FROM "PUBLIC"."DATECUSTOM"'
    )
    assert (count, first, last) == (3650, datetime(1990, 1, 1), datetime(1999, 12, 29))


def test_datecustom_known_days(tpch: Warehouse) -> None:
    select = ", ".join(f'"{c}"' for c in COLUMN_NAMES)
    rows = run(
        tpch,
        f'SELECT {select} FROM "PUBLIC"."DATECUSTOM" '
        'WHERE "DATEKEY" IN (19920229, 19951231) ORDER BY "DATEKEY"',
    )
    leap_day, new_years_eve = (dict(zip(COLUMN_NAMES, r, strict=True)) for r in rows)
    assert leap_day == {
        "PK_DATE": datetime(1992, 2, 29),
        "DATEKEY": 19920229,
        "DATE_NAME": "Saturday, February 29, 1992",
        "DAY_OF_WEEK": 7,
        "DAY_OF_WEEK_NAME": "Saturday",
        "DAY_OF_YEAR": 60,
        "DAY_OF_YEAR_NAME": "Day 60",
        "HALF_YEAR": datetime(1992, 1, 1),
        "HALF_YEAR_NAME": "H1 1992",
        "MONTH": datetime(1992, 2, 1),
        "MONTH_NAME": "February 1992",
        "MONTH_OF_YEAR": 2,
        "MONTH_OF_YEAR_NAME": "February",
        "QUARTER": datetime(1992, 1, 1),
        "QUARTER_NAME": "Q1 1992",
        "QUARTER_OF_YEAR": 1,
        "QUARTER_OF_YEAR_NAME": "Q1",
        "WEEK": datetime(1992, 2, 23),
        "WEEK_NAME": "Week 9, 1992",
        "WEEK_OF_YEAR": 9,
        "WEEK_OF_YEAR_NAME": "Week 9",
        "YEAR": datetime(1992, 1, 1),
        "YEAR_NAME": "1992",
    }
    # 1995 started on a Sunday, so Dec 31 (Sunday) opens week 53 on its own.
    assert new_years_eve["DAY_OF_WEEK"] == 1
    assert new_years_eve["WEEK_OF_YEAR"] == 53
    assert new_years_eve["WEEK"] == datetime(1995, 12, 31)
    assert new_years_eve["HALF_YEAR"] == datetime(1995, 7, 1)
    assert new_years_eve["QUARTER_NAME"] == "Q4 1995"


def test_datecustom_agrees_with_the_engines_date_functions(tpch: Warehouse) -> None:
    [(bad,)] = run(
        tpch,
        """SELECT COUNT(*) FROM "PUBLIC"."DATECUSTOM" WHERE
           "DAY_OF_YEAR" <> EXTRACT(doy FROM "PK_DATE")
           OR "DAY_OF_WEEK" <> EXTRACT(dow FROM "PK_DATE") + 1
           OR "MONTH_OF_YEAR" <> EXTRACT(month FROM "PK_DATE")
           OR "QUARTER_OF_YEAR" <> EXTRACT(quarter FROM "PK_DATE")
           OR "MONTH" <> DATE_TRUNC('month', "PK_DATE")
           OR "QUARTER" <> DATE_TRUNC('quarter', "PK_DATE")
           OR "YEAR" <> DATE_TRUNC('year', "PK_DATE")
           OR "DATEKEY" <> EXTRACT(year FROM "PK_DATE") * 10000
                           + EXTRACT(month FROM "PK_DATE") * 100 + EXTRACT(day FROM "PK_DATE")
           OR "WEEK" > "PK_DATE" OR "HALF_YEAR" > "QUARTER" """,
    )
    assert bad == 0
    [(bad_weeks,)] = run(
        tpch,
        """SELECT COUNT(*) FROM (
             SELECT "WEEK", COUNT(DISTINCT "WEEK_OF_YEAR") AS n, COUNT(*) AS days
             FROM "PUBLIC"."DATECUSTOM" GROUP BY "WEEK") AS w
           WHERE n <> 1 OR days > 7""",
    )
    assert bad_weeks == 0


def test_datecustom_rows_are_pure_and_validated() -> None:
    first = datecustom_row(date(1990, 1, 1))  # a Monday
    assert first[COLUMN_NAMES.index("DAY_OF_WEEK")] == 2
    assert first[COLUMN_NAMES.index("WEEK")] == datetime(1990, 1, 1)  # clipped to Jan 1
    assert first[COLUMN_NAMES.index("WEEK_OF_YEAR")] == 1
    assert len(first) == len(DATECUSTOM_COLUMNS)
    assert [r[1] for r in datecustom_rows(date(1999, 12, 31), 2)] == [19991231, 20000101]
    with pytest.raises(ValueError, match="at least one day"):
        datecustom_rows(date(1990, 1, 1), 0)
