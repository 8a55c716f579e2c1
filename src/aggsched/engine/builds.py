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
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from datetime import timedelta

from aggsched import telemetry
from aggsched.engine.build_context import (
    FAILURES,
    BatchContext,
    BatchReport,
    BuildRefused,
    BuildSettings,
    Built,
    CancelToken,
    StepResult,
    WarehouseOpener,
    active_of,
    stored_spec,
    target_for,
    where_to_build,
)
from aggsched.engine.build_sql import step_sql
from aggsched.engine.build_step import StepBuilder
from aggsched.engine.cleanup import drop_expired_tables
from aggsched.engine.parallel_steps import parallel_dialect, run_parallel
from aggsched.engine.queueing import queue_batch
from aggsched.engine.recovery import describe_owner, recover_cube
from aggsched.engine.shared_scans import SharedScans
from aggsched.engine.warehouse_pool import WarehousePool
from aggsched.planning import lattice, sqlgen
from aggsched.planning.naming import table_name
from aggsched.planning.plan import (
    BatchType,
    DefinitionState,
    Step,
    StepMode,
    active_sources_allowed,
    plan_batch,
)
from aggsched.store import Store, aggregates, batches, catalog, queue
from aggsched.store.errors import ConflictError
from aggsched.store.models import (
    BatchStatus,
    InstanceStatus,
)
from aggsched.warehouse import WarehouseError, dialect_for_url, open_warehouse

__all__ = [  # the engine's build API; the parts live in the modules imported above
    "BatchReport", "BatchRunner", "BuildSettings", "CancelToken", "CubeBusy", "PreviewStep",
    "StepResult", "WarehouseOpener", "build_now", "drop_expired_tables", "preview_batch",
    "target_for",
]  # fmt: skip


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
        self._pool = WarehousePool(self._open)
        self._steps = StepBuilder(store, self.worker_id)
        self._extra_pools: list[WarehousePool] = []

    def close(self) -> None:
        """Close the warehouse connections kept between batches (`keep_connections`)."""
        self._pool.close()
        for extra in self._extra_pools:
            extra.close()

    def _parallel_connections(
        self, ctx: BatchContext, steps: list[Step], settings: BuildSettings
    ) -> int:
        """How many connections build this batch's steps at once (see `parallel_steps`):
        1 with shared scans (they stage on one connection) or off PostgreSQL."""
        if settings.parallel_connections <= 1 or self.shared_scans or len(steps) < 2:
            return 1
        dialects = set()
        for step in steps:
            with suppress(BuildRefused):  # refused later, by the step itself
                dialects.add(
                    dialect_for_url(where_to_build(step.definition.spec, ctx.connections).url)
                )
        return settings.parallel_connections if parallel_dialect(dialects) else 1

    def _pools(self, count: int) -> list[WarehousePool]:
        """The batch's pool and `count - 1` more (kept like it between batches)."""
        while len(self._extra_pools) < count - 1:
            self._extra_pools.append(WarehousePool(self._open))
        return [self._pool, *self._extra_pools[: count - 1]]

    def _ensure_schemas(
        self, ctx: BatchContext, steps: list[Step], pools: list[WarehousePool]
    ) -> None:
        """Create the aggregate schemas once, before steps run at once: concurrent
        CREATE SCHEMA IF NOT EXISTS can fail on PostgreSQL (unique violation)."""
        for step in steps:
            with suppress(BuildRefused, WarehouseError):
                where = where_to_build(step.definition.spec, ctx.connections)
                self._pool.ensure_schema(where.url, where.schema)
        for extra in pools[1:]:
            extra.ensured.clear()
            extra.ensured.update(self._pool.ensured)

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
        shared = SharedScans(ctx, [], [], enabled=False)
        try:
            drop_expired_tables(self.store, pool)
            steps = plan_batch(ctx.batch_type, ctx.states)
            if self.on_plan:
                self.on_plan(steps)
            built = self._initial_sources(ctx)
            shared = SharedScans(ctx, steps, built, enabled=self.shared_scans)

            def stop(done: list[StepResult]) -> bool:
                failures = sum(r.status in FAILURES for r in done)
                return bool(settings.max_failures and failures >= settings.max_failures)

            connections = self._parallel_connections(ctx, steps, settings)
            if connections > 1:
                pools = self._pools(connections)
                self._ensure_schemas(ctx, steps, pools)
                results = run_parallel(
                    steps,
                    lambda i, p: self._steps.run(ctx, steps[i], settings, p, built, token),
                    pools, token, stop, self.on_step,
                )  # fmt: skip
            else:
                for index, step in enumerate(steps):
                    if token.cancelled or stop(results):
                        break
                    group = shared.prepare(index, pool, settings, token)
                    result = self._steps.run(ctx, step, settings, pool, built, token, group)
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
                self.close()
        return self._finish(ctx, steps, results, settings, token)

    def _load(self, batch_id: uuid.UUID) -> BatchContext:
        with self.store.session() as s:
            batch = batches.get_batch(s, batch_id)
            if batch.status != BatchStatus.INPROGRESS.value:
                raise ConflictError(f"build batch {batch_id} is {batch.status}, not in progress")
            live = aggregates.cube_instances(
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
                    active_of(active[d.id]) if d.id in active else None,
                    blocked=d.blocked,
                )
                for d in aggregates.cube_definitions(s, batch.cube_id, buildable=True)
            ]
            return BatchContext(
                batch.id,
                batch.org_id,
                batch.cube_id,
                BatchType(batch.batch_type),
                states,
                pending,
                connections,
            )

    def _initial_sources(self, ctx: BatchContext) -> list[lattice.Candidate[Built]]:
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
    def _finish(
        self,
        ctx: BatchContext,
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
            aggregates.fail_unfinished_instances(s, batch_id, message)
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
                active_of(a) if (a := aggregates.active_instance(s, d.id)) else None,
                blocked=d.blocked,
            )
            for d in aggregates.cube_definitions(s, cube_id, buildable=True)
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
