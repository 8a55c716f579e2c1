"""Running one build batch: plan it, build each aggregate, swap it in atomically.

A full build writes a new table named after a new instance; only when that table is
complete does one store transaction make the instance `active` and the previous one
`deleted` (its table is dropped after a grace period, so queries in flight finish). An
incremental build updates the active table in place, in one warehouse transaction, and
its new instance takes the table over. A failed, cancelled or timed-out build drops its
own table (or rolls its transaction back) and leaves the active instance untouched, so a
half-built table is never visible.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session
from sqlglot import exp

from aggsched import telemetry
from aggsched.engine.queueing import queue_batch
from aggsched.engine.recovery import describe_owner, recover_cube
from aggsched.planning import lattice, naming, sharedscan, sqlgen, watermark
from aggsched.planning.naming import table_name
from aggsched.planning.plan import (
    ActiveInstance,
    BatchType,
    DefinitionState,
    Step,
    StepMode,
    active_sources_allowed,
    plan_batch,
)
from aggsched.planning.spec import DefinitionSpec
from aggsched.store import Store, batches, catalog, org_settings, queue, utcnow
from aggsched.store.errors import ConflictError
from aggsched.store.models import (
    AggregateDefinition,
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
    open_warehouse,
    redact_url,
    sqlbuild,
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
class _Context:
    """What a batch needs from the store, read once when it starts."""

    batch_id: uuid.UUID
    org_id: str
    cube_id: uuid.UUID
    batch_type: BatchType
    states: list[DefinitionState]
    pending: dict[uuid.UUID, uuid.UUID]  # definition id -> its pending instance id
    connections: dict[str, Connection]


@dataclass(frozen=True)
class _Where:
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


def where_to_build(spec: DefinitionSpec, connections: Mapping[str, Connection]) -> _Where:
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
    return _Where(url, connections[spec.connection].aggregate_schema, target)


Sources = list["lattice.Source[Built] | None"]


def build_query(
    spec: DefinitionSpec, where: _Where, sources: Sources, since: exp.Expression | None
) -> exp.Select:
    """The SELECT that computes the aggregate: each fact's part from its source (a finer
    aggregate) or the base tables; a multi-fact aggregate joins the parts on the grain."""
    parts = spec.components()
    multi = len(parts) > 1
    names = naming.attribute_columns(spec) if multi else None
    queries = []
    for part, source in zip(parts, sources, strict=True):
        if source is None:
            queries.append(
                sqlgen.base_select(part, where.target, since, names=names, presence=multi)
            )
        else:
            table = sqlgen.table(source.key.table, source.key.schema)
            queries.append(
                sqlgen.derived_select(part, source, table, since, names=names, presence=multi)
            )
    return sqlgen.multi_fact_select(spec, queries) if multi else queries[0]


def step_query(
    spec: DefinitionSpec,
    where: _Where,
    sources: Sources,
    previous: ActiveInstance | None,
    mode: StepMode,
) -> tuple[exp.Query, exp.Expression | None]:
    """The query of one step, and for an incremental step the first partition it
    recomputes (`watermark - grace`; None for a full build)."""
    since = None
    if mode is StepMode.INCREMENTAL:
        assert previous is not None and previous.watermark is not None and spec.incremental
        threshold = watermark.threshold(previous.watermark, spec.incremental.grace_seconds)
        since = sqlgen.since_expr(spec, threshold, where.target)
    return build_query(spec, where, sources, since), since


def partition_columns(spec: DefinitionSpec) -> list[str]:
    """The incremental partition column of an aggregate table (none if not incremental);
    engines that store partitions apart (Spark) partition the table by it."""
    return [naming.partition_column(spec.incremental)] if spec.incremental else []


def step_sql(
    spec: DefinitionSpec,
    where: _Where,
    dest: exp.Table,
    sources: Sources,
    previous: ActiveInstance | None,
    mode: StepMode,
) -> list[str]:
    """The statements of one step, as the warehouse runs them (for dry runs).

    A full build is one CREATE TABLE ... AS into a new table. An incremental build
    replaces the partitions from `watermark - grace` on in the active table: DELETE +
    INSERT in one transaction, or one INSERT OVERWRITE on Spark (`Warehouse.replace_partitions`).
    """
    dialect = where.target.dialect
    query, since = step_query(spec, where, sources, previous, mode)
    if since is None:
        create = sqlbuild.create_table_as(
            dest, query, dialect=dialect, partition_by=partition_columns(spec)
        )
        return [sqlgen.render(create, dialect)]
    statements = sqlbuild.replace_partitions(
        dest, sqlgen.output_columns(spec), query,
        partition_column=partition_columns(spec)[0], since=since, dialect=dialect,
    )  # fmt: skip
    return [sqlgen.render(statement, dialect) for statement in statements]


SHARED_SCAN = "shared scan"
FAILURES = (InstanceStatus.FAILED, InstanceStatus.INVALID)


def read_watermark(spec: DefinitionSpec, where: _Where, wh: Warehouse) -> str | None:
    """MAX(incremental column), read before the build: rows appended meanwhile are simply
    recomputed by the next incremental build."""
    row = wh.fetch_one(sqlgen.render(sqlgen.max_incremental(spec, where.target), wh.dialect))
    return watermark.encode(row[0]) if row and row[0] is not None else None


@dataclass
class _Job:
    """One attempt to build one aggregate: where, from what, under which limits."""

    step: Step
    where: _Where
    pool: _Pool
    table: str
    settings: BuildSettings
    token: CancelToken
    sources: Sources = field(default_factory=list)
    shared: _Group | None = None

    @property
    def source(self) -> lattice.Source[Built] | None:
        """The first part's source (the only one of a single-fact aggregate)."""
        return next((s for s in self.sources if s is not None), None)

    def describe_sources(self) -> str | None:
        names = [s.spec.name for s in self.sources if s is not None]
        return ", ".join(dict.fromkeys(names)) or None

    @property
    def wh(self) -> Warehouse:
        return self.pool.get(self.where.url)


