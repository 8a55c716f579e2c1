"""Warehouse adapters against real engines: every test runs on DuckDB and on PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from aggsched.warehouse import (
    QueryCancelled,
    QueryError,
    QueryTimeout,
    Warehouse,
    WarehouseConnectionError,
    WarehouseError,
    duckdb_url,
    open_warehouse,
)

LONG_QUERY = {
    "duckdb": "SELECT count(*) FROM range(100000000000) AS t(x) WHERE x % 7 = 3",
    "postgres": "SELECT pg_sleep(30)",
}
SCHEMA = "Agg Schema"  # mixed case with a space: must be quoted everywhere


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "duckdb":
        return duckdb_url(tmp_path / "warehouse.duckdb")
    return str(request.getfixturevalue("pg_database"))


@pytest.fixture
def wh(url: str) -> Iterator[Warehouse]:
    warehouse = open_warehouse(url)
    yield warehouse
    warehouse.close()


def run_in_thread(action: Callable[[], None]) -> tuple[threading.Thread, list[BaseException]]:
    """Start ``action`` in a thread; the list receives what it raised."""
    raised: list[BaseException] = []

    def target() -> None:
        try:
            action()
        except BaseException as exc:
            raised.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, raised


def test_dialect_matches_engine(wh: Warehouse, url: str) -> None:
    assert wh.dialect == ("duckdb" if url.startswith("duckdb") else "postgres")
    assert wh.fetch_one("SELECT 41 + 1") == (42,)
    assert wh.fetch_one("SELECT 1 WHERE 1 = 0") is None


def test_schema_and_table_ops_with_quoted_mixed_case_names(wh: Warehouse) -> None:
    wh.ensure_schema(SCHEMA)
    wh.ensure_schema(SCHEMA)  # idempotent
    for name in ("as_agg_0a1b2c3d_Sales", "as_agg_ffff0000_Other", "asXagg_lookalike", "Fact"):
        wh.create_table(SCHEMA, name, [("Key", "BIGINT"), ("Amount", "DECIMAL(15,2)")])
    wh.execute(f'INSERT INTO "{SCHEMA}"."Fact" VALUES (1, 2.50), (2, 3.25), (3, NULL)')

    assert wh.list_tables(SCHEMA) == sorted(
        ["as_agg_0a1b2c3d_Sales", "as_agg_ffff0000_Other", "asXagg_lookalike", "Fact"]
    )
    # "_" is literal, not a LIKE wildcard: asXagg_lookalike must not match
    assert wh.list_tables(SCHEMA, prefix="as_agg_") == [
        "as_agg_0a1b2c3d_Sales",
        "as_agg_ffff0000_Other",
    ]
    assert wh.table_exists(SCHEMA, "Fact")
    assert not wh.table_exists(SCHEMA, "Missing")
    assert not wh.table_exists("No Such Schema", "Fact")
    assert wh.row_count(SCHEMA, "Fact") == 3

    wh.drop_table(SCHEMA, "Fact")
    wh.drop_table(SCHEMA, "Fact")  # IF EXISTS
    assert not wh.table_exists(SCHEMA, "Fact")
    assert wh.list_tables(SCHEMA, "as_agg_ffff") == ["as_agg_ffff0000_Other"]


def test_case_handling_follows_the_engine(wh: Warehouse) -> None:
    wh.ensure_schema(SCHEMA)
    wh.create_table(SCHEMA, "MixedCase", [("A", "INTEGER")])
    # DuckDB folds identifiers even when quoted; PostgreSQL keeps quoted case exactly.
    assert wh.table_exists(SCHEMA, "mixedcase") is (wh.dialect == "duckdb")


def test_names_with_quotes_are_identifiers_not_sql(wh: Warehouse) -> None:
    odd = 'Robert"); DROP TABLE x; --'
    wh.ensure_schema(odd)
    wh.create_table(odd, "it's", [("v", "VARCHAR")])
    assert wh.list_tables(odd) == ["it's"]
    assert wh.row_count(odd, "it's") == 0


def test_cancel_from_another_thread_is_prompt_and_connection_survives(wh: Warehouse) -> None:
    assert wh.cancel() is False  # nothing running: nothing to interrupt
    thread, raised = run_in_thread(lambda: wh.execute(LONG_QUERY[wh.dialect]))
    time.sleep(0.3)
    started = time.monotonic()
    assert wh.cancel() is True
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert time.monotonic() - started < 2
    assert len(raised) == 1 and isinstance(raised[0], QueryCancelled), raised
    assert raised[0].sql == LONG_QUERY[wh.dialect]
    assert not wh.is_transient(raised[0])
    assert wh.fetch_one("SELECT 7") == (7,)


def test_timeout_raises_query_timeout_and_does_not_linger(wh: Warehouse) -> None:
    started = time.monotonic()
    with pytest.raises(QueryTimeout) as info:
        wh.execute(LONG_QUERY[wh.dialect], timeout=0.3)
    assert 0.25 < time.monotonic() - started < 2
    assert "timed out after 0.3 s" in str(info.value)
    # A finished statement with a timeout leaves no timer/setting behind.
    wh.fetch_one("SELECT 1", timeout=0.2)
    time.sleep(0.3)
    slow = "SELECT pg_sleep(0.4)" if wh.dialect == "postgres" else "SELECT 1"
    wh.execute(slow)
    with pytest.raises(ValueError, match="positive"):
        wh.execute("SELECT 1", timeout=0)


def test_timeout_inside_transaction_rolls_back(wh: Warehouse) -> None:
    wh.ensure_schema(SCHEMA)
    with pytest.raises(QueryTimeout), wh.transaction():
        wh.create_table(SCHEMA, "half_built", [("a", "INTEGER")])
        wh.execute(LONG_QUERY[wh.dialect], timeout=0.2)
    assert not wh.table_exists(SCHEMA, "half_built")
    if wh.dialect == "postgres":
        wh.execute("SELECT pg_sleep(0.3)")  # session statement_timeout restored


def test_syntax_error_keeps_engine_message_and_is_not_transient(wh: Warehouse) -> None:
    with pytest.raises(QueryError) as info:
        wh.execute("SELEC 1")
    assert 'syntax error at or near "SELEC"' in info.value.message
    assert info.value.sql == "SELEC 1"
    assert not wh.is_transient(info.value)


def test_missing_table_is_a_non_transient_query_error(wh: Warehouse) -> None:
    with pytest.raises(QueryError) as info:
        wh.fetch_all('SELECT * FROM "nowhere"."nothing"')
    assert "nothing" in str(info.value)
    assert not wh.is_transient(info.value)
    assert wh.fetch_one("SELECT 1") == (1,)  # connection still usable


def test_transaction_rolls_back_create_table_on_error(wh: Warehouse) -> None:
    wh.ensure_schema(SCHEMA)
    with pytest.raises(RuntimeError, match="boom"), wh.transaction():
        wh.create_table(SCHEMA, "as_agg_deadbeef_x", [("a", "INTEGER")])
        assert wh.table_exists(SCHEMA, "as_agg_deadbeef_x")  # visible inside
        raise RuntimeError("boom")
    assert not wh.table_exists(SCHEMA, "as_agg_deadbeef_x")

    with wh.transaction():
        wh.create_table(SCHEMA, "kept", [("a", "INTEGER")])
    assert wh.table_exists(SCHEMA, "kept")


def test_half_built_table_is_invisible_to_other_connections(wh: Warehouse, url: str) -> None:
    wh.ensure_schema(SCHEMA)
    with open_warehouse(url) as other, wh.transaction():
        wh.create_table(SCHEMA, "building", [("a", "INTEGER")])
        assert not other.table_exists(SCHEMA, "building")
    with open_warehouse(url) as other:
        assert other.table_exists(SCHEMA, "building")


def test_write_conflict_or_lock_timeout_is_transient(wh: Warehouse, url: str) -> None:
    wh.ensure_schema(SCHEMA)
    wh.create_table(SCHEMA, "t", [("a", "INTEGER")])
    wh.execute(f'INSERT INTO "{SCHEMA}"."t" VALUES (1)')
    update = f'UPDATE "{SCHEMA}"."t" SET "a" = 2'
    with open_warehouse(url) as other, wh.transaction():
        wh.execute(update)
        if other.dialect == "postgres":
            other.execute("SET lock_timeout = 100")
        with pytest.raises(WarehouseError) as info:
            other.execute(update)
    assert other.is_transient(info.value), info.value


def test_nested_transactions(wh: Warehouse) -> None:
    wh.ensure_schema(SCHEMA)
    if wh.dialect == "duckdb":
        with wh.transaction(), pytest.raises(WarehouseError, match="nested"), wh.transaction():
            pass
        return
    with wh.transaction():
        wh.create_table(SCHEMA, "outer", [("a", "INTEGER")])
        with pytest.raises(RuntimeError), wh.transaction():  # a savepoint
            wh.create_table(SCHEMA, "inner", [("a", "INTEGER")])
            raise RuntimeError
    assert wh.list_tables(SCHEMA) == ["outer"]


def test_duckdb_file_is_shared_within_the_process(tmp_path: Path) -> None:
    url = duckdb_url(tmp_path / "shared.duckdb")
    first, second = open_warehouse(url), open_warehouse(url)
    first.ensure_schema("S")
    first.create_table("S", "T", [("a", "INTEGER")])
    assert second.table_exists("S", "T")
    first.close()
    assert second.row_count("S", "T") == 0  # closing one warehouse keeps the database open
    second.close()
    with open_warehouse(url) as third:  # reopened after the last one closed
        assert third.table_exists("S", "T")


def test_duckdb_memory_databases_are_private() -> None:
    with open_warehouse("duckdb:///:memory:") as a, open_warehouse("duckdb:///:memory:") as b:
        a.ensure_schema("S")
        a.create_table("S", "T", [("a", "INTEGER")])
        assert not b.table_exists("S", "T")


@pytest.mark.postgres
def test_postgres_reconnects_after_connection_loss(pg_database: str) -> None:
    with open_warehouse(pg_database) as wh:
        pid_row = wh.fetch_one("SELECT pg_backend_pid()")
        assert pid_row is not None
        with psycopg.connect(pg_database, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid_row[0],))
        with pytest.raises(WarehouseConnectionError) as info:
            wh.fetch_one("SELECT 1")
        assert wh.is_transient(info.value)
        assert wh.fetch_one("SELECT 2") == (2,)  # a fresh connection


@pytest.mark.postgres
def test_postgres_unreachable_is_a_transient_connection_error(pg_server: str) -> None:
    with pytest.raises(WarehouseConnectionError) as info:
        open_warehouse("postgresql://postgres:${PW}@127.0.0.1:1/nothing", env={"PW": "s3cret"})
    assert info.value.transient
    assert "s3cret" not in str(info.value)


def test_raw_engine_errors_are_classified(wh: Warehouse) -> None:
    assert not wh.is_transient(ValueError("not from the engine"))
    if wh.dialect == "postgres":
        assert wh.is_transient(psycopg.errors.SerializationFailure("x"))
        assert wh.is_transient(psycopg.errors.DeadlockDetected("x"))
        assert not wh.is_transient(psycopg.errors.UndefinedTable("x"))
    else:
        import duckdb

        assert wh.is_transient(duckdb.TransactionException("Conflict on update"))
        assert not wh.is_transient(duckdb.CatalogException("Table does not exist"))


def test_closed_duckdb_warehouse_refuses_work(tmp_path: Path) -> None:
    wh = open_warehouse(duckdb_url(tmp_path / "c.duckdb"))
    wh.close()
    wh.close()  # idempotent
    with pytest.raises(WarehouseConnectionError, match="closed"):
        wh.execute("SELECT 1")
