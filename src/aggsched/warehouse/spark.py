"""Apache Spark SQL adapter (pyspark 4; the optional extra ``aggsched[spark]``).

Two URL forms, one class:

- ``sc://host:15002[/;token=${TOKEN};...]``: a Spark Connect server (a cluster, or
  Databricks compute). Each ``SparkWarehouse`` is its own Connect session (its own SQL
  settings and temporary views), like a connection.
- ``spark://local[N][/abs/dir]``: an in-process Spark (a JVM started by pyspark) for
  laptops and tests. A process has one such Spark, serving Spark Connect on a loopback
  port, and each ``SparkWarehouse`` is a Connect session on it: the same code path as a
  cluster. With a directory, the metastore (Derby) and the managed tables live there and
  outlive the process (one process at a time, like a DuckDB file); without, the tables go
  with the process.

Spark has no multi-statement transactions (``supports_transactions`` is False). What the
build engine needs atomic is atomic another way: a full build is one CREATE TABLE ... AS
under a new name (a failed or cancelled one leaves no table); an incremental one is one
``INSERT OVERWRITE ... PARTITION`` whose new partitions replace the old ones only after the
whole job succeeded (tables are created with ``partitionOverwriteMode=dynamic``). A date or
timestamp partition column is partitioned by month, unless it already is a month, quarter
or year bucket (see ``create_table_as``). Partitions from the threshold on that the
recomputation no longer produces are dropped by a second statement, as DELETE + INSERT
removes their rows elsewhere (see ``replace_partitions``; not atomic with the overwrite).

Every statement runs under a Spark job tag of its own; ``cancel()`` and timeouts interrupt
that tag (the Connect interrupt API, or the in-process session's), so only that statement
stops and the session stays usable. (Spark race, seen with Spark 4.x: an interrupt that
lands after the operation registered but before its job started is acknowledged, yet the
job may still start and run to its end, unseen. A cancelled CREATE TABLE ... AS can thus
still create its table later, a stray table that no instance names; the engine's cleanup
at the end of the batch catches it only if the job has finished by then.)

Sessions read double-quoted names as identifiers
(``spark.sql.ansi.doubleQuotedIdentifiers``), as the other engines do; SQL that aggsched
generates uses backticks and does not depend on it. Catalog names are case-insensitive
and stored in lower case.
"""

from __future__ import annotations

import atexit
import logging
import os
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

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
    WarehouseConfigError,
    WarehouseConnectionError,
    WarehouseError,
)
from aggsched.warehouse.url import SparkLocal, spark_connect_url, spark_local, url_scheme

_LOG = logging.getLogger(__name__)

#: Session settings aggsched relies on (best effort on servers that refuse a setting:
#: generated SQL does not need them, the tables' own options carry the overwrite mode).
SESSION_CONF = {
    "spark.sql.ansi.doubleQuotedIdentifiers": "true",
    "spark.sql.sources.partitionOverwriteMode": "dynamic",
}
#: Settings of the in-process Spark: small shuffles for one machine, no web UI.
LOCAL_CONF = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.shuffle.partitions": "8",
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.sql.sources.parallelPartitionDiscovery.threshold": "1024",
}
#: Errors (Spark conditions, gRPC codes) after which retrying the same work may succeed.
TRANSIENT_CONDITIONS = ("INVALID_HANDLE.SESSION_CLOSED", "INVALID_HANDLE.SESSION_NOT_FOUND",
                        "INVALID_HANDLE.SESSION_CHANGED")  # fmt: skip