@dataclass
class _Group:
    """Aggregates built from one shared scan, staged in a temporary table of the batch's
    connection (gone with the connection, so a crash leaves nothing behind)."""

    members: list[int]
    specs: list[DefinitionSpec]
    name: str
    scan: sharedscan.SharedScan | None = None
    stage: exp.Table | None = None
    watermark: str | None = None
    tried: bool = False

    def split_query(self, spec: DefinitionSpec) -> exp.Select:
        assert self.scan is not None and self.stage is not None
        mask = self.scan.masks[self.specs.index(spec)]
        return sharedscan.split_select(spec, self.scan, self.stage, mask)


class _SharedScans:
    """Plans and runs the shared scans of a batch (see `planning.sharedscan`)."""

    def __init__(
        self,
        ctx: _Context,
        steps: list[Step],
        built: list[lattice.Candidate[Built]],
        enabled: bool = True,
    ) -> None:
        self.ctx = ctx
        self.by_step: dict[int, _Group] = {}
        if not enabled:
            return
        specs = [s.definition.spec for s in steps]
        for n, members in enumerate(sharedscan.shared_groups(specs, built)):
            members = [i for i in members if steps[i].mode is StepMode.FULL]
            if len(members) > 1:
                name = f"as_agg_stage_{ctx.batch_id.hex[:8]}_{n}"
                group = _Group(members, [specs[i] for i in members], name)
                self.by_step.update(dict.fromkeys(members, group))

    def prepare(
        self, index: int, pool: _Pool, settings: BuildSettings, token: CancelToken
    ) -> _Group | None:
        """The step's group, its staging table built on first use (None: build alone)."""
        group = self.by_step.get(index)
        if group is None or group.tried:
            return group
        group.tried = True
        try:
            union = sharedscan.union_spec(group.specs)
            where = where_to_build(union, self.ctx.connections)
            wh = pool.get(where.url)
            scan = sharedscan.grouping_select(group.specs, where.target)
            stage = sqlgen.table(group.name)
            with token.watching(wh):
                if union.incremental is not None:
                    group.watermark = read_watermark(union, where, wh)
                wh.create_temporary_table_as(
                    group.name, scan.query, timeout=settings.timeout_seconds
                )
        except (WarehouseError, BuildRefused, sqlgen.SqlGenerationError):
            return None  # each member scans the base tables on its own (and fails alone)
        group.scan, group.stage = scan, stage
        return group

    def drop_all(self, pool: _Pool) -> None:
        """Drop staging tables a stopped batch left (they would outlive it on a kept
        connection)."""
        for index, group in self.by_step.items():
            if index == group.members[-1]:
                self.done(index, pool, force=True)

    def done(self, index: int, pool: _Pool, force: bool = False) -> None:
        """Drop the staging table once its last member is built."""
        group = self.by_step.get(index)
        if group is None or group.stage is None or (index != group.members[-1] and not force):
            return
        union = sharedscan.union_spec(group.specs)
        with suppress(WarehouseError, BuildRefused):
            wh = pool.get(where_to_build(union, self.ctx.connections).url)
            wh.drop_table(None, group.name)
        group.stage = None


