"""What every part of a batch shares: settings, cancellation, results, and where a
definition builds (one warehouse URL, its aggregate schema and SQL target)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from aggsched.planning import lattice, sqlgen, watermark
from aggsched.planning.plan import (
    ActiveInstance,
    BatchType,
    DefinitionState,
    StepMode,
)
from aggsched.planning.spec import DefinitionSpec
from aggsched.store import Store, org_settings
from aggsched.store.models import (
    AggregateInstance,
    BatchStatus,
    Connection,
    InstanceStatus,
)
from aggsched.warehouse import (
    QueryCancelled,
    QueryTimeout,
    Warehouse,
    WarehouseError,
    dialect_for_url,
    redact_url,
)

WarehouseOpener = Callable[[str], Warehouse]


@dataclass(frozen=True)
class BuildSettings:
    """The organization's settings that steer a batch (see `store.org_settings`)."""

    max_failures: int = 0
    attempts_per_aggregate: int = 3
    timeout_seconds: float | None = None
    drop_grace: timedelta = timedelta(minutes=10)
    max_shrink_percent: int = 0
    parallel_connections: int = 1

    @classmethod
    def load(cls, store: Store, org_id: str) -> BuildSettings:
        with store.session() as s:
            timeout = org_settings.get_int_setting(s, org_id, "aggregates.build.timeoutSeconds")
            grace = org_settings.get_int_setting(s, org_id, "aggregates.instance.drop.graceSeconds")
            return cls(
                max_failures=org_settings.get_int_setting(
                    s, org_id, "aggregates.batch.max.failures"
                ),
                attempts_per_aggregate=max(
                    1,
                    org_settings.get_int_setting(
                        s, org_id, "aggregates.batch.retry.maxAttemptsPerAggregate"
                    ),
                ),
                timeout_seconds=float(timeout) if timeout > 0 else None,
                drop_grace=timedelta(seconds=max(0, grace)),
                max_shrink_percent=org_settings.get_int_setting(
                    s, org_id, "aggregates.instance.maxShrinkPercent"
                ),
                parallel_connections=max(
                    1,
                    org_settings.get_int_setting(s, org_id, "aggregates.build.parallelConnections"),
                ),
            )


class CancelToken:
    """Stops a running batch from another thread: the flag stops further steps and the
    warehouse statement running now is interrupted."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._running: set[Warehouse] = set()
        self.reason = ""

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def cancel(self, reason: str = "cancelled") -> None:
        with self._lock:
            if not self._event.is_set():
                self.reason = reason
            self._event.set()
            running = list(self._running)
        for wh in running:
            wh.cancel()

    def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`; True if cancelled meanwhile."""
        return self._event.wait(seconds)

    @contextmanager
    def watching(self, wh: Warehouse) -> Iterator[None]:
        with self._lock:
            self._running.add(wh)
        try:
            if self.cancelled:
                raise QueryCancelled(self.reason or "cancelled")
            yield
        finally:
            with self._lock:
                self._running.discard(wh)


class BuildRefused(Exception):
    """An aggregate that is not built for a reason other than a warehouse error."""

    def __init__(self, message: str, status: InstanceStatus = InstanceStatus.FAILED) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Built:
    """A table built in this batch (or active before it) that may serve as a lattice source."""

    instance_id: uuid.UUID
    schema: str
    table: str
    url: str
    watermark: str | None


@dataclass
class StepResult:
    definition_id: uuid.UUID
    name: str
    mode: StepMode
    status: InstanceStatus
    instance_id: uuid.UUID | None = None
    table: str | None = None
    rows: int | None = None
    seconds: float = 0.0
    source: str | None = None
    sql: str | None = None
    error: str | None = None


@dataclass
class BatchReport:
    batch_id: uuid.UUID
    status: BatchStatus
    message: str
    steps: list[StepResult] = field(default_factory=list)
    batch_type: str = ""


