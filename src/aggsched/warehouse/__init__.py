"""Warehouse adapters: the only code in aggsched that talks to a data warehouse.

``open_warehouse(url)`` picks the adapter from the URL scheme:

- ``duckdb:///abs/path/file.duckdb`` or ``duckdb:///:memory:`` -> ``DuckDBWarehouse``
- ``postgresql://user:${PGPASSWORD}@host:port/db`` -> ``PostgresWarehouse``
- ``sc://host:15002[/;token=${TOKEN};...]`` (a Spark Connect server: a cluster, Databricks)
  or ``spark://local[N][/abs/dir]`` (an in-process Spark session) -> ``SparkWarehouse``
  (needs the optional extra ``aggsched[spark]``)

Adding an engine = one module implementing ``Warehouse`` plus one line in ``_ADAPTERS``.
Adapters are imported lazily so a missing driver only matters when that engine is used.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from aggsched.warehouse.base import Warehouse
from aggsched.warehouse.errors import (
    QueryCancelled,
    QueryError,
    QueryTimeout,
    WarehouseConfigError,
    WarehouseConnectionError,
    WarehouseError,
)
from aggsched.warehouse.url import (
    duckdb_path,
    duckdb_url,
    redact_url,
    resolve_url,
    url_scheme,
    validate_url,
)


def _open_duckdb(url: str, shown: str) -> Warehouse:
    from aggsched.warehouse.duckdb import DuckDBWarehouse

    return DuckDBWarehouse(duckdb_path(url), shown)


def _open_postgres(url: str, shown: str) -> Warehouse:
    from aggsched.warehouse.postgres import PostgresWarehouse

    return PostgresWarehouse(url, shown)


def _open_spark(url: str, shown: str) -> Warehouse:
    from aggsched.warehouse.spark import SparkWarehouse

    return SparkWarehouse(url, shown)


_ADAPTERS = {
    "duckdb": _open_duckdb,
    "postgresql": _open_postgres,
    "postgres": _open_postgres,
    "sc": _open_spark,
    "spark": _open_spark,
}
_DIALECTS = {"duckdb": "duckdb", "postgresql": "postgres", "postgres": "postgres",
             "sc": "spark", "spark": "spark"}  # fmt: skip


def open_warehouse(url: str, env: Mapping[str, str] | None = None) -> Warehouse:
    """Connect to the warehouse at ``url`` after resolving ``${VAR}`` from ``env``
    (default ``os.environ``). The returned object's ``url`` is redacted."""
    resolved = resolve_url(url, os.environ if env is None else env)
    opener = _ADAPTERS[url_scheme(resolved)]
    return opener(resolved, redact_url(resolved))


def dialect_for_url(url: str) -> str:
    """The sqlglot dialect of the engine a URL points at, without connecting."""
    return _DIALECTS[url_scheme(url)]


__all__ = [
    "QueryCancelled",
    "QueryError",
    "QueryTimeout",
    "Warehouse",
    "WarehouseConfigError",
    "WarehouseConnectionError",
    "WarehouseError",
    "dialect_for_url",
    "duckdb_url",
    "open_warehouse",
    "redact_url",
    "resolve_url",
    "validate_url",
]