class BatchRunner:
    """Runs batches that a worker (or the CLI) has claimed; one batch at a time."""

    def __init__(
        self,
        store: Store,
        *,
        env: Mapping[str, str] | None = None,
        worker_id: str = "",
        heartbeat_seconds: float = 2.0,
        on_plan: Callable[[list[Step]], None] | None = None,
        on_step: Callable[[StepResult], None] | None = None,
        opener: WarehouseOpener | None = None,
        shared_scans: bool = False,
        keep_connections: bool = False,
    ) -> None:
        self.store = store
        self.shared_scans = shared_scans
        self.keep_connections = keep_connections
        self.env = os.environ if env is None else env
        # host and pid, as node ids have: who owns a batch is told in messages
        self.worker_id = worker_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.heartbeat_seconds = heartbeat_seconds
        self.on_plan = on_plan
        self.on_step = on_step
        self._open = opener or (lambda url: open_warehouse(url, self.env))
        self._pool = _Pool(self._open)

    def close(self) -> None:
        """Close the warehouse connections kept between batches (`keep_connections`)."""
        self._pool.close()

    def __enter__(self) -> BatchRunner:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------ batch
    def run(self, batch_id: uuid.UUID, token: CancelToken | None = None) -> BatchReport:
        """Run a batch this runner's worker has claimed (`inprogress`) to its end
        (logged with its ids and measured: `aggsched.telemetry`)."""
        with telemetry.observe_batch(batch_id) as observed:
            report = self._run(batch_id, token)
            observed.finished(report.batch_type, report.status, report.steps)
        return report

    def _run(self, batch_id: uuid.UUID, token: CancelToken | None) -> BatchReport:
        token = token or CancelToken()
        ctx = self._load(batch_id)
        telemetry.bind_log_ids(org_id=ctx.org_id, cube_id=ctx.cube_id)
        settings = BuildSettings.load(self.store, ctx.org_id)
        pool = self._pool
        pool.ensured.clear()  # a schema may have been dropped since the last batch
        stop_heartbeat = self._start_heartbeat(ctx.batch_id, token)
        results: list[StepResult] = []
        steps: list[Step] = []
        shared = _SharedScans(ctx, [], [], enabled=False)
        try:
            drop_expired_tables(self.store, pool)
            steps = plan_batch(ctx.batch_type, ctx.states)
            if self.on_plan:
                self.on_plan(steps)
            built = self._initial_sources(ctx)
            shared = _SharedScans(ctx, steps, built, enabled=self.shared_scans)
            for index, step in enumerate(steps):
                if token.cancelled:
                    break
                failures = sum(r.status in FAILURES for r in results)
                if settings.max_failures and failures >= settings.max_failures:
                    break
                group = shared.prepare(index, pool, settings, token)
                result = self._run_step(ctx, step, settings, pool, built, token, group)
                shared.done(index, pool)
                results.append(result)
                if self.on_step:
                    self.on_step(result)
            drop_expired_tables(self.store, pool)
        except Exception as exc:
            self._close_broken(ctx.batch_id, f"the batch broke: {exc}")
            raise
        finally:
            stop_heartbeat()
            if self.keep_connections:
                shared.drop_all(pool)
                pool.release_embedded()
            else:
                pool.close()
        return self._finish(ctx, steps, results, settings, token)

    def _load(self, batch_id: uuid.UUID) -> _Context:
        with self.store.session() as s:
            batch = batches.get_batch(s, batch_id)
            if batch.status != BatchStatus.INPROGRESS.value:
                raise ConflictError(f"build batch {batch_id} is {batch.status}, not in progress")
            live = catalog.cube_instances(
                s, batch.cube_id, [InstanceStatus.ACTIVE, InstanceStatus.PENDING]
            )
            active = {i.definition_id: i for i in live if i.status == InstanceStatus.ACTIVE}
            pending = {i.definition_id: i.id for i in live if i.status == InstanceStatus.PENDING}
            connections = {c.name: c for c in catalog.list_connections(s, batch.org_id)}
            for conn in connections.values():
                s.expunge(conn)
            states = [
                DefinitionState(
                    d.id,
                    stored_spec(d.spec, connections),
                    _active(active[d.id]) if d.id in active else None,
                    blocked=d.blocked,
                )
                for d in catalog.cube_definitions(s, batch.cube_id, buildable=True)
            ]
            return _Context(
                batch.id,
                batch.org_id,
                batch.cube_id,
                BatchType(batch.batch_type),
                states,
                pending,
                connections,
            )

    def _initial_sources(self, ctx: _Context) -> list[lattice.Candidate[Built]]:
        if not active_sources_allowed(ctx.batch_type):
            return []
        sources = []
        for state in ctx.states:
            if state.active is None:
                continue
            try:
                url = where_to_build(state.spec, ctx.connections).url
            except BuildRefused:
                continue
            a = state.active
            key = Built(a.id, a.table_schema, a.table_name, url, a.watermark)
            sources.append(lattice.Candidate(key, state.spec, a.rows))
        return sources

    # ------------------------------------------------------------------ step
    def _run_step(
        self,
        ctx: _Context,
        step: Step,
        settings: BuildSettings,
        pool: _Pool,
        built: list[lattice.Candidate[Built]],
        token: CancelToken,
        group: _Group | None = None,
    ) -> StepResult:
        state = step.definition
        spec = state.spec
        result = StepResult(state.id, spec.name, step.mode, InstanceStatus.INPROGRESS)
        instance_id = ctx.pending.get(state.id) or uuid.uuid4()
        result.instance_id = instance_id
        started = time.monotonic()
        try:
            where = where_to_build(spec, ctx.connections)
        except (BuildRefused, WarehouseError) as exc:
            refused = exc if isinstance(exc, BuildRefused) else BuildRefused(str(exc))
            self._record_refusal(ctx, state, instance_id, refused)
            result.status, result.error = refused.status, str(refused)
            return result
        in_place = step.mode is StepMode.INCREMENTAL and state.active is not None
        result.table = state.active.table_name if in_place else table_name(instance_id, spec.name)
        self._start_instance(ctx, state, instance_id, where.schema, result.table)
        job = _Job(step, where, pool, result.table, settings, token)
        job.sources = lattice.choose_sources(spec, [c for c in built if c.key.url == where.url])
        if job.source is None and group is not None and group.stage is not None:
            job.shared = group
        try:
            rows, new_mark, result.sql = self._build_with_retries(job)
            self._guard(state.active, rows, settings, in_place)
        except Exception as exc:  # anything but a bug in the store fails this aggregate only
            result.seconds = time.monotonic() - started
            result.status = _failure_status(exc)
            result.error = _describe(exc, settings)
            if isinstance(exc, WarehouseError) and job.source is None:
                # point at the model SQL (SML file, dataset, column) the warehouse refused
                culprit = sqlgen.blame(spec, where.target, str(exc))
                result.error += f" (in {culprit})" if culprit else ""
            result.sql = result.sql or getattr(exc, "sql", None)
            if not in_place:  # an incremental build rolled back; the active table is intact
                _drop_quietly(job.wh, where.schema, result.table)
            self._record_failure(instance_id, result, drop=not in_place)
            return result
        result.seconds = time.monotonic() - started
        result.rows = rows
        result.source = job.describe_sources()
        if job.shared:
            result.source = SHARED_SCAN
        refused = self._activate(
            ctx, instance_id, result, new_mark, job.source, settings, in_place, job
        )
        if refused:
            if not in_place:
                _drop_quietly(job.wh, where.schema, result.table)
            result.status, result.error = InstanceStatus.FAILED, refused
            return result
        result.status = InstanceStatus.ACTIVE
        key = Built(instance_id, where.schema, result.table, where.url, new_mark)
        built.append(lattice.Candidate(key, spec, rows))
        return result

    def _build_with_retries(self, job: _Job) -> tuple[int, str | None, str]:
        """Build the table; transient warehouse errors are retried with backoff, and a build
        from a shared scan that fails falls back to the base tables."""
        attempt = 1
        while True:
            try:
                with job.token.watching(job.wh):
                    return self._build(job)
            except WarehouseError as exc:
                stopped = isinstance(exc, QueryCancelled | QueryTimeout)
                if job.shared is not None and not stopped:
                    job.shared.stage = None  # e.g. a reconnect lost the temporary table
                    job.shared = None
                    _drop_quietly(job.wh, job.where.schema, job.table)
                    continue
                retry = (
                    job.wh.is_transient(exc)
                    and not stopped
                    and attempt < job.settings.attempts_per_aggregate
                )
                if not retry:
                    raise
                _drop_quietly(job.wh, job.where.schema, job.table)
                if job.token.wait(min(30.0, 0.5 * 2 ** (attempt - 1))):
                    raise QueryCancelled(job.token.reason or "cancelled") from exc
                attempt += 1

    def _build(self, job: _Job) -> tuple[int, str | None, str]:
        spec, wh, where, step = job.step.definition.spec, job.wh, job.where, job.step
        previous = step.definition.active
        new_mark = previous.watermark if previous else None
        if spec.incremental is not None:
            if job.source:
                new_mark = job.source.key.watermark
            elif job.shared:
                new_mark = job.shared.watermark
            else:
                new_mark = read_watermark(spec, where, wh)
        if step.mode is StepMode.FULL:
            job.pool.ensure_schema(where.url, where.schema)
        dest = sqlgen.table(job.table, where.schema)
        timeout, partitions = job.settings.timeout_seconds, partition_columns(spec)
        if job.shared is not None:
            query, since = job.shared.split_query(spec), None
        else:
            query, since = step_query(spec, where, job.sources, previous, step.mode)
        # the warehouse makes each atomic its own way (see Warehouse.replace_partitions)
        if since is None:
            sql = wh.create_table_as(
                dest, query, partition_by=partitions,
                coarse_partitions=sqlgen.coarse_partitions(spec), timeout=timeout,
            )  # fmt: skip
        else:
            sql = wh.replace_partitions(
                dest, sqlgen.output_columns(spec), query,
                partition_column=partitions[0], since=since, timeout=timeout,
            )  # fmt: skip
        return wh.row_count(where.schema, job.table), new_mark, sql

    @staticmethod
    def _guard(
        active: ActiveInstance | None, rows: int, settings: BuildSettings, in_place: bool
    ) -> None:
        """Never let an empty (or, if configured, much smaller) table replace a good one.

        An incremental build has already changed the active table in place, so it is not
        second-guessed here: appends only add partitions."""
        if active is None or active.rows <= 0 or in_place:
            return
        if rows == 0:
            raise BuildRefused(
                f"outcome guard: the new table is empty while the active instance has "
                f"{active.rows} rows; the active instance stays"
            )
        pct = settings.max_shrink_percent
        if pct and rows < active.rows * (100 - pct) / 100:
            raise BuildRefused(
                f"outcome guard: the new table has {rows} rows, more than {pct}% fewer than "
                f"the active instance's {active.rows}; the active instance stays"
            )

    # ------------------------------------------------------------------ store writes
    def _start_instance(
        self,
        ctx: _Context,
        state: DefinitionState,
        instance_id: uuid.UUID,
        schema: str,
        table: str,
    ) -> None:
        fields = {
            "batch_id": ctx.batch_id,
            "table_name": table,
            "table_schema": schema,
            "materialization_start_time": utcnow(),
        }
        with self.store.session() as s:
            if instance_id not in ctx.pending.values():
                definition = catalog.get_definition(s, ctx.org_id, state.id)
                catalog.create_instance(s, definition, instance_id=instance_id)
            catalog.set_instance_status(s, instance_id, InstanceStatus.INPROGRESS, **fields)

    def _record_refusal(
        self, ctx: _Context, state: DefinitionState, instance_id: uuid.UUID, exc: BuildRefused
    ) -> None:
        with self.store.session() as s:
            if instance_id not in ctx.pending.values():
                definition = catalog.get_definition(s, ctx.org_id, state.id)
                catalog.create_instance(s, definition, instance_id=instance_id)
            catalog.set_instance_status(
                s,
                instance_id,
                exc.status,
                batch_id=ctx.batch_id,
                error=str(exc),
                message=str(exc),
                materialization_start_time=utcnow(),
                materialization_end_time=utcnow(),
            )

    def _record_failure(self, instance_id: uuid.UUID, result: StepResult, drop: bool) -> None:
        """Record the failure; `drop` schedules the (already dropped) table's cleanup check,
        which an incremental build's table — the active one — must never get."""
        with self.store.session() as s:
            catalog.set_instance_status(
                s,
                instance_id,
                result.status,
                error=result.error,
                message=result.error or "",
                sql=result.sql,
                build_duration=result.seconds,
                materialization_end_time=utcnow(),
                drop_after=utcnow() if drop else None,
            )

    def _activate(
        self,
        ctx: _Context,
        instance_id: uuid.UUID,
        result: StepResult,
        new_mark: str | None,
        source: lattice.Source[Built] | None,
        settings: BuildSettings,
        in_place: bool,
        job: _Job,
    ) -> str | None:
        """Make the built table live — the instance active and the definition's stable
        view pointing at it, in one step — unless the world moved on while it was built:
        the batch was taken from this worker (recovery), or the instance was invalidated by
        a republish or deactivated. Returns why it was refused, or None.

        The view is switched in the warehouse inside the store transaction that activates
        the instance: if the switch fails, the activation rolls back."""
        try:
            with self.store.session() as s:
                batch = batches.get_batch(s, ctx.batch_id)
                instance = catalog.get_instance(s, ctx.org_id, instance_id)
                if (
                    batch.status != BatchStatus.INPROGRESS.value
                    or batch.worker_id != self.worker_id
                ):
                    return "superseded: the batch is no longer this worker's"
                if instance.status != InstanceStatus.INPROGRESS.value:
                    return f"superseded: the instance became {instance.status} during the build"
                catalog.set_instance_status(
                    s,
                    instance_id,
                    InstanceStatus.INPROGRESS,
                    number_of_rows=result.rows,
                    build_duration=result.seconds,
                    sql=result.sql,
                    watermark=new_mark,
                    materialization_end_time=utcnow(),
                    message=f"built from {result.source}" if result.source else "built from base",
                )
                instance.source_instance_id = source.key.instance_id if source else None
                catalog.activate_instance(
                    s, instance_id, grace=settings.drop_grace, takes_over_table=in_place
                )
                self._switch_view(s, job, instance.definition_id, result.table or "")
        except WarehouseError as exc:
            why = f"the stable view could not be switched to the new table: {exc}"
            result.status, result.error = InstanceStatus.FAILED, why
            self._record_failure(instance_id, result, drop=not in_place)
            return why
        return None

    @staticmethod
    def _switch_view(s: Session, job: _Job, definition_id: uuid.UUID, table: str) -> None:
        """Point the definition's stable view at `table` (the caller's transaction records
        it, and rolls the activation back if this raises)."""
        definition = s.get(AggregateDefinition, definition_id)
        if definition is None:
            return
        view = catalog.assign_view_name(s, definition)
        schema = job.where.schema
        if (definition.view_schema, definition.view_table) != (schema, table):
            job.wh.replace_view(schema, view, table)
        if definition.view_schema not in (None, schema) and definition.view_table:
            with suppress(WarehouseError):  # the connection's aggregate schema changed
                job.wh.drop_view(definition.view_schema, view)
        catalog.set_view(s, definition_id, schema, table)

    def _finish(
        self,
        ctx: _Context,
        steps: list[Step],
        results: list[StepResult],
        settings: BuildSettings,
        token: CancelToken,
    ) -> BatchReport:
        failed = [r for r in results if r.status in FAILURES]
        built = [r for r in results if r.status is InstanceStatus.ACTIVE]
        rolled = sum(1 for r in built if r.source)
        parts = [f"built {len(built)} of {len(steps)} aggregate(s) ({rolled} from finer ones)"]
        if failed:
            parts.append(
                f"{len(failed)} failed: " + "; ".join(f"{r.name}: {r.error}" for r in failed)
            )
        if token.cancelled:
            status, parts = BatchStatus.CANCELLED, [token.reason or "cancelled", *parts]
        elif len(results) < len(steps):
            status = BatchStatus.FAILED
            parts.append(
                f"stopped after {settings.max_failures} failure(s) (aggregates.batch.max.failures)"
            )
        else:
            status = BatchStatus.FAILED if failed else BatchStatus.DONE
        message = "; ".join(parts)[:4000]
        try:
            with self.store.session() as s:
                batches.finish_batch(
                    s, ctx.batch_id, status, worker_id=self.worker_id, message=message
                )
        except ConflictError as lost:  # recovered by another node meanwhile: its call now
            message = f"{message}; not recorded: {lost}"
        return BatchReport(ctx.batch_id, status, message, results, ctx.batch_type.value)

    def _close_broken(self, batch_id: uuid.UUID, message: str) -> None:
        """Best effort, so nothing stays `inprogress` when the store itself failed: the
        instances left unfinished fail and the batch closes as failed."""
        with suppress(Exception), self.store.session() as s:
            catalog.fail_unfinished_instances(s, batch_id, message)
            batches.finish_batch(s, batch_id, BatchStatus.FAILED, message=message[:4000])

    # ------------------------------------------------------------------ heartbeat
    def _start_heartbeat(self, batch_id: uuid.UUID, token: CancelToken) -> Callable[[], None]:
        """A thread that proves this worker is alive and notices cancel requests."""
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(self.heartbeat_seconds):
                try:
                    with self.store.session() as s:
                        batch = batches.heartbeat_batch(s, batch_id, self.worker_id)
                        if batch is None:
                            token.cancel("the batch was taken from this worker")
                        elif batch.cancel_requested:
                            token.cancel("cancelled on request")
                except Exception:  # the store may be briefly unreachable; try again
                    continue

        thread = threading.Thread(target=beat, name=f"heartbeat-{batch_id}", daemon=True)
        thread.start()

        def stop_beating() -> None:
            stop.set()
            thread.join(timeout=5)

        return stop_beating


