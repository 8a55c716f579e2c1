"""PostgreSQL adapter (psycopg 3).

The connection runs in autocommit mode, so each statement commits on its own unless it is
inside ``transaction()`` (nested blocks become savepoints). Timeouts use the server's
``statement_timeout`` for just that statement, so a timed-out query stops on the server
even if this process is stuck; ``cancel()`` sends a protocol cancel request. A connection
lost outside a transaction is reopened on the next statement.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, ClassVar

import psycopg
from psycopg import errors as pgerrors
from psycopg.pq import TransactionStatus
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

#: serialization failure, deadlock, lock not available (lock_timeout), too many
#: connections, admin/crash shutdown, cannot connect now; class 08 is added below.
TRANSIENT_SQLSTATES = frozenset({"40001", "40P01", "55P03", "53300", "57P01", "57P02", "57P03"})
CONNECT_TIMEOUT_S = 10
COPY_CHUNK = 1 << 20


class PostgresWarehouse(Warehouse):
    """A ``Warehouse`` on one PostgreSQL database."""

    dialect: ClassVar[str] = "postgres"

    def __init__(self, conninfo: str, url: str) -> None:
        super().__init__(url)
        self._conninfo = conninfo
        self._conn = self._connect()
        self._tx_depth = 0

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            # client_connection_check_interval: the server notices a vanished client (a
            # killed worker) mid-statement and stops, instead of finishing a build that
            # recovery has already written off
            conn = psycopg.connect(
                self._conninfo, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S,
                options="-c client_connection_check_interval=1000",
            )  # fmt: skip
        except psycopg.Error as exc:
            raise WarehouseConnectionError(f"cannot connect to {self.url}: {exc}") from exc
        row = conn.execute("SELECT current_setting('statement_timeout')").fetchone()
        self._session_timeout = str(row[0]) if row else "0"
        return conn

    def _connection(self, sql: str | None) -> psycopg.Connection[Any]:
        """The live connection, reopened if it was lost while no transaction was open."""
        if self._conn.closed or self._conn.broken:
            if self._tx_depth:
                raise WarehouseConnectionError("connection lost inside a transaction", sql)
            self._conn = self._connect()
        return self._conn

    def _engine_run(self, sql: str, timeout: float | None, fetch: Fetch, generation: int) -> Any:
        conn = self._connection(sql)
        with conn.cursor() as cur:
            if timeout is not None:
                self._set_statement_timeout(cur, str(max(1, round(timeout * 1000))))
            try:
                cur.execute(sql)  # type: ignore[arg-type]  # generated SQL, no parameters
                if fetch == "all":
                    return cur.fetchall()
                if fetch == "one":
                    return cur.fetchone()
                if fetch == "table":
                    return self._columns(conn, cur), cur.fetchall()
                if fetch == "count":  # from the command tag, e.g. "SELECT 42"
                    return cur.rowcount if cur.rowcount >= 0 else None
                return None
            finally:
                if timeout is not None and self._can_reset(conn):
                    self._set_statement_timeout(cur, self._session_timeout)

    @staticmethod
    def _columns(conn: psycopg.Connection[Any], cur: psycopg.Cursor[Any]) -> list[tuple[str, str]]:
        columns = []
        for d in cur.description or ():
            info = conn.adapters.types.get(d.type_code)
            columns.append((d.name, portable_type(info.name if info else str(d.type_code))))
        return columns

    @staticmethod
    def _set_statement_timeout(cur: psycopg.Cursor[Any], value: str) -> None:
        cur.execute("SELECT set_config('statement_timeout', %s, false)", (value,))

    @staticmethod
    def _can_reset(conn: psycopg.Connection[Any]) -> bool:
        """After a failure inside a transaction the rollback restores the setting."""
        status = conn.info.transaction_status
        return not conn.broken and status != TransactionStatus.INERROR

    def _engine_interrupt(self) -> None:
        with suppress(psycopg.Error):
            self._conn.cancel_safe(timeout=5)

    def _engine_wrap(
        self, exc: Exception, sql: str, reason: StopReason | None, timeout: float | None
    ) -> WarehouseError:
        message = str(exc).strip()
        if isinstance(exc, pgerrors.QueryCanceled):
            if reason != "cancel" and "statement timeout" in message:
                return QueryTimeout(timeout_message(message, timeout), sql)
            return QueryCancelled(message, sql)
        if isinstance(exc, psycopg.OperationalError) and (self._conn.broken or self._conn.closed):
            return WarehouseConnectionError(message, sql)
        return QueryError(message, sql, transient=self._engine_transient(exc))

    def _engine_transient(self, exc: BaseException) -> bool:
        if not isinstance(exc, psycopg.Error):
            return False
        state = exc.sqlstate
        if state is None:  # raised by the client: connection-level trouble
            return isinstance(exc, psycopg.OperationalError)
        return state in TRANSIENT_SQLSTATES or state.startswith("08")

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """BEGIN ... COMMIT (a SAVEPOINT when nested); ROLLBACK when the block raises."""
        conn = self._connection(None)
        self._tx_depth += 1
        try:
            with conn.transaction():
                yield
        except psycopg.Error as exc:  # from BEGIN/COMMIT/ROLLBACK themselves
            raise self._engine_wrap(exc, "COMMIT", None, None) from exc
        finally:
            self._tx_depth -= 1

    def replace_view(self, schema: str, view: str, table: str) -> None:
        """PostgreSQL's CREATE OR REPLACE VIEW cannot change the columns, so drop and
        create in one transaction: readers see the old view or the new one."""
        with self.transaction():
            self.execute(self.render(sqlbuild.drop_view(schema, view)))
            self.execute(self.render(sqlbuild.create_view(schema, view, table, replace=False)))

    def load_csv(self, schema: str, table: str, columns: Sequence[str], path: Path) -> None:
        """Stream the file through ``COPY ... FROM STDIN`` (cancellable like a statement)."""
        sql = self.render(sqlbuild.copy_from(schema, table, columns, exp.Var(this="STDIN")))

        def copy_file(_generation: int) -> None:
            with (
                self._connection(sql).cursor() as cur,
                cur.copy(sql) as copy,  # type: ignore[arg-type]
                Path(path).open("rb") as source,
            ):
                while chunk := source.read(COPY_CHUNK):
                    copy.write(chunk)

        self._guard(sql, None, copy_file)

    def close(self) -> None:
        self._conn.close()
