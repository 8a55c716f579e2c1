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

import heapq
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
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


class _Watchdog:
    """One thread that interrupts statements past their timeout (DuckDB has no statement
    timeout; a timer thread per statement costs milliseconds on a busy machine)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._due: list[tuple[float, int, Callable[[], object]]] = []
        self._seq = 0
        self._thread: threading.Thread | None = None

    def watch(self, seconds: float, action: Callable[[], object]) -> int:
        """Run `action` in `seconds` unless `cancel`led; returns the ticket."""
        with self._cond:
            self._seq += 1
            heapq.heappush(self._due, (time.monotonic() + seconds, self._seq, action))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="duckdb-watchdog", daemon=True
                )
                self._thread.start()
            self._cond.notify()
            return self._seq

    def cancel(self, ticket: int) -> None:
        with self._cond:
            self._due = [d for d in self._due if d[1] != ticket]
            heapq.heapify(self._due)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._due or self._due[0][0] > time.monotonic():
                    wait = self._due[0][0] - time.monotonic() if self._due else None
                    self._cond.wait(wait)
                _, _, action = heapq.heappop(self._due)
            with suppress(Exception):
                action()


_WATCHDOG = _Watchdog()


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
        ticket = None
        if timeout is not None:
            # DuckDB has no statement timeout: the watchdog interrupts this statement only.
            ticket = _WATCHDOG.watch(timeout, lambda: self._stop(generation, "timeout"))
        try:
            self._cursor.execute(sql)
            if fetch == "all":
                return self._cursor.fetchall()
            if fetch == "one":
                return self._cursor.fetchone()
            if fetch == "table":
                columns = [(d[0], portable_type(str(d[1]))) for d in self._cursor.description or ()]
                return columns, self._cursor.fetchall()
            if fetch == "count":  # DML and CREATE TABLE AS answer one row: the row count
                row = self._cursor.fetchone() if self._cursor.description else None
                return row[0] if row else None
            return None
        finally:
            if ticket is not None:
                _WATCHDOG.cancel(ticket)

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