def _active(instance: AggregateInstance) -> ActiveInstance:
    return ActiveInstance(
        id=instance.id,
        table_schema=instance.table_schema or "",
        table_name=instance.table_name or "",
        rows=instance.number_of_rows or 0,
        watermark=instance.watermark,
    )


def _failure_status(exc: Exception) -> InstanceStatus:
    if isinstance(exc, BuildRefused):
        return exc.status
    if isinstance(exc, QueryCancelled):
        return InstanceStatus.CANCELLED
    return InstanceStatus.FAILED


def _describe(exc: Exception, settings: BuildSettings) -> str:
    if isinstance(exc, QueryTimeout):
        return f"timed out after {settings.timeout_seconds:g} s (aggregates.build.timeoutSeconds)"
    return str(exc)


def _drop_quietly(wh: Warehouse, schema: str, table: str) -> None:
    """Drop a table that must not survive; a failure here is left to `drop_expired_tables`."""
    with suppress(WarehouseError):
        wh.drop_table(schema, table)


class _Pool:
    """One open warehouse per URL, shared by the steps and cleanup of one batch."""

    def __init__(self, opener: WarehouseOpener) -> None:
        self._open = opener
        self._open_ones: dict[str, Warehouse] = {}
        self.ensured: set[tuple[str, str]] = set()

    def get(self, url: str) -> Warehouse:
        if url not in self._open_ones:
            self._open_ones[url] = self._open(url)
        return self._open_ones[url]

    def ensure_schema(self, url: str, schema: str) -> None:
        """CREATE SCHEMA IF NOT EXISTS, once per batch and schema."""
        if (url, schema) not in self.ensured:
            self.get(url).ensure_schema(schema)
            self.ensured.add((url, schema))

    def close(self) -> None:
        for wh in self._open_ones.values():
            with suppress(WarehouseError):
                wh.close()
        self._open_ones.clear()
        self.ensured.clear()

    def release_embedded(self) -> None:
        """Close embedded (DuckDB) databases: one process at a time may write a DuckDB
        file, so between batches it is left free for the CLI and other processes."""
        for url in [u for u, wh in self._open_ones.items() if wh.dialect == "duckdb"]:
            with suppress(WarehouseError):
                self._open_ones.pop(url).close()


