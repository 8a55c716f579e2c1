"""The ``Warehouse`` interface and the machinery every adapter shares.

The build engine runs each build step on its own ``Warehouse`` (one connection) from a
worker thread and must be able to stop it from another thread: ``cancel()`` interrupts
the statement currently running and the executing thread gets ``QueryCancelled``; a
``timeout`` given to ``execute`` raises ``QueryTimeout``. A ``Warehouse`` runs one
statement at a time: it is not meant to be shared by several executing threads; only
``cancel()`` may be called concurrently.

An adapter implements the few ``_engine_*`` hooks; table operations, statement
bookkeeping and cancel/timeout races are handled here once, so a third engine is one new
module.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

from sqlglot import exp

from aggsched.warehouse import sqlbuild
from aggsched.warehouse.errors import WarehouseError

Fetch = Literal["none", "all", "one", "table", "count"]
StopReason = Literal["cancel", "timeout"]
T = TypeVar("T")


class Warehouse(ABC):
    """One connection to one warehouse database.

    ``dialect`` is the sqlglot dialect name used to render SQL for this engine.
    ``url`` is the redacted URL (safe to log).
    """

    dialect: ClassVar[str]
    #: True when the engine folds identifiers regardless of quoting (DuckDB, Spark).
    case_insensitive_identifiers: ClassVar[bool] = False
    #: False when ``transaction()`` cannot make several statements atomic (Spark): callers
    #: use the build operations below, which are atomic on every engine in their own way.
    supports_transactions: ClassVar[bool] = True

    def __init__(self, url: str) -> None:
        self.url = url
        self._lock = threading.Lock()
        self._running = 0  # generation number of the running statement, 0 when idle
        self._generation = 0
        self._stop_reason: StopReason | None = None
        #: rows the last `create_table_as` wrote, when the engine reports it (else None)
        self.rows_written: int | None = None

    # ----------------------------------------------------------------- statements
    def execute(self, sql: str, *, timeout: float | None = None) -> None:
        """Run one statement (or script) and discard any result."""
        self._run(sql, timeout, "none")

    def execute_counted(self, sql: str, *, timeout: float | None = None) -> int | None:
        """Run one statement; the number of rows it wrote (CREATE TABLE AS, INSERT) when
        the engine reports it, else None — so a build needs no COUNT(*) afterwards."""
        count = self._run(sql, timeout, "count")
        return int(count) if count is not None else None

    def fetch_all(self, sql: str, *, timeout: float | None = None) -> list[tuple[Any, ...]]:
        """Run a query and return all rows as tuples."""
        return self._run(sql, timeout, "all")  # type: ignore[return-value]

    def fetch_one(self, sql: str, *, timeout: float | None = None) -> tuple[Any, ...] | None:
        """Run a query and return its first row, or None when it returns no rows."""
        return self._run(sql, timeout, "one")  # type: ignore[return-value]

    def query(
        self, sql: str, *, timeout: float | None = None
    ) -> tuple[list[tuple[str, str]], list[tuple[Any, ...]]]:
        """Run a query; returns ``[(column name, type)]`` and the rows. Types are a small
        portable vocabulary (see ``portable_type``)."""
        return self._run(sql, timeout, "table")  # type: ignore[no-any-return]

    def render(self, expression: exp.Expression) -> str:
        """SQL text of a sqlglot expression for this engine's dialect, every identifier
        quoted (as `sqlgen.render` does): the model's own SQL, parsed with unquoted names,
        keeps their case (``SHOP.STORES`` stays ``"SHOP"."STORES"`` on PostgreSQL, where
        unquoted it would fold to lower case) and reads the same in a build as in a dry run."""
        return sqlbuild.for_dialect(expression, self.dialect).sql(
            dialect=self.dialect, identify=True
        )

    def _run(self, sql: str, timeout: float | None, fetch: Fetch) -> Any:
        if timeout is not None and timeout <= 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        return self._guard(
            sql, timeout, lambda generation: self._engine_run(sql, timeout, fetch, generation)
        )

    def _guard(self, sql: str, timeout: float | None, action: Callable[[int], T]) -> T:
        """Run ``action(generation)`` as the current statement: cancellable, and with
        engine errors translated into ``WarehouseError``s."""
        generation = self._begin_statement()
        try:
            return action(generation)
        except WarehouseError:
            raise
        except Exception as exc:
            raise self._engine_wrap(exc, sql, self._stop_reason, timeout) from exc
        finally:
            self._end_statement()

    def _begin_statement(self) -> int:
        with self._lock:
            self._generation += 1
            self._running = self._generation
            self._stop_reason = None
            return self._generation

    def _end_statement(self) -> None:
        with self._lock:
            self._running = 0

    def cancel(self) -> bool:
        """Interrupt the statement running on this connection (call from another thread).

        The executing thread raises ``QueryCancelled``; the connection stays usable.
        Returns False (and does nothing) when no statement is running.
        """
        return self._stop(None, "cancel")

    def _stop(self, generation: int | None, reason: StopReason) -> bool:
        """Interrupt the running statement if it is still ``generation`` (None: any).

        Holding the lock while interrupting means the statement cannot be marked done
        meanwhile, so an interrupt never hits the *next* statement.
        """
        with self._lock:
            if not self._running or (generation is not None and self._running != generation):
                return False
            self._stop_reason = self._stop_reason or reason
            self._engine_interrupt()
            return True

    # ----------------------------------------------------------------- table ops
    def ensure_schema(self, schema: str) -> None:
        """Create ``schema`` unless it exists."""
        self.execute(self.render(sqlbuild.create_schema(schema)))

    def list_tables(self, schema: str, prefix: str = "") -> list[str]:
        """Names of the base tables in ``schema`` starting with ``prefix`` (sorted).

        The prefix is compared in Python, not with LIKE, because aggregate table names
        contain ``_``, which LIKE treats as a wildcard.
        """
        sql = self.render(
            sqlbuild.list_tables(schema, case_insensitive=self.case_insensitive_identifiers)
        )
        names = [row[0] for row in self.fetch_all(sql)]
        if self.case_insensitive_identifiers:
            return [n for n in names if n.lower().startswith(prefix.lower())]
        return [n for n in names if n.startswith(prefix)]

    def list_views(self, schema: str) -> list[str]:
        """Names of the views in ``schema`` (sorted)."""
        sql = self.render(
            sqlbuild.list_tables(
                schema, case_insensitive=self.case_insensitive_identifiers, kind="VIEW"
            )
        )
        return [row[0] for row in self.fetch_all(sql)]

    def table_exists(self, schema: str, table: str) -> bool:
        """True when ``schema.table`` exists as a base table."""
        names = self.list_tables(schema, table)
        if self.case_insensitive_identifiers:
            return table.lower() in (n.lower() for n in names)
        return table in names

    def drop_table(self, schema: str | None, table: str) -> None:
        """Drop ``schema.table`` (``schema`` None: a temporary table) if it exists."""
        self.execute(self.render(sqlbuild.drop_table(schema, table)))

    def replace_view(self, schema: str, view: str, table: str) -> None:
        """Point the view ``schema.view`` at ``schema.table`` in one step readers never
        see half done (``CREATE OR REPLACE VIEW``; engines that cannot replace a view with
        other columns override this)."""
        self.execute(self.render(sqlbuild.create_view(schema, view, table, replace=True)))

    def drop_view(self, schema: str, view: str) -> None:
        """Drop ``schema.view`` if it exists."""
        self.execute(self.render(sqlbuild.drop_view(schema, view)))

    def row_count(self, schema: str, table: str) -> int:
        """Number of rows in ``schema.table``."""
        row = self.fetch_one(self.render(sqlbuild.count_rows(schema, table)))
        return int(row[0]) if row else 0

    def create_table(self, schema: str, table: str, columns: Sequence[tuple[str, str]]) -> None:
        """Create a table from ``(name, DuckDB-spelled type)`` pairs, quoted as given."""
        self.execute(self.render(sqlbuild.create_table(schema, table, columns)))

    # ----------------------------------------------------------------- build operations
    # What the build engine asks of a warehouse; each returns the SQL it ran (for the
    # build's record). The statements come from `sqlbuild`, so a dry run shows the same.
    def create_table_as(
        self,
        dest: exp.Table,
        query: exp.Query,
        *,
        partition_by: Sequence[str] = (),
        coarse_partitions: bool = False,
        timeout: float | None = None,
    ) -> str:
        """Create ``dest`` from ``query`` in one statement: it exists complete or not at
        all. ``partition_by`` names the incremental partition column, for engines that
        store partitions apart (Spark); the others ignore it, and ``coarse_partitions``
        (its values are month, quarter or year starts: `sqlgen.coarse_partitions`)."""
        create = sqlbuild.create_table_as(
            dest, query, dialect=self.dialect, partition_by=partition_by
        )
        sql = self.render(create)
        self.rows_written = None
        self.rows_written = self.execute_counted(sql, timeout=timeout)
        return sql

    def replace_partitions(
        self,
        dest: exp.Table,
        columns: Sequence[str],
        query: exp.Query,
        *,
        partition_column: str,
        since: exp.Expression,
        timeout: float | None = None,
    ) -> str:
        """Replace the rows of ``dest`` from partition ``since`` on by ``query``'s rows,
        atomically: a failure or cancel leaves ``dest`` as it was (one transaction here;
        one partition-overwriting statement where there are no transactions)."""
        statements = [
            self.render(e)
            for e in sqlbuild.replace_partitions(
                dest, columns, query,
                partition_column=partition_column, since=since, dialect=self.dialect,
            )
        ]  # fmt: skip
        if len(statements) == 1:
            self.execute(statements[0], timeout=timeout)
        else:
            with self.transaction():
                for statement in statements:
                    self.execute(statement, timeout=timeout)
        return ";\n".join(statements)

    def create_temporary_table_as(
        self, name: str, query: exp.Query, *, timeout: float | None = None
    ) -> str:
        """A staging table private to this connection and gone with it; drop it early
        with ``drop_table(None, name)``."""
        sql = self.render(sqlbuild.create_temporary_table_as(name, query, dialect=self.dialect))
        self.execute(sql, timeout=timeout)
        return sql

    # ----------------------------------------------------------------- engine hooks
    def is_transient(self, exc: BaseException) -> bool:
        """True when retrying the same work later may succeed (connection lost,
        serialization failure, lock timeout, deadlock); False for bad SQL, missing
        tables, cancellation and timeouts."""
        if isinstance(exc, WarehouseError):
            return exc.transient
        return self._engine_transient(exc)

    @abstractmethod
    def transaction(self) -> AbstractContextManager[None]:
        """Context manager: statements inside commit together, or roll back together
        when the block raises (DDL included: a half-built table never stays)."""

    @abstractmethod
    def load_csv(self, schema: str, table: str, columns: Sequence[str], path: Path) -> None:
        """Append a header-less CSV file (NULL = empty unquoted field) to a table."""

    @abstractmethod
    def close(self) -> None:
        """Release the connection; the object is unusable afterwards."""

    @abstractmethod
    def _engine_run(self, sql: str, timeout: float | None, fetch: Fetch, generation: int) -> Any:
        """Run ``sql`` and fetch as asked; enforce ``timeout``."""

    @abstractmethod
    def _engine_interrupt(self) -> None:
        """Interrupt the running statement (called with the lock held)."""

    @abstractmethod
    def _engine_wrap(
        self, exc: Exception, sql: str, reason: StopReason | None, timeout: float | None
    ) -> WarehouseError:
        """Translate an engine exception into the matching ``WarehouseError``."""

    @abstractmethod
    def _engine_transient(self, exc: BaseException) -> bool:
        """Classify a raw engine exception."""

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"


_TYPES = (
    ("bool", "boolean"), ("tinyint", "integer"), ("smallint", "integer"),
    ("hugeint", "integer"), ("bigint", "integer"), ("integer", "integer"), ("int", "integer"),
    ("decimal", "decimal"), ("numeric", "decimal"), ("double", "double"), ("float", "double"),
    ("real", "double"), ("timestamp", "timestamp"), ("date", "date"), ("varchar", "string"),
    ("text", "string"), ("string", "string"), ("char", "string"), ("uuid", "string"),
)  # fmt: skip


def portable_type(engine_type: str) -> str:
    """An engine's type name as `string`, `integer`, `decimal`, `double`, `date`,
    `timestamp` or `boolean` (else the engine's own name, lower case)."""
    name = engine_type.strip().lower()
    for prefix, portable in _TYPES:
        if name.startswith(prefix):
            return portable
    return name


def timeout_message(engine_message: str, timeout: float | None) -> str:
    """Message for a timeout that keeps the engine's own text."""
    limit = f" after {timeout:g} s" if timeout is not None else ""
    return f"statement timed out{limit}: {engine_message}"


__all__ = ["Fetch", "StopReason", "Warehouse", "portable_type", "timeout_message"]