TRANSIENT_GRPC = ("UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "ABORTED")
CONNECT_RETRIES = 3  # the Connect client's own retries: seconds, not its default 10 minutes
INTERRUPT_RETRY_SECONDS = 30.0


def _pyspark() -> Any:
    try:
        import pyspark
        from pyspark.logger import PySparkLogger
    except ImportError as exc:  # the optional extra is not installed
        raise WarehouseConfigError(
            "Spark warehouses need pyspark: pip install 'aggsched[spark]'"
        ) from exc
    # pyspark logs every failed query with its JVM stack to stderr; the WarehouseError
    # raised here carries the message, so its loggers stay quiet.
    for name in ("SQLQueryContextLogger", "DataFrameQueryContextLogger"):
        PySparkLogger.getLogger(name).setLevel(logging.CRITICAL)
    return pyspark


# ---------------------------------------------------------------------- sessions
class _LocalSpark:
    """The process's in-process Spark: one JVM per process (started by pyspark on first
    use, stopped at exit) serving Spark Connect on a free loopback port, so the local form
    runs through exactly the same client code as a cluster; each warehouse is a new
    Connect session on it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._settings: SparkLocal | None = None
        self._context: Any = None
        self._url = ""
        self._scratch: tempfile.TemporaryDirectory[str] | None = None

    def url(self, settings: SparkLocal) -> str:
        """``sc://127.0.0.1:<port>`` of the in-process Spark, started on first use."""
        with self._lock:
            if self._context is None:
                self._start(settings)
                self._settings = settings
                atexit.register(self.stop)
            elif settings != self._settings:
                raise WarehouseConfigError(
                    f"this process already runs Spark as {self._describe(self._settings)}; "
                    f"it cannot also run {self._describe(settings)} (one local Spark per "
                    "process)"
                )
            return self._url

    @staticmethod
    def _describe(settings: SparkLocal | None) -> str:
        if settings is None:
            return "nothing"
        where = settings.directory or "a temporary directory"
        return f"{settings.master} with its tables in {where}"

    def _start(self, settings: SparkLocal) -> None:
        _pyspark()
        from pyspark import SparkConf, SparkContext

        port = _free_port()
        conf = {
            **LOCAL_CONF,
            "spark.master": settings.master,
            "spark.app.name": "aggsched",
            "spark.plugins": "org.apache.spark.sql.connect.SparkConnectPlugin",
            "spark.connect.grpc.binding.address": "127.0.0.1",
            "spark.connect.grpc.binding.port": str(port),
        }
        if settings.directory:
            home = Path(settings.directory)
            home.mkdir(parents=True, exist_ok=True)
            conf.update({
                "spark.sql.catalogImplementation": "hive",
                "spark.sql.warehouse.dir": str(home / "warehouse"),
                "spark.hadoop.javax.jdo.option.ConnectionURL":
                    f"jdbc:derby:;databaseName={home / 'metastore_db'};create=true",
                "spark.driver.extraJavaOptions": f"-Dderby.system.home={home}",
            })  # fmt: skip
        else:
            self._scratch = tempfile.TemporaryDirectory(prefix="aggsched-spark-")
            conf["spark.sql.catalogImplementation"] = "in-memory"
            conf["spark.sql.warehouse.dir"] = str(Path(self._scratch.name) / "warehouse")
        # pyspark's own flag for "a local Spark serving Spark Connect in this process"
        os.environ["SPARK_LOCAL_REMOTE"] = "1"
        try:
            self._context = SparkContext.getOrCreate(SparkConf().setAll(list(conf.items())))
        except Exception as exc:
            raise WarehouseConnectionError(f"cannot start Spark {settings.master}: {exc}") from exc
        self._context.setLogLevel("WARN")
        self._url = f"sc://127.0.0.1:{port}"

    def stop(self) -> None:
        with self._lock:
            if self._context is not None:
                with suppress(Exception):
                    self._context.stop()
                self._context, self._settings, self._url = None, None, ""
            if self._scratch is not None:
                self._scratch.cleanup()
                self._scratch = None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


_LOCAL = _LocalSpark()


def _connect_session(url: str) -> Any:
    """A new Spark Connect session on the server at ``url``."""
    _pyspark()
    from pyspark.sql import SparkSession
    from pyspark.sql.connect.client.retries import DefaultPolicy

    session = SparkSession.builder.remote(url).create()
    session.client.set_retry_policies(
        [DefaultPolicy(max_retries=CONNECT_RETRIES, max_backoff=5000)]
    )
    return session


# ---------------------------------------------------------------------- errors
def _condition(exc: BaseException) -> str:
    getter = getattr(exc, "getCondition", None)
    with suppress(Exception):
        return str(getter() or "") if getter else ""
    return ""


def _grpc_code(exc: BaseException) -> str:
    """The gRPC status name of a Connect error ("" when not one)."""
    code = getattr(exc, "_grpc_status_code", None)
    if code is None:
        getter = getattr(exc, "code", None)
        with suppress(Exception):
            code = getter() if callable(getter) else None
    return str(getattr(code, "name", code or ""))


def _message(exc: BaseException) -> str:
    """The engine's message without the JVM stack trace Spark appends."""
    text = str(exc).split("\n\nJVM stacktrace:", 1)[0].strip()
    return text or type(exc).__name__


def _is_connection_error(exc: BaseException) -> bool:
    if _grpc_code(exc) in ("UNAVAILABLE",):
        return True
    name = type(exc).__name__
    return name in ("Py4JNetworkError", "ConnectionRefusedError", "ConnectionResetError") or (
        _condition(exc) in TRANSIENT_CONDITIONS
    )


# ---------------------------------------------------------------------- warehouse
class SparkWarehouse(Warehouse):
    """A ``Warehouse`` on one Spark session (Spark Connect or in-process)."""

    dialect: ClassVar[str] = "spark"
    case_insensitive_identifiers: ClassVar[bool] = True
    supports_transactions: ClassVar[bool] = False

    def __init__(self, url: str, shown: str) -> None:
        super().__init__(shown)
        self._local = spark_local(url) if url_scheme(url) == "spark" else None
        self._target = _LOCAL.url(self._local) if self._local else spark_connect_url(url)
        self._tag = f"aggsched-{uuid.uuid4().hex[:12]}"
        self._closed = False
        self._broken = False
        self._session = self._open()

    # ------------------------------------------------------------------ session
    def _open(self) -> Any:
        try:
            session = _connect_session(self._target)
            for key, value in SESSION_CONF.items():
                with suppress(Exception):  # a managed server may refuse a setting
                    session.conf.set(key, value)
            session.version  # noqa: B018 - the server answers (no Spark job), or we say so now
        except WarehouseError:
            raise
        except Exception as exc:
            message = f"cannot connect to {self.url}: {_message(exc)}"
            raise WarehouseConnectionError(message) from exc
        return session

    def _live_session(self, sql: str | None) -> Any:
        if self._closed:
            raise WarehouseConnectionError("Spark warehouse is closed", sql)
        if self._broken:  # the server lost our session (restart): a new one
            self._session = self._open()
            self._broken = False
        return self._session

    @contextmanager
    def _tagged(self, generation: int) -> Iterator[Any]:
        """The session, with this statement's job tag set on the calling thread (tags
        are per thread in both Spark Connect and the in-process session)."""
        session = self._live_session(None)
        tag = self._statement_tag(generation)
        session.addTag(tag)
        try:
            yield session
        finally:
            with suppress(Exception):
                session.removeTag(tag)

    def _statement_tag(self, generation: int) -> str:
        return f"{self._tag}-{generation}"

    # ------------------------------------------------------------------ statements
    def _engine_run(self, sql: str, timeout: float | None, fetch: Fetch, generation: int) -> Any:
        self._live_session(sql)
        timer = None
        if timeout is not None:
            timer = threading.Timer(timeout, self._stop, args=(generation, "timeout"))
            timer.daemon = True
            timer.start()
        try:
            with self._tagged(generation) as session:
                frame = session.sql(sql)
                rows = [tuple(row) for row in frame.collect()]
                if fetch == "all":
                    return rows
                if fetch == "one":
                    return rows[0] if rows else None
                if fetch == "table":  # Warehouse.query(): names and portable types too
                    types = [(f.name, portable_type(f.dataType.simpleString()))
                             for f in frame.schema.fields]  # fmt: skip
                    return types, rows
                return None
        finally:
            if timer is not None:
                timer.cancel()

    def _engine_interrupt(self) -> None:
        generation = self._running
        if self._interrupt(generation):
            return
        # The statement may not have reached the server yet: keep trying while it runs.
        threading.Thread(
            target=self._keep_interrupting, args=(generation,), daemon=True,
            name=f"{self._tag}-interrupt",
        ).start()  # fmt: skip

    def _interrupt(self, generation: int) -> bool:
        try:
            return bool(self._session.interruptTag(self._statement_tag(generation)))
        except Exception:
            return False

    def _keep_interrupting(self, generation: int) -> None:
        deadline = time.monotonic() + INTERRUPT_RETRY_SECONDS
        while time.monotonic() < deadline:
            time.sleep(0.1)
            with self._lock:
                if self._running != generation or self._interrupt(generation):
                    return

    def _engine_wrap(
        self, exc: Exception, sql: str, reason: StopReason | None, timeout: float | None
    ) -> WarehouseError:
        message = _message(exc)
        cancelled = _condition(exc) == "OPERATION_CANCELED" or "cancel" in message.lower()
        if reason is not None or cancelled:
            if reason == "timeout":
                return QueryTimeout(timeout_message(message, timeout), sql)
            return QueryCancelled(f"statement cancelled: {message}", sql)
        if _is_connection_error(exc):
            self._broken = True
            return WarehouseConnectionError(message, sql)
        return QueryError(message, sql, transient=self._engine_transient(exc))

    def _engine_transient(self, exc: BaseException) -> bool:
        return _is_connection_error(exc) or _grpc_code(exc) in TRANSIENT_GRPC

    # ------------------------------------------------------------------ table ops
    def list_tables(self, schema: str, prefix: str = "") -> list[str]:
        """Tables (not views) of ``schema`` from the catalog, lower case as Spark keeps
        them; an unknown schema has none."""
        name = sqlbuild.ident(schema).sql(dialect=self.dialect)

        def tables(generation: int) -> list[str]:
            with self._tagged(generation) as session:
                if not session.catalog.databaseExists(name):
                    return []
                listed = session.catalog.listTables(name)
            return sorted(t.name for t in listed if not t.isTemporary and t.tableType != "VIEW")

        names = self._guard(f"SHOW TABLES IN {name}", None, tables)
        return [n for n in names if n.lower().startswith(prefix.lower())]

    def drop_table(self, schema: str | None, table: str) -> None:
        """Drop ``schema.table`` if it exists; ``schema`` None: this session's staging
        table (a cached temporary view, see `sqlbuild.create_temporary_table_as`)."""
        if schema is not None:
            super().drop_table(schema, table)
            return

        def drop_view(generation: int) -> None:
            with self._tagged(generation) as session:
                session.catalog.dropTempView(table)

        self._guard(f"DROP TEMPORARY VIEW {table}", None, drop_view)

    def create_table(self, schema: str, table: str, columns: Sequence[tuple[str, str]]) -> None:
        """A Parquet table (``USING PARQUET``), whatever the server's default format."""
        create = sqlbuild.create_table(schema, table, columns)
        create.set("properties", _parquet())
        self.execute(self.render(create))

    def register_parquet(self, schema: str, table: str, location: str) -> None:
        """(Re)create ``schema.table`` as an external Parquet table over ``location`` (a
        file or directory the Spark server can read: a local path for the in-process or a
        same-machine server, else e.g. ``s3://...``). Dropping it keeps the files."""
        self.drop_table(schema, table)
        properties = _parquet()
        properties.append("expressions", exp.LocationProperty(this=exp.Literal.string(location)))
        create = exp.Create(this=sqlbuild.table(schema, table), kind="TABLE", properties=properties)
        self.execute(self.render(create))

    # ------------------------------------------------------------------ build operations
    def create_table_as(
        self,
        dest: exp.Table,
        query: exp.Query,
        *,
        partition_by: Sequence[str] = (),
        coarse_partitions: bool = False,
        timeout: float | None = None,
    ) -> str:
        """As everywhere, plus Parquet partitions: by month when the partition column is a
        date or timestamp (an extra column ``<column>__month``), else by its value; by its
        value too when it is already a month, quarter or year (``coarse_partitions``), so
        the table does not carry the same month twice.

        Why months: every partition is a directory and a file per build, and day
        partitions make thousands of tiny files (seven years of TPC-H ship dates: 2,526);
        on Spark's local file system each costs a chmod process, so a 2,526-partition
        table takes ~45 s to write where 84 monthly ones take ~3 s, and on a cluster small
        files slow every later read."""
        if partition_by and not coarse_partitions:
            (column,) = partition_by
            if self._is_temporal(query, column):
                month = exp.alias_(_month_of(exp.column(sqlbuild.ident(column))),
                                   sqlbuild.ident(month_column(column)))  # fmt: skip
                query = exp.select(exp.Star(), month).from_(query.subquery("built"))
                partition_by = [month_column(column)]
        return super().create_table_as(
            dest, query, partition_by=partition_by, coarse_partitions=coarse_partitions,
            timeout=timeout,
        )  # fmt: skip

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
        """One ``INSERT OVERWRITE ... PARTITION``; with monthly partitions, the rows of
        ``since``'s month that come before ``since`` are carried over from the table
        itself (dynamic overwrite stages the new partitions, so reading them is safe).

        Dynamic overwrite replaces only the partitions the query writes, so a partition
        from ``since`` on that it no longer produces at all (every fact row of it deleted)
        would keep its old rows, where the other engines' DELETE removes them: such
        partitions are found afterwards (one more run of the query, for its partition
        values) and dropped (`_drop_stale_partitions`)."""
        month = month_column(partition_column)
        if month.lower() not in self._table_columns(dest):
            sql = super().replace_partitions(
                dest, columns, query,
                partition_column=partition_column, since=since, timeout=timeout,
            )  # fmt: skip
            produced = exp.select(exp.column(sqlbuild.ident(partition_column))).from_(
                query.subquery("produced")
            )
            return sql + self._drop_stale_partitions(
                dest, partition_column, since, produced, timeout
            )
        value = exp.column(sqlbuild.ident(partition_column))
        kept = (
            exp.select(*(exp.column(sqlbuild.ident(c)) for c in columns))
            .from_(dest.copy())
            .where(exp.GTE(this=value.copy(), expression=_month_of(since.copy())))
            .where(exp.LT(this=value.copy(), expression=since.copy()))
        )
        rows = exp.union(query, kept, distinct=False).subquery("rebuilt")
        full = exp.select(
            *(exp.column(sqlbuild.ident(c)) for c in columns),
            exp.alias_(_month_of(value.copy()), sqlbuild.ident(month)),
        ).from_(rows.copy())
        table = dest.copy()
        table.set("partition", exp.Partition(expressions=[exp.column(sqlbuild.ident(month))]))
        target = exp.Schema(this=table, expressions=[sqlbuild.ident(c) for c in [*columns, month]])
        sql = self.render(exp.Insert(this=target, expression=full, overwrite=True))
        self.execute(sql, timeout=timeout)
        produced = exp.select(_month_of(value.copy())).from_(rows)
        return sql + self._drop_stale_partitions(
            dest, month, _month_of(since.copy()), produced, timeout
        )

    def _drop_stale_partitions(
        self,
        dest: exp.Table,
        key: str,
        since: exp.Expression,
        produced: exp.Select,
        timeout: float | None,
    ) -> str:
        """Drop the partitions of ``dest`` whose ``key`` is at or past ``since`` and that
        ``produced`` (the partition values just written) does not name; returns the
        statement run (``;``-prefixed), or nothing. Run after the overwrite, so rows that
        arrive meanwhile can only keep a stale partition until the next build, never
        drop a fresh one. The overwrite was the step's commit: a cancel, timeout or error
        here is logged, not raised (the stale partitions stay until the next build)."""
        try:
            return self._drop_stale(dest, key, since, produced, timeout)
        except WarehouseError as exc:
            _LOG.warning("stale partitions of %s left until the next build: %s",
                         self.render(dest), exc)  # fmt: skip
            return ""

    def _drop_stale(
        self,
        dest: exp.Table,
        key: str,
        since: exp.Expression,
        produced: exp.Select,
        timeout: float | None,
    ) -> str:
        column = exp.column(sqlbuild.ident(key))
        present = (
            exp.select(column.copy())
            .distinct()
            .from_(dest.copy())
            .where(exp.GTE(this=column.copy(), expression=since.copy()))
        )
        stale = self.fetch_all(
            self.render(exp.except_(present, produced, distinct=True)), timeout=timeout
        )
        if not stale:
            return ""
        specs = [
            exp.Partition(expressions=[exp.EQ(this=column.copy(), expression=_partition_value(v))])
            for (v,) in stale
        ]
        action = exp.DropPartition(expressions=specs, exists=True)
        drop = exp.Alter(this=dest.copy(), kind="TABLE", actions=[action])
        sql = self.render(drop)
        self.execute(sql, timeout=timeout)
        return f";\n{sql}"

    def _is_temporal(self, query: exp.Query, column: str) -> bool:
        """Whether ``column`` of ``query``'s result is a date or timestamp (the query is
        analysed, not run)."""
        sql = self.render(query)

        def analyse(generation: int) -> bool:
            with self._tagged(generation) as session:
                fields = session.sql(sql).schema.fields
            kinds = {f.name.lower(): f.dataType.typeName() for f in fields}
            return kinds.get(column.lower(), "").startswith(("date", "timestamp"))

        return self._guard(sql, None, analyse)

    def _table_columns(self, table: exp.Table) -> set[str]:
        name = self.render(table)

        def describe(generation: int) -> set[str]:
            with self._tagged(generation) as session:
                return {f.name.lower() for f in session.table(name).schema.fields}

        return self._guard(f"DESCRIBE TABLE {name}", None, describe)

    # ------------------------------------------------------------------ the rest
    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Refused: Spark has no multi-statement transactions, and pretending would let a
        failure leave half the work. Use the build operations (`create_table_as`,
        `replace_partitions`), each atomic on its own; check `supports_transactions`."""
        raise WarehouseError("Spark has no multi-statement transactions; this operation needs one")
        yield  # pragma: no cover

    def load_csv(self, schema: str, table: str, columns: Sequence[str], path: Path) -> None:
        """Append a header-less CSV (NULL = empty unquoted field): read here, sent to
        Spark as Arrow, cast to the table's column types and appended (so it also works
        when the server cannot see this machine's files)."""
        from pyarrow import csv as pacsv
        from pyarrow import string as pa_string
        from pyspark.sql import functions

        data = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(column_names=list(columns)),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(columns, pa_string()),
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,
            ),
        )
        name = self.render(sqlbuild.table(schema, table))

        def append(generation: int) -> None:
            with self._tagged(generation) as session:
                fields = session.table(name).schema.fields
                by_name = {c.lower(): c for c in columns}
                frame = session.createDataFrame(data)
                frame = frame.select(
                    *(functions.col(_quoted(by_name[f.name.lower()])).cast(f.dataType)
                      for f in fields)
                )  # fmt: skip
                frame.write.insertInto(name)

        self._guard(f"INSERT INTO {name} /* {len(data)} rows from {path} */", None, append)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with suppress(Exception):
            self._session.stop()  # releases the Connect session on the server


def month_column(column: str) -> str:
    """The monthly partition column of a date or timestamp partition column."""
    return f"{column}__month"


def _month_of(value: exp.Expression) -> exp.Expression:
    """The first day of ``value``'s month, as a DATE."""
    return exp.Anonymous(
        this="TRUNC", expressions=[exp.cast(value, "DATE"), exp.Literal.string("MM")]
    )


def _partition_value(value: Any) -> exp.Literal:
    """A partition value as a partition spec spells it (dates and timestamps as text,
    which Spark casts to the partition column's type)."""
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        return exp.Literal.number(value)
    return exp.Literal.string(str(value))


def _parquet() -> exp.Properties:
    return exp.Properties(expressions=[exp.FileFormatProperty(this=exp.Var(this="PARQUET"))])


def _quoted(name: str) -> str:
    """A column name as a backquoted Spark identifier (for the DataFrame API)."""
    return sqlbuild.ident(name).sql(dialect="spark")


__all__ = ["SparkWarehouse", "month_column"]