def drop_expired_tables(store: Store, warehouses: WarehouseOpener | _Pool, limit: int = 500) -> int:
    """Drop the tables of replaced, invalid and failed instances whose grace period is over,
    and the stable views of definitions a republish removed or made invalid.

    `warehouses` is an open batch's pool or an opener (a pool is made and closed here).
    Returns how many tables were dropped; an unreachable warehouse is tried again next time.
    """
    with store.session() as s:
        due = [
            (i.id, i.org_id, i.connection_id, i.table_schema, i.table_name)
            for i in catalog.instances_to_drop(s, limit=limit)
        ]
        # a view must go before the table it selects from (PostgreSQL refuses otherwise)
        doomed = catalog.views_to_drop(s, limit=limit)
        doomed += catalog.views_on(s, [(d[3], d[4]) for d in due if d[3] and d[4]])
        views = list(
            dict.fromkeys(
                (d.id, d.org_id, d.connection_id, d.view_schema, d.view_name) for d in doomed
            )
        )
        urls = {
            (c.org_id, c.name): c.url
            for org in {d[1] for d in due} | {v[1] for v in views}
            for c in catalog.list_connections(s, org)
        }
    if not due and not views:
        return 0
    pool = warehouses if isinstance(warehouses, _Pool) else _Pool(warehouses)
    dropped = 0
    try:
        for definition_id, org_id, conn_name, schema, view in views:
            url = urls.get((org_id, conn_name or ""))
            if url is not None and schema and view:
                try:
                    pool.get(url).drop_view(schema, view)
                except WarehouseError:
                    continue
            with store.session() as s:
                catalog.set_view(s, definition_id, None, None)
        for instance_id, org_id, conn_name, schema, table in due:
            url = urls.get((org_id, conn_name or ""))
            if table and schema:
                if url is None:
                    with store.session() as s:
                        catalog.keep_table(
                            s, instance_id, f"table {schema}.{table} left in place: connection "
                            f"{conn_name!r} is no longer mapped",
                        )  # fmt: skip
                    continue
                try:
                    pool.get(url).drop_table(schema, table)
                except WarehouseError:
                    continue
                dropped += 1
            with store.session() as s:
                catalog.mark_table_dropped(s, instance_id)
    finally:
        if pool is not warehouses:
            pool.close()
    return dropped


