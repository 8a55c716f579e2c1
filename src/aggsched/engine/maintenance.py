"""Aggregate maintenance: keep an organization's warehouse and history tidy for years.

AtScale runs this daily at 04:00 UTC; here each organization has its own Quartz schedule
(``aggregates.maintenance.schedule``, UTC) fired by the scheduler under its exactly-once
guarantee, and it can be run now (``aggsched maintenance run``, ``POST
/org/{orgId}/aggregates/maintenance``), also as a dry run that changes nothing.

A run is a list of items, each one function ``item(ctx) -> ItemResult`` in ``ITEMS``:

- ``health_check``: every active instance's table exists with the recorded row count; a
  missing or damaged one becomes ``invalid`` and its definition gets a ``pending``
  instance that the cube's next batch builds;
- ``stray_tables``: drops tables in the aggregate schemas named like ours (``as_agg_`` +
  8 hex + ``_``) that no instance owns, and nothing else;
- ``expired_tables``: drops the tables of replaced instances whose grace period is over
  (``builds.drop_expired_tables``, the same code every batch runs);
- ``history``: deletes executions and batches older than the retention settings,
  keeping each schedule's latest execution and each cube's newest batches.

Adding an item is one function here and one line in ``ITEMS``. A run is recorded as a
batch of type ``maintenance`` whose details say what each item did.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from aggsched import telemetry
from aggsched.engine.advisor import Advisor, advise_organization
from aggsched.engine.builds import WarehouseOpener, drop_expired_tables
from aggsched.engine.scheduler import next_fire_time
from aggsched.store import Store, aggregates, batches, catalog, org_settings, retention, utcnow
from aggsched.store import maintenance as records
from aggsched.store import queries as query_log
from aggsched.store.errors import ConflictError, StoreError
from aggsched.store.models import AggregateInstance, BatchStatus, BatchType
from aggsched.store.org_settings import SettingValue
from aggsched.warehouse import Warehouse, WarehouseError, open_warehouse, redact_url

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]

#: our table names: ``as_agg_`` + the first 8 hex digits of the instance id + ``_``
#: (``planning.naming``); matched exactly, never with LIKE, where ``_`` is a wildcard
AGGREGATE_TABLE = re.compile(r"as_agg_[0-9a-f]{8}_.*", re.DOTALL)
NOT_RUN = "not run: maintenance was cancelled or the node is stopping"
SCHEDULE_KEY = "aggregates.maintenance.schedule"
ENABLED_KEY = "aggregates.maintenance.enabled"
ADVISOR_SCHEDULE_KEY = "aggregates.system.advise.schedule"
ADVISOR_ENABLED_KEY = "aggregates.system.advise.enabled"


@dataclass
class ItemResult:
    """What one maintenance item did, or in a dry run would do."""

    name: str
    count: int = 0  # changes made (or that a dry run would make)
    actions: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # what could not be checked or done
    notes: list[str] = field(default_factory=list)  # what was looked at, what was skipped

    def did(self, action: str, count: int = 1) -> None:
        self.actions.append(action)
        self.count += count


class MaintenanceContext:
    """What an item needs: the store, the organization, the time, its settings, and the
    warehouses (opened once per run, closed at its end)."""

    def __init__(
        self,
        store: Store,
        org_id: str,
        now: datetime,
        *,
        dry_run: bool,
        opener: WarehouseOpener,
        settings: Mapping[str, SettingValue],
    ) -> None:
        self.store = store
        self.org_id = org_id
        self.now = now
        self.dry_run = dry_run
        self.opener = opener
        self.settings = settings
        self._open: dict[str, Warehouse] = {}

    def int_setting(self, key: str) -> int:
        value = self.settings[key]
        assert isinstance(value, int) and not isinstance(value, bool), key
        return value

    def warehouse(self, url: str) -> Warehouse:
        """The warehouse at ``url`` (``WarehouseError`` when it cannot be reached)."""
        if url not in self._open:
            self._open[url] = self.opener(url)
        return self._open[url]

    def close(self) -> None:
        for wh in self._open.values():
            with suppress(WarehouseError):
                wh.close()
        self._open.clear()


MaintenanceItem = Callable[[MaintenanceContext], ItemResult]


# --- items ------------------------------------------------------------------------------


def _tables_in(ctx: MaintenanceContext, url: str, schema: str) -> set[str]:
    """Our tables in one schema (names as the warehouse spells them)."""
    return {n for n in ctx.warehouse(url).list_tables(schema, "as_agg_")}


def check_active_instances(ctx: MaintenanceContext) -> ItemResult:
    """Each active instance's table must exist and hold the rows recorded when it was
    built; otherwise the instance is invalid and its definition is built again."""
    result = ItemResult("health_check")
    with ctx.store.session() as s:
        tables = records.active_tables(s, ctx.org_id)
        busy = records.busy_cubes(s, ctx.org_id)
        urls = {c.name: c.url for c in records.org_connections(s, ctx.org_id)}
    grace = timedelta(seconds=ctx.int_setting("aggregates.instance.drop.graceSeconds"))
    listed: dict[tuple[str, str], set[str]] = {}
    unreachable: set[str] = set()
    checked = 0
    for t in tables:
        where = f"{t.definition_name} ({t.schema}.{t.table})"
        if t.cube_id in busy:
            result.notes.append(f"{where}: not checked, its cube is building")
            continue
        url = urls.get(t.connection)
        if url is None:
            result.problems.append(f"{where}: connection {t.connection!r} is not mapped")
            continue
        if url in unreachable:
            continue
        try:
            key = (url, t.schema.lower())
            if key not in listed:
                listed[key] = {n.lower() for n in _tables_in(ctx, url, t.schema)}
            exists = t.table.lower() in listed[key]
            rows = ctx.warehouse(url).row_count(t.schema, t.table) if exists else None
        except WarehouseError as exc:
            result.problems.append(f"{where}: cannot check on {redact_url(url)}: {exc}")
            unreachable.add(url)
            continue
        checked += 1
        if exists and (t.rows is None or rows == t.rows):
            continue
        reason = (
            f"maintenance: table {t.schema}.{t.table} is missing"
            if not exists
            else f"maintenance: table {t.schema}.{t.table} has {rows} rows, {t.rows} recorded"
        )
        if ctx.dry_run:
            result.did(f"would invalidate {t.definition_name} ({reason}) and rebuild it")
            continue
        with ctx.store.session() as s:
            changed = records.invalidate_missing(
                s, t.instance_id, reason, table_exists=exists, drop_after=ctx.now + grace,
                now=ctx.now,
            )  # fmt: skip
        if changed is None:
            result.notes.append(f"{where}: changed meanwhile, left alone")
            continue
        result.did(
            f"invalidated {t.definition_name} instance {t.instance_id} ({reason}); a "
            "pending instance waits for the cube's next batch"
        )
    result.notes.insert(0, f"checked {checked} of {len(tables)} active instance(s)")
    return result


def repair_views(ctx: MaintenanceContext) -> ItemResult:
    """Each definition's stable view selects from its active table: a missing one is
    created, one pointing at another table is switched; a view of a definition with no
    active table (it would point nowhere) is dropped. Views aggsched did not make are
    never touched."""
    result = ItemResult("stable_views")
    with ctx.store.session() as s:
        wanted = records.view_targets(s, ctx.org_id)
        urls = {c.name: c.url for c in records.org_connections(s, ctx.org_id)}
    listed: dict[tuple[str, str], set[str]] = {}
    for v in wanted:
        url = urls.get(v.connection)
        schema = v.target_schema or v.view_schema
        if url is None or schema is None:
            continue
        try:
            key = (url, schema.lower())
            if key not in listed:
                listed[key] = {n.lower() for n in ctx.warehouse(url).list_views(schema)}
            exists = v.view_name.lower() in listed[key]
            wh = ctx.warehouse(url)
            if v.target_table is None:
                if not exists and v.view_table is None:
                    continue
                if ctx.dry_run:
                    result.did(f"would drop view {schema}.{v.view_name} (no active table)")
                    continue
                wh.drop_view(schema, v.view_name)
                with ctx.store.session() as s:
                    aggregates.set_view(s, v.definition_id, None, None)
                result.did(f"dropped view {schema}.{v.view_name}: no active table")
                continue
            if exists and v.view_table == v.target_table and v.view_schema == schema:
                continue
            if v.target_table.lower() not in {t.lower() for t in _tables_in(ctx, url, schema)}:
                result.notes.append(f"{v.view_name}: its table is missing (see health_check)")
                continue
            if ctx.dry_run:
                result.did(f"would point view {schema}.{v.view_name} at {v.target_table}")
                continue
            wh.replace_view(schema, v.view_name, v.target_table)
            with ctx.store.session() as s:
                aggregates.set_view(s, v.definition_id, schema, v.target_table)
            result.did(f"pointed view {schema}.{v.view_name} at {schema}.{v.target_table}")
        except WarehouseError as exc:
            result.problems.append(f"view {v.view_name} on {redact_url(url)}: {exc}")
    return result


def prune_query_log(ctx: MaintenanceContext) -> ItemResult:
    """Query-log rows older than `queries.retentionDays` (the advisor reads a window of
    days; hit counts come from what is kept)."""
    result = ItemResult("query_log")
    days = ctx.int_setting("queries.retentionDays")
    if days <= 0:
        return result
    older = timedelta(days=days)
    with ctx.store.session() as s:
        if ctx.dry_run:
            gone = query_log.count_older(s, ctx.org_id, ctx.now - older)
        else:
            gone = query_log.prune_queries(s, older, now=ctx.now, org_id=ctx.org_id)
    if gone:
        verb = "would delete" if ctx.dry_run else "deleted"
        result.did(f"{verb} {gone} logged quer(ies) older than {days} days", gone)
    return result


def drop_stray_tables(ctx: MaintenanceContext) -> ItemResult:
    """Tables named like aggregate tables that no instance (of any organization) owns:
    left by a crash between CREATE and the store write, or by a restored database."""
    result = ItemResult("stray_tables")
    with ctx.store.session() as s:
        schemas = records.aggregate_schemas(s, ctx.org_id)
        urls = {c.name: c.url for c in records.org_connections(s, ctx.org_id)}
    places = sorted({(urls[name], schema) for name, found in schemas.items() for schema in found})
    found: list[tuple[str, str, str]] = []
    for url, schema in places:
        try:
            names = _tables_in(ctx, url, schema)
        except WarehouseError as exc:
            result.problems.append(f"cannot list {schema} on {redact_url(url)}: {exc}")
            continue
        found += [(url, schema, n) for n in sorted(names) if AGGREGATE_TABLE.fullmatch(n)]
    # read the owners only after listing: a table created meanwhile is not in the list,
    # and every table in the list had its owner recorded before it was created
    with ctx.store.session() as s:
        owned = {
            (schema.lower(), table.lower())
            for schema, table in records.owned_tables(s, {schema for _, schema, _ in found})
        }
    result.notes.append(f"looked at {len(places)} aggregate schema(s)")
    for url, schema, table in found:
        if (schema.lower(), table.lower()) in owned:
            continue
        if ctx.dry_run:
            result.did(f"would drop stray table {schema}.{table} on {redact_url(url)}")
            continue
        try:
            ctx.warehouse(url).drop_table(schema, table)
        except WarehouseError as exc:
            result.problems.append(f"cannot drop {schema}.{table}: {exc}")
            continue
        result.did(f"dropped stray table {schema}.{table} on {redact_url(url)}")
    return result


def drop_expired(ctx: MaintenanceContext) -> ItemResult:
    """Tables of replaced, failed and invalid instances whose grace period is over, by the
    same function every batch calls (it handles every organization's due tables)."""
    result = ItemResult("expired_tables")
    with ctx.store.session() as s:
        due = {
            i.id: f"{i.table_schema}.{i.table_name}"
            for i in aggregates.instances_to_drop(s, limit=500)
        }
    if ctx.dry_run:
        for name in due.values():
            result.did(f"would drop expired table {name}")
        return result
    drop_expired_tables(ctx.store, ctx.opener)
    with ctx.store.session() as s:
        for instance_id, name in due.items():
            instance = s.get(AggregateInstance, instance_id)
            if instance is not None and instance.table_dropped_at is not None:
                result.did(f"dropped expired table {name}")
            else:
                result.problems.append(f"expired table {name} not dropped (unreachable?)")
    return result


def prune_history(ctx: MaintenanceContext) -> ItemResult:
    """Executions and batches past their retention; each schedule's latest execution and
    each cube's newest batches stay whatever their age."""
    result = ItemResult("history")
    batch_days = ctx.int_setting("aggregates.maintenance.batchRetentionDays")
    keep = ctx.int_setting("aggregates.maintenance.batchesKeptPerCube")
    execution_days = ctx.int_setting("aggregates.maintenance.executionRetentionDays")
    verb = "would delete" if ctx.dry_run else "deleted"
    if execution_days:
        before = ctx.now - timedelta(days=execution_days)
        with ctx.store.session() as s:
            ids = retention.prunable_executions(s, ctx.org_id, before)
        gone = len(ids) if ctx.dry_run else _in_chunks(ctx, ids, retention.delete_executions)
        if gone:
            result.did(f"{verb} {gone} execution(s) older than {execution_days} days", gone)
    if batch_days:
        before = ctx.now - timedelta(days=batch_days)
        with ctx.store.session() as s:
            ids = retention.prunable_batches(s, ctx.org_id, before, keep)
        gone = len(ids) if ctx.dry_run else _in_chunks(ctx, ids, retention.delete_batches)
        if gone:
            result.did(
                f"{verb} {gone} batch(es) older than {batch_days} days (each cube keeps its "
                f"newest {keep})",
                gone,
            )
    return result


def _in_chunks(
    ctx: MaintenanceContext,
    ids: Sequence[uuid.UUID],
    delete: Callable[[Session, Sequence[uuid.UUID]], int],
) -> int:
    deleted = 0
    for start in range(0, len(ids), retention.CHUNK):
        with ctx.store.session() as s:
            deleted += delete(s, ids[start : start + retention.CHUNK])
    return deleted


#: the maintenance items, in the order they run (one function each; see the docstring)
ITEMS: tuple[tuple[str, MaintenanceItem], ...] = (
    ("health_check", check_active_instances),
    ("stable_views", repair_views),
    ("stray_tables", drop_stray_tables),
    ("expired_tables", drop_expired),
    ("history", prune_history),
    ("query_log", prune_query_log),
)


# --- one run -----------------------------------------------------------------------------


@dataclass
class MaintenanceReport:
    org_id: str
    dry_run: bool
    status: BatchStatus
    message: str
    items: list[ItemResult]
    batch_id: uuid.UUID | None = None

    def details(self) -> dict[str, Any]:
        """What the run did, as stored with its batch."""
        return {"dry_run": self.dry_run, "items": [asdict(item) for item in self.items]}


def _summary(items: Sequence[ItemResult]) -> str:
    parts = []
    for item in items:
        text = f"{item.name}: {item.count} change(s)"
        if item.problems:
            text += f", {len(item.problems)} problem(s): " + "; ".join(item.problems[:3])
        parts.append(text)
    return "; ".join(parts)


class _Heartbeat:
    """Keeps a recorded run's heartbeat fresh (so recovery leaves it alone) and notices a
    cancel request."""

    def __init__(self, store: Store, batch_id: uuid.UUID, worker_id: str, seconds: float):
        self.cancelled = threading.Event()
        self._stop = threading.Event()

        def beat() -> None:
            while not self._stop.wait(seconds):
                try:
                    with store.session() as s:
                        batch = batches.heartbeat_batch(s, batch_id, worker_id)
                        if batch is None or batch.cancel_requested:
                            self.cancelled.set()
                except StoreError:
                    continue

        self._thread = threading.Thread(target=beat, name=f"maintenance-{batch_id}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def _default_opener(env: Mapping[str, str] | None) -> WarehouseOpener:
    environ = os.environ if env is None else env
    return lambda url: open_warehouse(url, environ)


def run_maintenance(
    store: Store,
    org_id: str,
    *,
    dry_run: bool = False,
    clock: Clock = utcnow,
    opener: WarehouseOpener | None = None,
    env: Mapping[str, str] | None = None,
    worker_id: str = "",
    requested_by: str = "",
    batch_id: uuid.UUID | None = None,
    heartbeat_seconds: float = 2.0,
    items: Sequence[tuple[str, MaintenanceItem]] = ITEMS,
    stop: threading.Event | None = None,
) -> MaintenanceReport:
    """Run every maintenance item for one organization, now.

    A real run is recorded as a ``maintenance`` batch (``batch_id``: one the scheduler
    already started; otherwise one is started here, ``ConflictError`` while another run of
    the organization is in progress). A dry run records nothing and changes nothing. An
    item that breaks is reported and the next one still runs.
    """
    worker = worker_id or f"maintenance-{uuid.uuid4().hex[:8]}"
    now = clock()
    with store.session() as s:
        catalog.get_org(s, org_id)
        settings = org_settings.all_settings(s, org_id)
        if not dry_run and batch_id is None:
            batch_id = records.start_run(
                s, org_id, worker_id=worker, requested_by=requested_by, now=now
            ).id
    ctx = MaintenanceContext(store, org_id, now, dry_run=dry_run,
                             opener=opener or _default_opener(env), settings=settings)  # fmt: skip
    beat = _Heartbeat(store, batch_id, worker, heartbeat_seconds) if batch_id else None
    results: list[ItemResult] = []
    with telemetry.log_context(org_id=org_id, batch_id=batch_id), \
            telemetry.observe_batch(batch_id) as observed:  # fmt: skip
        try:
            for name, item in items:
                if (beat and beat.cancelled.is_set()) or (stop and stop.is_set()):
                    results.append(ItemResult(name, problems=[NOT_RUN]))
                    continue
                try:
                    with telemetry.log_context(maintenance_item=name):
                        result = item(ctx)
                except Exception as exc:
                    log.exception("maintenance item %s failed", name)
                    result = ItemResult(name, problems=[f"failed: {exc}"])
                if not dry_run:
                    telemetry.maintenance_actions(name, result.count)
                results.append(result)
        finally:
            ctx.close()
            if beat:
                beat.stop()
        stopped = (beat is not None and beat.cancelled.is_set()) or (
            stop is not None and stop.is_set()
        )
        status = BatchStatus.FAILED if any(r.problems for r in results) else BatchStatus.DONE
        if stopped and any(r.problems == [NOT_RUN] for r in results):
            status = BatchStatus.CANCELLED
        report = MaintenanceReport(org_id, dry_run, status, _summary(results), results, batch_id)
        if batch_id is not None:
            _record(store, report, worker)
            observed.finished(BatchType.MAINTENANCE.value, status.value)
        log.info("maintenance %s: %s", "dry run" if dry_run else status.value, report.message)
    return report


def _record(store: Store, report: MaintenanceReport, worker: str) -> None:
    assert report.batch_id is not None
    try:
        with store.session() as s:
            records.finish_run(s, report.batch_id, report.status, worker_id=worker,
                               message=report.message, details=report.details())  # fmt: skip
    except ConflictError as lost:  # recovery closed it meanwhile (this node looked dead)
        log.warning("maintenance run %s not recorded: %s", report.batch_id, lost)


# --- firing on each organization's schedule ----------------------------------------------


#: the organization's upkeep jobs: job -> (enabled setting, schedule setting)
JOBS = {
    "maintenance": (ENABLED_KEY, SCHEDULE_KEY),
    "advisor": (ADVISOR_ENABLED_KEY, ADVISOR_SCHEDULE_KEY),
}


def sync_schedules(session: Session, now: datetime) -> None:
    """Give every organization a schedule row per job matching its settings; a changed
    expression (or a job switched on again) fires next from ``now``."""
    rows = records.schedule_rows(session)
    for org in catalog.list_orgs(session):
        for job, (enabled_key, schedule_key) in JOBS.items():
            try:
                enabled = org_settings.get_bool_setting(session, org.id, enabled_key)
                expression = org_settings.get_str_setting(session, org.id, schedule_key)
            except StoreError as exc:  # a value stored behind the settings' back
                log.error("%s of %s not scheduled: %s", job, org.id, exc)
                continue
            wanted = expression if enabled else ""
            row = rows.get((org.id, job))
            if row is not None and row.time_expression == wanted:
                continue
            upcoming = next_fire_time(expression, "UTC", now) if enabled else None
            records.set_schedule(session, org.id, wanted, upcoming, row, job=job)


@dataclass(frozen=True)
class MaintenanceFire:
    org_id: str
    batch_id: uuid.UUID
    scheduled_fire_time: datetime
    next_fire_at: datetime | None


class MaintenanceScheduler:
    """Fires each organization's maintenance when due; called from the scheduler's tick,
    so it runs only where schedules fire (under the SQLite lease; with row locks that
    other nodes skip on PostgreSQL): one node per fire. Runs happen on threads of their
    own, so a long maintenance never delays schedule fires."""

    def __init__(
        self,
        store: Store,
        *,
        node_id: str,
        opener: WarehouseOpener | None = None,
        clock: Clock = utcnow,
        heartbeat_seconds: float = 2.0,
        sync_every: timedelta = timedelta(seconds=5),
    ) -> None:
        self.store = store
        self.worker_id = f"{node_id}/maintenance"
        self.opener = opener
        self.clock = clock
        self.heartbeat_seconds = heartbeat_seconds
        self.sync_every = sync_every
        self.min_interval = timedelta(seconds=1)
        self._synced_at: datetime | None = None
        self._ticked_at: datetime | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.reports: list[MaintenanceReport] = []  # the runs this node made (newest last)

    def tick(self, now: datetime | None = None) -> list[MaintenanceFire]:
        """Fire (start, in the background) every maintenance due at ``now``."""
        when = now or self.clock()
        if self._stop.is_set():
            return []
        last = self._ticked_at
        if last is not None and last <= when < last + self.min_interval:
            return []  # the scheduler may tick many times a second; due work waits ≤ 1 s
        self._ticked_at = when
        synced = self._synced_at
        if synced is None or when < synced or when - synced >= self.sync_every:
            with self.store.session() as s:
                sync_schedules(s, when)
            self._synced_at = when
        with self.store.session() as s:
            fires = [f for row in records.claim_due(s, when) if (f := self._fire(s, row, when))]
        for fire in fires:
            self._start(fire)
        return fires

    def _fire(
        self, session: Session, row: records.MaintenanceSchedule, now: datetime
    ) -> MaintenanceFire | None:
        due = row.next_fire_at
        assert due is not None
        upcoming = next_fire_time(row.time_expression, "UTC", max(due, now))
        records.set_schedule(session, row.org_id, row.time_expression, upcoming, row, job=row.job)
        if row.job == "advisor":
            self._start_advisor(row.org_id, row.time_expression)
            return None
        try:
            with session.begin_nested():
                batch = records.start_run(session, row.org_id, worker_id=self.worker_id,
                                          requested_by=f"maintenance schedule "
                                          f"{row.time_expression!r} (UTC)", now=now)  # fmt: skip
        except (ConflictError, StoreError) as exc:
            log.warning("maintenance of %s due %s not fired: %s", row.org_id, due, exc)
            return None
        return MaintenanceFire(row.org_id, batch.id, due, upcoming)

    def _start(self, fire: MaintenanceFire) -> None:
        def run() -> None:
            try:
                report = run_maintenance(
                    self.store, fire.org_id, clock=self.clock, opener=self.opener,
                    worker_id=self.worker_id, batch_id=fire.batch_id,
                    heartbeat_seconds=self.heartbeat_seconds, stop=self._stop,
                )  # fmt: skip
                self.reports.append(report)
            except Exception:
                log.exception("maintenance of %s broke", fire.org_id)
                with suppress(Exception), self.store.session() as s:
                    batches.finish_batch(
                        s, fire.batch_id, BatchStatus.FAILED, message="maintenance broke; see log"
                    )

        self._threads = [t for t in self._threads if t.is_alive()]
        thread = threading.Thread(target=run, name=f"maintenance-{fire.org_id}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def _start_advisor(self, org_id: str, expression: str) -> None:
        """The advisor on each of the organization's cubes that has queries, applied (its
        runs are recorded as `advisor` batches)."""

        def run() -> None:
            advisor = Advisor(self.store, opener=self.opener, clock=self.clock)
            try:
                advise_organization(
                    advisor, org_id, requested_by=f"advisor schedule {expression!r} (UTC)",
                    stop=self._stop,
                )  # fmt: skip
            except Exception:
                log.exception("the advisor of %s broke", org_id)

        self._threads = [t for t in self._threads if t.is_alive()]
        thread = threading.Thread(target=run, name=f"advisor-{org_id}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def wait(self, timeout: float | None = None) -> None:
        """Wait for the runs this node started (tests, shutdown)."""
        for thread in list(self._threads):
            thread.join(timeout)

    def start(self) -> None:
        """Fire again (after a ``stop``)."""
        self._stop.clear()

    def request_stop(self) -> None:
        """Running maintenance stops after its current item; nothing new fires."""
        self._stop.set()

    def stop(self, grace: float = 30.0) -> None:
        """``request_stop``, then wait up to ``grace`` seconds for the runs to end."""
        self.request_stop()
        self.wait(grace)


__all__ = [
    "AGGREGATE_TABLE",
    "ITEMS",
    "ItemResult",
    "MaintenanceContext",
    "MaintenanceReport",
    "MaintenanceScheduler",
    "run_maintenance",
    "sync_schedules",
]
