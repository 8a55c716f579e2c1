"""Shared fixtures.

PostgreSQL tests use the server on 127.0.0.1:5432 (trust auth, user postgres) and create a
database of their own. Spark tests share one Spark Connect server (``fixtures_spark``).
Outside CI an unreachable server skips them; under ``CI=true`` it fails them, because CI
must really run them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest_plugins = ["fixtures_tpch", "fixtures_spark"]

PG_ADMIN_DSN = os.environ.get("AGGSCHED_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"
SML_TPCH = Path(os.environ.get("AGGSCHED_SML_TPCH", FIXTURES / "sml-tpch"))


def _pg_admin_connect():
    import psycopg

    return psycopg.connect(PG_ADMIN_DSN, autocommit=True, connect_timeout=5)


def _pg_available() -> str | None:
    try:
        with _pg_admin_connect():
            return None
    except Exception as exc:  # any connection problem means "not available"
        return str(exc)


@pytest.fixture(scope="session")
def pg_server() -> str:
    """The admin DSN, after checking the server answers (skip locally, fail under CI)."""
    problem = _pg_available()
    if problem:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is required under CI=true: {problem}")
        pytest.skip(f"PostgreSQL not reachable: {problem}")
    return PG_ADMIN_DSN


def _fresh_database(admin_dsn: str) -> Iterator[str]:
    name = f"aggsched_test_{uuid.uuid4().hex[:12]}"
    with _pg_admin_connect() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin_dsn.rsplit("/", 1)[0] + "/" + name
    finally:
        with _pg_admin_connect() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_database(pg_server: str) -> Iterator[str]:
    """A new, empty PostgreSQL database for one test; dropped afterwards (psycopg DSN)."""
    yield from _fresh_database(pg_server)


@pytest.fixture(scope="module")
def pg_database_module(pg_server: str) -> Iterator[str]:
    """A new, empty PostgreSQL database shared by one test module."""
    yield from _fresh_database(pg_server)


@pytest.fixture(scope="session")
def sml_tpch() -> Path:
    """The real TPC-H SML repository (read-only; copy it before changing anything)."""
    if not (SML_TPCH / "catalog.yml").exists():
        pytest.fail(f"TPC-H SML fixture not found at {SML_TPCH}")
    return SML_TPCH