class CubeBusy(ConflictError):
    """The cube's batch in progress belongs to an owner that is still alive."""


def build_now(
    store: Store,
    runner: BatchRunner,
    org_id: str,
    cube_id: uuid.UUID,
    batch_type: BatchType,
    *,
    requested_by: str = "cli",
    token: CancelToken | None = None,
    stale_after: timedelta = timedelta(seconds=15),
    poll_seconds: float = 0.5,
    on_wait: Callable[[str], None] | None = None,
) -> BatchReport:
    """Queue (or join the pending) batch of a cube and run it in this process now.

    When the cube has a batch in progress its owner is watched, for up to `stale_after`: a
    new heartbeat shows it alive (`CubeBusy`, naming the owner and its last heartbeat);
    none for `stale_after` means its process is gone, and its batch is recovered as workers
    do (re-queued, so this build runs it), without waiting for a worker to notice."""
    _wait_for_owner(store, org_id, cube_id, stale_after, poll_seconds, on_wait)
    with store.session() as s:
        cube = catalog.get_cube_by_id(s, org_id, cube_id)
        queued = queue_batch(s, cube, batch_type, requested_by=requested_by,
                             stale_after=stale_after)  # fmt: skip
        if queue.claim_batch(s, queued.batch.id, runner.worker_id) is None:
            running = batches.inprogress_batch(s, cube_id)
            owner = describe_owner(running) if running else "another process claimed it"
            raise CubeBusy(f"cube {cube_id} already has a batch in progress: {owner}")
        batch_id = queued.batch.id
    return runner.run(batch_id, token)