@dataclass(frozen=True)
class BatchContext:
    """What a batch needs from the store, read once when it starts."""

    batch_id: uuid.UUID
    org_id: str
    cube_id: uuid.UUID
    batch_type: BatchType
    states: list[DefinitionState]
    pending: dict[uuid.UUID, uuid.UUID]  # definition id -> its pending instance id
    connections: dict[str, Connection]


@dataclass(frozen=True)
class Where:
    """The warehouse a definition builds on and the table placement there."""

    url: str
    schema: str
    target: sqlgen.Target


def target_for(url: str, connections: Mapping[str, Connection]) -> sqlgen.Target:
    """The SQL target of the warehouse at `url`: its dialect and where each SML
    connection's tables are there (the mappings' --database/--schema overrides)."""
    locations = {
        name: sqlgen.Location(c.database_override or None, c.schema_override or None)
        for name, c in connections.items()
    }
    return sqlgen.Target(dialect_for_url(url), locations)


def stored_spec(data: dict[str, Any], connections: Mapping[str, Connection]) -> DefinitionSpec:
    """A stored definition spec, its model SQL read in the dialect each connection mapping
    names (`aggsched connection add --sql-dialect`), else its SML connection's platform."""
    dialects = {name: c.sql_dialect for name, c in connections.items() if c.sql_dialect}
    return sqlgen.read_as(DefinitionSpec.from_dict(data), dialects)


def where_to_build(spec: DefinitionSpec, connections: Mapping[str, Connection]) -> Where:
    """The one warehouse all of a definition's datasets live in, or `BuildRefused`."""
    missing = sorted(c for c in spec.connections if c not in connections)
    if missing:
        raise BuildRefused(
            f"SML connection(s) {', '.join(map(repr, missing))} are not mapped to a "
            "warehouse (aggsched connection add NAME URL)"
        )
    urls = {connections[c].url for c in spec.connections}
    if len(urls) > 1:
        detail = ", ".join(
            f"{c} -> {redact_url(connections[c].url)}" for c in sorted(spec.connections)
        )
        raise BuildRefused(
            f"the datasets live in different warehouses ({detail}); an aggregate must be "
            "built where all of its datasets are",
            InstanceStatus.INVALID,
        )
    url = urls.pop()
    target = target_for(url, connections)
    return Where(url, connections[spec.connection].aggregate_schema, target)


Sources = list["lattice.Source[Built] | None"]


SHARED_SCAN = "shared scan"
FAILURES = (InstanceStatus.FAILED, InstanceStatus.INVALID)


def read_watermark(spec: DefinitionSpec, where: Where, wh: Warehouse) -> str | None:
    """MAX(incremental column), read before the build: rows appended meanwhile are simply
    recomputed by the next incremental build."""
    row = wh.fetch_one(sqlgen.render(sqlgen.max_incremental(spec, where.target), wh.dialect))
    return watermark.encode(row[0]) if row and row[0] is not None else None


def active_of(instance: AggregateInstance) -> ActiveInstance:
    return ActiveInstance(
        id=instance.id,
        table_schema=instance.table_schema or "",
        table_name=instance.table_name or "",
        rows=instance.number_of_rows or 0,
        watermark=instance.watermark,
    )


def failure_status(exc: Exception) -> InstanceStatus:
    if isinstance(exc, BuildRefused):
        return exc.status
    if isinstance(exc, QueryCancelled):
        return InstanceStatus.CANCELLED
    return InstanceStatus.FAILED


def describe_failure(exc: Exception, settings: BuildSettings) -> str:
    if isinstance(exc, QueryTimeout):
        return f"timed out after {settings.timeout_seconds:g} s (aggregates.build.timeoutSeconds)"
    return str(exc)


def drop_quietly(wh: Warehouse, schema: str, table: str) -> None:
    """Drop a table that must not survive; a failure here is left to `drop_expired_tables`."""
    with suppress(WarehouseError):
        wh.drop_table(schema, table)
