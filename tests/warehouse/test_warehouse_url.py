"""Warehouse URLs: ``${VAR}`` resolution, redaction, scheme checks; SQL rendering."""

from __future__ import annotations

from pathlib import Path

import pytest

from aggsched.warehouse import (
    WarehouseConfigError,
    dialect_for_url,
    duckdb_url,
    open_warehouse,
    redact_url,
    resolve_url,
    sqlbuild,
)
from aggsched.warehouse.url import SparkLocal, duckdb_path, spark_local, validate_url


def test_resolve_substitutes_every_variable() -> None:
    env = {"PGUSER": "etl", "PGPASSWORD": "p@ss", "PGHOST": "db.internal"}
    url = "postgresql://${PGUSER}:${PGPASSWORD}@${PGHOST}:5432/dw"
    assert resolve_url(url, env) == "postgresql://etl:p@ss@db.internal:5432/dw"
    assert resolve_url("duckdb:///:memory:", {}) == "duckdb:///:memory:"


def test_unknown_variable_is_named_and_secret_free() -> None:
    url = "postgresql://etl:${PGPASSWORD}@db:5432/${PGDATABASE}"
    with pytest.raises(WarehouseConfigError) as info:
        resolve_url(url, {"PGPASSWORD": "topsecret"})
    assert "PGDATABASE" in str(info.value)
    assert "topsecret" not in str(info.value)


def test_malformed_variable_reference_is_an_error() -> None:
    with pytest.raises(WarehouseConfigError, match=r"invalid variable reference \$\{1BAD\}"):
        resolve_url("postgresql://u:${1BAD}@h/db", {"1BAD": "x"})


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://etl:p%40ss@db:5432/dw", "postgresql://etl:***@db:5432/dw"),
        (
            "postgresql://etl:secret@db/dw?sslmode=require",
            "postgresql://etl:***@db/dw?sslmode=require",
        ),
        ("postgresql://etl@db:5432/dw", "postgresql://etl@db:5432/dw"),
        ("duckdb:///data/w.duckdb", "duckdb:///data/w.duckdb"),
        ("postgresql://u:pw@[::1]:5432/dw", "postgresql://u:***@[::1]:5432/dw"),
    ],
)
def test_redact_hides_only_the_password(url: str, expected: str) -> None:
    assert redact_url(url) == expected


def test_unsupported_scheme_is_refused() -> None:
    with pytest.raises(WarehouseConfigError, match="unsupported warehouse URL scheme 'mysql'"):
        open_warehouse("mysql://u:pw@h/db")
    with pytest.raises(WarehouseConfigError, match=r"\*\*\*"):  # message is redacted
        open_warehouse("snowflake://u:pw@acct/db")


@pytest.mark.parametrize("url", ["duckdb://relative.duckdb", "duckdb:///", "duckdb://"])
def test_bad_duckdb_urls(url: str) -> None:
    with pytest.raises(WarehouseConfigError, match="DuckDB URL"):
        duckdb_path(url)


def test_duckdb_urls_round_trip(tmp_path: Path) -> None:
    url = duckdb_url(tmp_path / "x.duckdb")
    assert url == f"duckdb://{tmp_path}/x.duckdb"
    assert duckdb_path(url) == f"{tmp_path}/x.duckdb"
    assert duckdb_path("duckdb:///:memory:") == ":memory:"
    assert dialect_for_url(url) == "duckdb"
    assert dialect_for_url("postgresql://h/db") == "postgres"


def test_open_resolves_variables_from_the_given_env(tmp_path: Path) -> None:
    with open_warehouse("duckdb://${DIR}/w.duckdb", env={"DIR": str(tmp_path)}) as wh:
        assert wh.fetch_one("SELECT 1") == (1,)
    assert (tmp_path / "w.duckdb").exists()


@pytest.mark.postgres
def test_postgres_password_from_env_is_redacted(pg_database: str) -> None:
    # The test server trusts local connections, so any password is accepted.
    with_password = pg_database.replace("postgres@", "postgres:${PGPASSWORD}@")
    with open_warehouse(with_password, env={"PGPASSWORD": "hunter2"}) as wh:
        assert wh.fetch_one("SELECT current_user") == ("postgres",)
        assert "hunter2" not in wh.url and "***" in wh.url
        assert "hunter2" not in repr(wh)


@pytest.mark.parametrize("dialect", ["duckdb", "postgres"])
def test_identifiers_are_quoted_and_escaped(dialect: str) -> None:
    assert sqlbuild.drop_table('we"ird', "T").sql(dialect) == 'DROP TABLE IF EXISTS "we""ird"."T"'
    assert sqlbuild.create_schema("PUBLIC").sql(dialect) == 'CREATE SCHEMA IF NOT EXISTS "PUBLIC"'
    assert sqlbuild.drop_table(None, "tmp").sql(dialect) == 'DROP TABLE IF EXISTS "tmp"'
    listing = sqlbuild.list_tables("it's", case_insensitive=False).sql(dialect)
    assert "table_schema = 'it''s'" in listing
    with pytest.raises(ValueError, match="empty"):
        sqlbuild.ident("")


def test_column_types_are_transpiled_per_dialect() -> None:
    create = sqlbuild.create_table("S", "T", [("A", "VARCHAR"), ("B", "DECIMAL(15,2)")])
    assert create.sql("postgres") == 'CREATE TABLE "S"."T" ("A" TEXT, "B" DECIMAL(15, 2))'
    assert create.sql("duckdb") == 'CREATE TABLE "S"."T" ("A" TEXT, "B" DECIMAL(15, 2))'


@pytest.mark.parametrize(
    ("url", "master", "directory"),
    [
        ("spark://local", "local", None),
        ("spark://local[2]", "local[2]", None),
        ("SPARK://local[*]/srv/spark", "local[*]", "/srv/spark"),
    ],
)
def test_spark_local_urls(url: str, master: str, directory: str | None) -> None:
    assert validate_url(url) == url
    assert spark_local(url) == SparkLocal(master, directory)
    assert dialect_for_url(url) == "spark" and redact_url(url) == url


@pytest.mark.parametrize("url", ["spark://local[0]", "spark://host:7077", "spark://local[2]rel"])
def test_bad_spark_local_urls_say_what_is_accepted(url: str) -> None:
    with pytest.raises(WarehouseConfigError, match=r"spark://local\[N\].*sc://host:15002"):
        validate_url(url)


def test_spark_connect_urls_hide_their_token() -> None:
    url = "sc://dbc.example:443/;use_ssl=true;token=dapi123;x-databricks-cluster-id=0123"
    assert validate_url(url) == url and dialect_for_url(url) == "spark"
    assert redact_url(url) == (
        "sc://dbc.example:443/;use_ssl=true;token=***;x-databricks-cluster-id=0123"
    )
    assert redact_url("sc://h:15002/;token=${TOKEN}") == "sc://h:15002/;token=${TOKEN}"
    for bad, problem in [("sc://:15002", "no host"), ("sc://h:15002/db", "parameters as")]:
        with pytest.raises(WarehouseConfigError, match=problem):
            validate_url(bad)