def _wait_for_owner(
    store: Store,
    org_id: str,
    cube_id: uuid.UUID,
    stale_after: timedelta,
    poll_seconds: float,
    on_wait: Callable[[str], None] | None,
) -> None:
    """Return once the cube has no batch in progress (a stale one is recovered); raise
    `CubeBusy` as soon as its owner heartbeats."""
    first: tuple[uuid.UUID, object] | None = None
    deadline = time.monotonic() + stale_after.total_seconds() + 2 * poll_seconds + 1
    while True:
        with store.session() as s:
            cube = catalog.get_cube_by_id(s, org_id, cube_id)
            recover_cube(s, cube, stale_after)
            running = batches.inprogress_batch(s, cube_id)
            if running is None:
                return
            seen, owner = (running.id, running.heartbeat_at), describe_owner(running)
        busy = f"cube {cube_id} already has a batch in progress: {owner}"
        if first is not None and (seen != first or time.monotonic() > deadline):
            raise CubeBusy(f"{busy}; cancel it with `aggsched batch cancel {seen[0]}`")
        if first is None and on_wait is not None:
            on_wait(f"{busy}; waiting up to {stale_after.total_seconds():g} s to see whether it "
                    "is alive (a lost one is recovered)")  # fmt: skip
        first = first or seen
        time.sleep(poll_seconds)


