"""Warehouse adapters: the only code in aggsched that talks to a data warehouse.

``open_warehouse(url)`` picks the adapter from the URL scheme:

- ``duckdb:///abs/path/file.duckdb`` or ``duckdb:///:memory:`` -> ``DuckDBWarehouse``
- ``postgresql://user:${PGPASSWORD}@host:port/db`` -> ``PostgresWarehouse``

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


_ADAPTERS = {"duckdb": _open_duckdb, "postgresql": _open_postgres, "postgres": _open_postgres}


def open_warehouse(url: str, env: Mapping[str, str] | None = None) -> Warehouse:
    """Connect to the warehouse at ``url`` after resolving ``${VAR}`` from ``env``
    (default ``os.environ``). The returned object's ``url`` is redacted."""
    resolved = resolve_url(url, os.environ if env is None else env)
    opener = _ADAPTERS[url_scheme(resolved)]
    return opener(resolved, redact_url(resolved))


def dialect_for_url(url: str) -> str:
    """The sqlglot dialect of the engine a URL points at, without connecting."""
    return "duckdb" if url_scheme(url) == "duckdb" else "postgres"


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
