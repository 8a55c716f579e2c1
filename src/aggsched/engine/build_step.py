"""One aggregate's build step: its table built (with retries), guarded, and activated
atomically with its stable view — or dropped, leaving the active instance untouched."""

from __future__ import annotations

import time
import uuid
from contextlib import suppress
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from aggsched.engine.build_context import (
    SHARED_SCAN,
    BatchContext,
    BuildRefused,
    BuildSettings,
    Built,
    CancelToken,
    Sources,
    StepResult,
    Where,
    describe_failure,
    drop_quietly,
    failure_status,
    read_watermark,
    where_to_build,
)
from aggsched.engine.build_sql import partition_columns, step_query
from aggsched.engine.shared_scans import SharedGroup
from aggsched.engine.warehouse_pool import WarehousePool
from aggsched.planning import lattice, sqlgen
from aggsched.planning.naming import table_name
from aggsched.planning.plan import (
    ActiveInstance,
    DefinitionState,
    Step,
    StepMode,
)
from aggsched.store import Store, aggregates, batches, utcnow
from aggsched.store.models import (
    AggregateDefinition,
    BatchStatus,
    InstanceStatus,
)
from aggsched.warehouse import (
    QueryCancelled,
    QueryTimeout,
    Warehouse,
    WarehouseError,
)


@dataclass
class Job:
    """One attempt to build one aggregate: where, from what, under which limits."""

    step: Step
    where: Where
    pool: WarehousePool
    table: str
    settings: BuildSettings
    token: CancelToken
    sources: Sources = field(default_factory=list)
    shared: SharedGroup | None = None

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


class StepBuilder:
    """Builds one step of a batch; thread-safe as long as each thread has its own pool."""

    def __init__(self, store: Store, worker_id: str) -> None:
        self.store = store
        self.worker_id = worker_id

    def run(
        self,
        ctx: BatchContext,
        step: Step,
        settings: BuildSettings,
        pool: WarehousePool,
        built: list[lattice.Candidate[Built]],
        token: CancelToken,
        group: SharedGroup | None = None,
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
        job = Job(step, where, pool, result.table, settings, token)
        job.sources = lattice.choose_sources(spec, [c for c in built if c.key.url == where.url])
        if job.source is None and group is not None and group.stage is not None:
            job.shared = group
        try:
            rows, new_mark, result.sql = self._build_with_retries(job)
            self._guard(state.active, rows, settings, in_place)
        except Exception as exc:  # anything but a bug in the store fails this aggregate only
            result.seconds = time.monotonic() - started
            result.status = failure_status(exc)
            result.error = describe_failure(exc, settings)
            if isinstance(exc, WarehouseError) and job.source is None:
                # point at the model SQL (SML file, dataset, column) the warehouse refused
                culprit = sqlgen.blame(spec, where.target, str(exc))
                result.error += f" (in {culprit})" if culprit else ""
            result.sql = result.sql or getattr(exc, "sql", None)
            if not in_place:  # an incremental build rolled back; the active table is intact
                drop_quietly(job.wh, where.schema, result.table)
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
                drop_quietly(job.wh, where.schema, result.table)
            result.status, result.error = InstanceStatus.FAILED, refused
            return result
        result.status = InstanceStatus.ACTIVE
        key = Built(instance_id, where.schema, result.table, where.url, new_mark)
        built.append(lattice.Candidate(key, spec, rows))
        return result

    def _build_with_retries(self, job: Job) -> tuple[int, str | None, str]:
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
                    drop_quietly(job.wh, job.where.schema, job.table)
                    continue
                retry = (
                    job.wh.is_transient(exc)
                    and not stopped
                    and attempt < job.settings.attempts_per_aggregate
                )
                if not retry:
                    raise
                drop_quietly(job.wh, job.where.schema, job.table)
                if job.token.wait(min(30.0, 0.5 * 2 ** (attempt - 1))):
                    raise QueryCancelled(job.token.reason or "cancelled") from exc
                attempt += 1

    def _build(self, job: Job) -> tuple[int, str | None, str]:
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
        # a full build's statement reports its row count where the engine tells it; an
        # incremental one changed part of the table, which is counted whole
        rows = wh.rows_written if since is None else None
        if rows is None:
            rows = wh.row_count(where.schema, job.table)
        return rows, new_mark, sql

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
        ctx: BatchContext,
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
                definition = aggregates.get_definition(s, ctx.org_id, state.id)
                aggregates.create_instance(s, definition, instance_id=instance_id)
            aggregates.set_instance_status(s, instance_id, InstanceStatus.INPROGRESS, **fields)

    def _record_refusal(
        self, ctx: BatchContext, state: DefinitionState, instance_id: uuid.UUID, exc: BuildRefused
    ) -> None:
        with self.store.session() as s:
            if instance_id not in ctx.pending.values():
                definition = aggregates.get_definition(s, ctx.org_id, state.id)
                aggregates.create_instance(s, definition, instance_id=instance_id)
            aggregates.set_instance_status(
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
            aggregates.set_instance_status(
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
        ctx: BatchContext,
        instance_id: uuid.UUID,
        result: StepResult,
        new_mark: str | None,
        source: lattice.Source[Built] | None,
        settings: BuildSettings,
        in_place: bool,
        job: Job,
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
                instance = aggregates.get_instance(s, ctx.org_id, instance_id)
                if (
                    batch.status != BatchStatus.INPROGRESS.value
                    or batch.worker_id != self.worker_id
                ):
                    return "superseded: the batch is no longer this worker's"
                if instance.status != InstanceStatus.INPROGRESS.value:
                    return f"superseded: the instance became {instance.status} during the build"
                aggregates.set_instance_status(
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
                aggregates.activate_instance(
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
    def _switch_view(s: Session, job: Job, definition_id: uuid.UUID, table: str) -> None:
        """Point the definition's stable view at `table` (the caller's transaction records
        it, and rolls the activation back if this raises)."""
        definition = s.get(AggregateDefinition, definition_id)
        if definition is None:
            return
        view = aggregates.assign_view_name(s, definition)
        schema = job.where.schema
        if (definition.view_schema, definition.view_table) != (schema, table):
            job.wh.replace_view(schema, view, table)
        if definition.view_schema not in (None, schema) and definition.view_table:
            with suppress(WarehouseError):  # the connection's aggregate schema changed
                job.wh.drop_view(definition.view_schema, view)
        aggregates.set_view(s, definition_id, schema, table)
