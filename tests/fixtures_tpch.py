"""TPC-H fixtures: real SF 0.01 data (plus DATECUSTOM) in DuckDB, PostgreSQL and Spark.

Loaded by ``tests/conftest.py`` (``pytest_plugins``), so every test can ask for them.
Tables: ``"TPCH_SF1".<8 TPC-H tables>`` and ``"PUBLIC"."DATECUSTOM"``, UPPERCASE as the
SML spells them. The data is shared by the whole session: tests must treat these tables
as read-only and write what they build into schemas of their own.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from aggsched.warehouse import duckdb_url, open_warehouse
from aggsched.warehouse.tpch import generate_tpch, load_datecustom, load_tpch
from conftest import _fresh_database

TPCH_TEST_SCALE = 0.01
CACHE_DIR = Path(__file__).resolve().parents[1] / ".aggsched" / "cache"


def load_all(url: str, parquet_dir: Path) -> None:
    """TPC-H into TPCH_SF1 and DATECUSTOM into PUBLIC at ``url``."""
    with open_warehouse(url) as warehouse:
        load_tpch(warehouse, parquet_dir)
        load_datecustom(warehouse)


@pytest.fixture(scope="session")
def tpch_parquet() -> Path:
    """Directory of the 8 TPC-H Parquet files at SF 0.01 (generated once, cached)."""
    return generate_tpch(TPCH_TEST_SCALE, CACHE_DIR)


@pytest.fixture(scope="session")
def tpch_duckdb(tpch_parquet: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """``duckdb:///...`` URL of a session DuckDB file with TPC-H + DATECUSTOM loaded."""
    url = duckdb_url(tmp_path_factory.mktemp("tpch") / "tpch.duckdb")
    load_all(url, tpch_parquet)
    return url


@pytest.fixture(scope="session")
def tpch_postgres(pg_server: str, tpch_parquet: Path) -> Iterator[str]:
    """``postgresql://`` URL of a fresh session database with TPC-H + DATECUSTOM."""
    with contextmanager(_fresh_database)(pg_server) as dsn:
        load_all(dsn, tpch_parquet)
        yield dsn


@pytest.fixture(scope="session")
def tpch_spark(spark_server: str, tpch_parquet: Path) -> str:
    """``sc://`` URL of the session's Spark Connect server with TPC-H (external Parquet
    tables over the cached files) + DATECUSTOM."""
    load_all(spark_server, tpch_parquet)
    return spark_server