@dataclass(frozen=True)
class PreviewStep:
    name: str
    mode: StepMode
    source: str | None
    sql: str | None
    problem: str | None = None


def preview_batch(
    store: Store, org_id: str, cube_id: uuid.UUID, batch_type: BatchType
) -> list[PreviewStep]:
    """The plan a batch would run now (order, source, SQL), changing nothing.

    Sources are chosen as the run would, with the row counts of the active instances
    standing in for tables not built yet.
    """
    with store.session() as s:
        catalog.get_cube_by_id(s, org_id, cube_id)
        connections = {c.name: c for c in catalog.list_connections(s, org_id)}
        states = [
            DefinitionState(
                d.id,
                stored_spec(d.spec, connections),
                _active(a) if (a := catalog.active_instance(s, d.id)) else None,
                blocked=d.blocked,
            )
            for d in catalog.cube_definitions(s, cube_id, buildable=True)
        ]
    candidates: list[lattice.Candidate[Built]] = []
    if active_sources_allowed(batch_type):
        candidates = [
            lattice.Candidate(Built(st.active.id, st.active.table_schema, st.active.table_name,
                                    "", st.active.watermark), st.spec, st.active.rows)
            for st in states
            if st.active
        ]  # fmt: skip
    preview = []
    for step in plan_batch(batch_type, states):
        spec, state = step.definition.spec, step.definition
        try:
            where = where_to_build(spec, connections)
        except BuildRefused as refused:
            preview.append(PreviewStep(spec.name, step.mode, None, None, str(refused)))
            continue
        sources = lattice.choose_sources(spec, candidates)
        name = table_name(uuid.UUID(int=0), spec.name).replace("00000000", "<new id>")
        if step.mode is StepMode.INCREMENTAL and state.active:
            name = state.active.table_name
        try:
            statements = step_sql(
                spec, where, sqlgen.table(name, where.schema), sources, state.active, step.mode
            )
        except sqlgen.SqlGenerationError as exc:  # e.g. SQL with no translation: say where
            preview.append(PreviewStep(spec.name, step.mode, None, None, str(exc)))
            continue
        source_name = ", ".join(s.spec.name for s in sources if s is not None) or None
        preview.append(PreviewStep(spec.name, step.mode, source_name, ";\n".join(statements)))
        rows = state.active.rows if state.active else 10**12
        candidates.append(
            lattice.Candidate(Built(state.id, where.schema, name, "", None), spec, rows)
        )
    return preview
