"""DuckDB adapter (the embedded default warehouse).

A DuckDB file can be opened read-write by only one process at a time, and opening it twice
in one process with different settings fails. So this module keeps one
``duckdb.connect(path)`` per database file per process (reference-counted, closed when the
last ``DuckDBWarehouse`` on it closes) and gives every ``DuckDBWarehouse`` its own
``.cursor()``: a separate DuckDB connection with its own transaction, which
``interrupt()`` can stop without touching the others. ``:memory:`` is never shared: each
``duckdb:///:memory:`` warehouse is a private, empty database.

Identifiers in DuckDB are case-insensitive even when quoted: ``"Tab"`` and ``"TAB"`` are
the same table, and catalog lookups here compare names case-insensitively.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, ClassVar

import duckdb
from sqlglot import exp

from aggsched.warehouse import sqlbuild
from aggsched.warehouse.base import (
    Fetch,
    StopReason,
    Warehouse,
    portable_type,
    timeout_message,
)
from aggsched.warehouse.errors import (
    QueryCancelled,
    QueryError,
    QueryTimeout,
    WarehouseConnectionError,
    WarehouseError,
)

MEMORY = ":memory:"


class _SharedDatabases:
    """Process-wide ``path -> (root connection, users)``; see the module docstring."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict[str, tuple[duckdb.DuckDBPyConnection, int]] = {}

    def acquire(self, path: str) -> duckdb.DuckDBPyConnection:
        """A new cursor (connection) on the shared database at ``path``."""
        if path.startswith(MEMORY):
            return duckdb.connect(path)
        with self._lock:
            root, users = self._open.get(path) or (duckdb.connect(path), 0)
            self._open[path] = (root, users + 1)
            return root.cursor()

    def release(self, path: str) -> None:
        if path.startswith(MEMORY):
            return
        with self._lock:
            root, users = self._open[path]
            if users > 1:
                self._open[path] = (root, users - 1)
            else:
                del self._open[path]
                root.close()


_DATABASES = _SharedDatabases()


class DuckDBWarehouse(Warehouse):
    """A ``Warehouse`` on a DuckDB database file (or a private in-memory database)."""

    dialect: ClassVar[str] = "duckdb"
    case_insensitive_identifiers: ClassVar[bool] = True

    def __init__(self, path: str, url: str) -> None:
        super().__init__(url)
        self.path = path if path.startswith(MEMORY) else os.path.realpath(path)
        try:
            self._cursor = _DATABASES.acquire(self.path)
        except duckdb.Error as exc:
            raise WarehouseConnectionError(f"cannot open DuckDB database {path}: {exc}") from exc
        self._in_transaction = False
        self._closed = False

    def _engine_run(self, sql: str, timeout: float | None, fetch: Fetch, generation: int) -> Any:
        if self._closed:
            raise WarehouseConnectionError("DuckDB warehouse is closed", sql)
        timer = None
        if timeout is not None:
            # DuckDB has no statement timeout: a timer interrupts this statement only.
            timer = threading.Timer(timeout, self._stop, args=(generation, "timeout"))
            timer.daemon = True
            timer.start()
        try:
            self._cursor.execute(sql)
            if fetch == "all":
                return self._cursor.fetchall()
            if fetch == "one":
                return self._cursor.fetchone()
            if fetch == "table":
                columns = [(d[0], portable_type(str(d[1]))) for d in self._cursor.description or ()]
                return columns, self._cursor.fetchall()
            return None
        finally:
            if timer is not None:
                timer.cancel()

    def _engine_interrupt(self) -> None:
        self._cursor.interrupt()

    def _engine_wrap(
        self, exc: Exception, sql: str, reason: StopReason | None, timeout: float | None
    ) -> WarehouseError:
        message = str(exc)
        if isinstance(exc, duckdb.InterruptException):
            if reason == "timeout":
                return QueryTimeout(timeout_message(message, timeout), sql)
            return QueryCancelled(f"statement cancelled: {message}", sql)
        if isinstance(exc, duckdb.ConnectionException):
            return WarehouseConnectionError(message, sql)
        return QueryError(message, sql, transient=self._engine_transient(exc))

    def _engine_transient(self, exc: BaseException) -> bool:
        if isinstance(exc, duckdb.TransactionException | duckdb.ConnectionException):
            return True  # write-write conflicts, lost/closed connection
        return isinstance(exc, duckdb.IOException) and "lock" in str(exc).lower()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """BEGIN ... COMMIT, ROLLBACK when the block raises. DuckDB has no savepoints,
        so nesting is refused instead of silently committing early."""
        if self._in_transaction:
            raise WarehouseError("nested transactions are not supported on DuckDB")
        self.execute(self.render(exp.Transaction()))
        self._in_transaction = True
        try:
            yield
        except BaseException:
            self._in_transaction = False
            self._rollback_after_error()
            raise
        self._in_transaction = False
        self.execute(self.render(exp.Commit()))

    def _rollback_after_error(self) -> None:
        """Roll back; a failure here must not hide the error that caused the rollback."""
        with suppress(WarehouseError):
            self.execute(self.render(exp.Rollback()))

    def load_csv(self, schema: str, table: str, columns: Sequence[str], path: Path) -> None:
        source = exp.Literal.string(str(Path(path).resolve()))
        self.execute(self.render(sqlbuild.copy_from(schema, table, columns, source)))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._cursor.close()
        finally:
            _DATABASES.release(self.path)
