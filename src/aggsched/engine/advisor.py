"""Demand-defined aggregates: learn aggregates from the query log, build them, retire them.

`advise_cube` reads a cube's query log for the lookback window (each logged part of a
query is a grain: its fact, the attributes it grouped or filtered by, the partials its
metrics needed), weighs each grain by how often it ran and how long it took from the base
tables, proposes candidates (the grains and merges of them, `planning.advisor`), sizes
them in the warehouse (`planning.estimate`, cached per cube until the next load), and
chooses under the organization's budgets with the existing aggregates counted as already
chosen (`planning.viewselect`). With `apply` it creates the picks as system-defined,
demand-defined definitions (pending, built by the cube's next batch or one queued now)
and retires demand-defined aggregates nobody queried for `dropAfterDays`. User-defined
aggregates are never created, changed or retired; blocked ones stay blocked.
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import time
import uuid
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from aggsched.engine.builds import target_for
from aggsched.engine.publish import LIVE_STATUSES
from aggsched.engine.queueing import queue_batch
from aggsched.planning import advisor as selection
from aggsched.planning import estimate, sqlgen
from aggsched.planning.cube import CubeSpec, SpecError, grain_spec
from aggsched.planning.naming import sanitize
from aggsched.planning.partials import ROLLUP
from aggsched.planning.plan import BatchType
from aggsched.planning.spec import DefinitionSpec
from aggsched.store import Store, aggregates, batches, catalog, org_settings, utcnow
from aggsched.store import advisor as records
from aggsched.store import queries as query_log
from aggsched.store.models import (
    BatchStatus,
    Connection,
    Cube,
    DefinitionSubtype,
    DefinitionType,
    InstanceStatus,
)
from aggsched.warehouse import Warehouse, open_warehouse

Opener = Callable[[str], Warehouse]
Identity = tuple[str, tuple[str, ...]]
ESTIMATE_TTL = timedelta(days=1)
BATCH = 40  # grains sized by one scan


@dataclass(frozen=True)
class AdvisorOptions:
    """The organization's budgets and windows (`aggregates.system.*` settings)."""

    lookback: timedelta = timedelta(days=7)
    max_rows: float | None = None  # None: a quarter of the largest queried fact's rows
    max_per_cube: int = 20
    min_benefit: float = 0.0
    drop_after: timedelta = timedelta(days=14)

    @classmethod
    def load(cls, session: Session, org_id: str) -> AdvisorOptions:
        def get(key: str) -> int:
            return org_settings.get_int_setting(session, org_id, f"aggregates.system.{key}")

        max_rows = get("maxRows")
        return cls(
            lookback=timedelta(days=get("lookbackDays")),
            max_rows=float(max_rows) if max_rows > 0 else None,
            max_per_cube=get("maxPerCube"),
            min_benefit=float(get("minBenefit")),
            drop_after=timedelta(days=get("dropAfterDays")),
        )


@dataclass
class Proposal:
    """A new aggregate the advisor chose: its grain, estimated rows and benefit, and the
    logged queries that justified it."""

    name: str
    fact: str
    attributes: list[Identity]
    metrics: list[str]
    rows: float
    benefit: float
    queries: list[str]
    spec: DefinitionSpec = field(repr=False)
    definition_id: uuid.UUID | None = None


@dataclass
class AdvisorReport:
    cube_id: uuid.UUID
    applied: bool
    proposals: list[Proposal] = field(default_factory=list)
    retired: list[tuple[str, str]] = field(default_factory=list)  # (name, why)
    kept: list[str] = field(default_factory=list)
    queries: int = 0
    grains: int = 0
    candidates: int = 0
    method: str = ""
    guarantee: float = 1.0
    base_cost: float = 0.0
    cost_before: float = 0.0
    cost_after: float = 0.0
    max_rows: float | None = None
    seconds: float = 0.0
    queued_batch: uuid.UUID | None = None
    message: str = ""


# --- demand -------------------------------------------------------------------------


def _grain(part: Mapping[str, Any]) -> selection.Grain:
    attrs = frozenset((a[0], tuple(a[1])) for a in part["attributes"])
    keys = [tuple(p) for p in part["partials"]]
    return selection.Grain(
        part["fact"],
        attrs,
        frozenset(k for k in keys if k[0] in ROLLUP),
        frozenset(k for k in keys if k[0] not in ROLLUP),
    )


@dataclass
class _Demand:
    queries: list[selection.Query] = field(default_factory=list)
    metrics: dict[selection.Grain, set[str]] = field(default_factory=dict)


def demand_of(logs: Sequence[Any]) -> _Demand:
    """Logged queries -> weighted grains. A grain's weight is how often it ran times what it
    cost from the base tables: its own base-served runs' mean time when it has some, else
    the mean of its fact's base-served runs, else 1 ms."""
    parts: list[tuple[str, selection.Grain, float | None]] = []
    demand = _Demand()
    for log in logs:
        found = log.grain.get("parts", [])
        for i, part in enumerate(found):
            grain = _grain(part)
            demand.metrics.setdefault(grain, set()).update(part.get("metrics", []))
            base_ms = log.duration_ms / len(found) if log.served_by == "base" else None
            parts.append((f"{log.id}:{i}", grain, base_ms))
    by_grain: dict[selection.Grain, list[float]] = {}
    by_fact: dict[Hashable, list[float]] = {}
    for _, grain, ms in parts:
        if ms is not None:
            by_grain.setdefault(grain, []).append(ms)
            by_fact.setdefault(grain.fact, []).append(ms)
    for qid, grain, _ in parts:
        cost = by_grain.get(grain) or by_fact.get(grain.fact) or [1.0]
        demand.queries.append(selection.Query(qid, grain, max(statistics.fmean(cost), 1e-3)))
    return demand


def spec_grains(spec: DefinitionSpec) -> list[selection.Grain]:
    """An aggregate's grain per fact (a multi-fact one has one per fact)."""
    found = []
    for part in spec.components():
        keys = [(p, m.alias, m.column, "") for m in part.metrics for p in _partials(m.method)]
        computed = {k for k in (part.fact.computed or {})}
        keys = [_with_sql(k, part) if k[2] in computed else k for k in keys]
        attrs = frozenset((a.name, tuple(a.path)) for a in part.attributes)
        found.append(
            selection.Grain(
                part.fact.dataset,
                attrs,
                frozenset(k for k in keys if k[0] in ROLLUP),
                frozenset(k for k in keys if k[0] not in ROLLUP),
            )
        )
    return found


def _partials(method: str) -> tuple[str, ...]:
    from aggsched.planning.partials import partials_of

    return partials_of(method)


def _with_sql(key: tuple[str, str, str, str], spec: DefinitionSpec) -> tuple[str, ...]:
    from aggsched.planning.partials import partial_key
    from aggsched.planning.spec import Metric

    return partial_key(spec, Metric("", "sum", key[1], key[2]), key[0])


# --- the run ------------------------------------------------------------------------


class Advisor:
    """Runs the advisor on cubes of one store (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        *,
        opener: Opener | None = None,
        env: Mapping[str, str] | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        environ = os.environ if env is None else env
        self.opener: Opener = opener or (lambda url: open_warehouse(url, environ))
        self.clock = clock

    def advise(
        self,
        org_id: str,
        cube_id: uuid.UUID,
        *,
        apply: bool = False,
        requested_by: str = "",
        options: AdvisorOptions | None = None,
    ) -> AdvisorReport:
        started = time.monotonic()
        now = self.clock()
        report = AdvisorReport(cube_id, apply)
        with self.store.session() as s:
            cube = catalog.get_cube_by_id(s, org_id, cube_id)
            if not cube.query_spec:
                report.message = "the cube was published before queries existed; republish it"
                return report
            spec = CubeSpec.from_json(cube.query_spec)
            opts = options or AdvisorOptions.load(s, org_id)
            logs = query_log.cube_queries(s, cube_id, now - opts.lookback)
            existing = _existing(s, cube)
            connections = {c.name: c for c in catalog.list_connections(s, org_id)}
            retired = _retire(s, cube, opts, now, apply)
            loaded_at = records.last_load(s, cube_id)
            s.expunge_all()
        report.retired = retired
        demand = demand_of(logs)
        report.queries = len(logs)
        report.grains = len({q.grain for q in demand.queries})
        if not demand.queries:
            report.message = f"no queries in the last {opts.lookback.days} day(s)"
            report.seconds = time.monotonic() - started
            return report
        sizer = _Sizer(self, spec, cube, connections, loaded_at, now)
        new = selection.generate_candidates(demand.queries, [g for g, _, _ in existing])
        candidates = [selection.Candidate(g, max(1.0, rows), key) for g, rows, key in existing]
        specs: dict[selection.Grain, DefinitionSpec] = {}
        for grain in new:
            try:
                specs[grain] = _candidate_spec(spec, grain, demand)
            except SpecError:
                continue  # logged against an older model: the grain no longer resolves
        sizes = sizer.rows_many(list(specs.values()))
        candidates += [
            selection.Candidate(grain, rows) for grain, rows in zip(specs, sizes, strict=True)
        ]
        facts = {q.grain.fact for q in demand.queries}
        fact_rows = {f: sizer.fact_rows(str(f)) for f in facts}
        max_rows = opts.max_rows if opts.max_rows is not None else max(fact_rows.values()) / 4
        report.max_rows = max_rows
        budget = selection.Budget(max_rows, opts.max_per_cube, opts.min_benefit)
        advice = selection.advise(demand.queries, candidates, fact_rows, budget)
        report.candidates = len(candidates)
        report.method, report.guarantee = advice.method, advice.guarantee
        report.base_cost, report.cost_before = advice.base_cost, advice.cost_before
        report.cost_after = advice.cost_after
        for pick in advice.picks:
            grain = pick.candidate.grain
            if pick.candidate.existing is not None or grain not in specs:
                continue
            report.proposals.append(
                Proposal(
                    name=specs[grain].name,
                    fact=str(grain.fact),
                    attributes=sorted(grain.attributes),
                    metrics=_metrics_for(grain, demand),
                    rows=pick.candidate.rows,
                    benefit=pick.benefit,
                    queries=[str(q) for q in pick.justified_by],
                    spec=specs[grain],
                )
            )
        report.kept = [str(c.existing) for c in candidates if c.existing is not None]
        if apply:
            report.queued_batch = self._apply(org_id, cube_id, report, requested_by)
        report.seconds = time.monotonic() - started
        report.message = _summary(report)
        return report

    def advise_and_record(
        self,
        org_id: str,
        cube_id: uuid.UUID,
        *,
        apply: bool,
        requested_by: str = "",
        options: AdvisorOptions | None = None,
    ) -> tuple[AdvisorReport, uuid.UUID]:
        """`advise`, recorded in the cube's history as an `advisor` batch whose details say
        what it proposed, created and retired (a failed run is recorded as failed)."""
        started = self.clock()
        try:
            report = self.advise(
                org_id, cube_id, apply=apply, requested_by=requested_by, options=options
            )
            status, details = BatchStatus.DONE, report_json(report)
        except Exception as exc:
            report, status = None, BatchStatus.FAILED
            details = {"error": str(exc)}
        with self.store.session() as s:
            cube = catalog.get_cube_by_id(s, org_id, cube_id)
            message = report.message if report else f"the advisor failed: {details['error']}"
            batch = batches.record_run(
                s, cube, BatchType.ADVISOR, status=status, started=started, ended=self.clock(),
                message=message, details=details, requested_by=requested_by,
            )  # fmt: skip
        if report is None:
            raise AdvisorFailed(message, batch.id)
        return report, batch.id

    def _apply(
        self, org_id: str, cube_id: uuid.UUID, report: AdvisorReport, requested_by: str
    ) -> uuid.UUID | None:
        with self.store.session() as s:
            cube = catalog.get_cube_by_id(s, org_id, cube_id)
            for proposal in report.proposals:
                definition = aggregates.upsert_definition(
                    s, cube, unique_name=proposal.name, name=proposal.name,
                    type=DefinitionType.SYSTEM_DEFINED, subtype=DefinitionSubtype.DEMAND_DEFINED,
                    fingerprint=proposal.spec.fingerprint(), spec=proposal.spec.to_dict(),
                    fact_dataset=proposal.fact, connection_id=proposal.spec.connection,
                    incremental=proposal.spec.incremental is not None,
                )  # fmt: skip
                definition.justification = {
                    "queries": proposal.queries[:100], "query_count": len(proposal.queries),
                    "benefit": proposal.benefit, "estimated_rows": proposal.rows,
                    "advised_at": self.clock().isoformat(),
                }  # fmt: skip
                aggregates.assign_view_name(s, definition)
                if not aggregates.definition_instances(s, definition.id, [InstanceStatus.PENDING]):
                    aggregates.create_instance(s, definition)
                proposal.definition_id = definition.id
            scheduled = org_settings.get_bool_setting(s, org_id, "aggregates.new.build.scheduled")
            if report.proposals and not scheduled:
                return queue_batch(
                    s, cube, BatchType.MATERIALIZE_PENDING, requested_by=requested_by or "advisor"
                ).batch.id
        return None


class AdvisorFailed(Exception):
    """The advisor run failed (recorded as a failed `advisor` batch)."""

    def __init__(self, message: str, batch_id: uuid.UUID) -> None:
        super().__init__(message)
        self.batch_id = batch_id


def advise_organization(
    advisor: Advisor,
    org_id: str,
    *,
    requested_by: str = "advisor",
    stop: Any = None,
) -> list[uuid.UUID]:
    """Apply the advisor to every live cube of the organization that has queries in its
    lookback window (or demand-defined aggregates to retire); returns the run batches."""
    with advisor.store.session() as s:
        opts = AdvisorOptions.load(s, org_id)
        since = advisor.clock() - opts.lookback
        cubes = [
            c.id
            for p in catalog.list_projects(s, org_id)
            for c in catalog.list_cubes(s, p.id)
            if query_log.cube_queries(s, c.id, since, limit=1)
            or records.demand_definitions(s, c.id)
        ]
    runs = []
    for cube_id in cubes:
        if stop is not None and stop.is_set():
            break
        try:
            runs.append(advisor.advise_and_record(
                org_id, cube_id, apply=True, requested_by=requested_by, options=opts
            )[1])  # fmt: skip
        except AdvisorFailed as exc:
            runs.append(exc.batch_id)
    return runs


def _existing(s: Session, cube: Cube) -> list[tuple[selection.Grain, float, str]]:
    """Every buildable definition with a table (or one on its way): its grains, rows and
    id — already chosen, whatever their type."""
    found = []
    for d in aggregates.cube_definitions(s, cube.id, buildable=True):
        if d.blocked:
            continue
        live = aggregates.definition_instances(s, d.id, LIVE_STATUSES)
        if not live:
            continue
        rows = max((i.number_of_rows or 0) for i in live) or 1
        spec = DefinitionSpec.from_dict(d.spec)
        for i, grain in enumerate(spec_grains(spec)):
            found.append((grain, float(rows), f"{d.unique_name}#{i}"))
    return found


def _retire(
    s: Session, cube: Cube, opts: AdvisorOptions, now: datetime, apply: bool
) -> list[tuple[str, str]]:
    """Demand-defined aggregates with no hit for `drop_after` (and at least that old)
    become invalid; their tables go after the grace period. Blocked ones stay as they are."""
    doomed = []
    definitions = [d for d in records.demand_definitions(s, cube.id) if not d.blocked]
    hits = query_log.definition_hits(s, [d.id for d in definitions])
    for d in definitions:
        last = hits[d.id].last_hit if d.id in hits else None
        since = max(x for x in (last, d.created_at) if x is not None)
        if now - since < opts.drop_after:
            continue
        why = (
            f"no query used it for {opts.drop_after.days} day(s) (aggregates.system.dropAfterDays)"
        )
        doomed.append((d.unique_name, why))
        if apply:
            grace = org_settings.get_int_setting(
                s, cube.org_id, "aggregates.instance.drop.graceSeconds"
            )
            for instance in aggregates.definition_instances(s, d.id, LIVE_STATUSES):
                aggregates.set_instance_status(
                    s, instance.id, InstanceStatus.INVALID, message=f"retired: {why}",
                    drop_after=now + timedelta(seconds=max(0, grace)),
                )  # fmt: skip
            aggregates.mark_definition_removed(s, d, now)
    return doomed


def _metrics_for(grain: selection.Grain, demand: _Demand) -> list[str]:
    """The logged metrics whose partials the grain stores (a merge holds its parts')."""
    names: set[str] = set()
    for g, metrics in demand.metrics.items():
        fits = g.partials <= grain.partials and g.exact_partials <= grain.exact_partials
        if g.fact == grain.fact and fits:
            names |= metrics
    return sorted(names)


def _candidate_spec(cube: CubeSpec, grain: selection.Grain, demand: _Demand) -> DefinitionSpec:
    attrs = sorted(grain.attributes)  # type: ignore[type-var]
    stem = "_".join(sanitize(a[0]) for a in attrs) or "all"
    digest = hashlib.sha1(repr(grain.sort_key).encode()).hexdigest()[:6]
    name = f"demand_{sanitize(str(grain.fact))}_{stem}"[:48] + f"_{digest}"
    return grain_spec(cube, name, str(grain.fact), attrs, _metrics_for(grain, demand))


def _summary(report: AdvisorReport) -> str:
    verb = "created" if report.applied else "proposed"
    parts = [
        f"{report.queries} logged queries, {report.grains} grains, "
        f"{report.candidates} candidates; {verb} {len(report.proposals)} aggregate(s)"
    ]
    if report.retired:
        parts.append(f"{'retired' if report.applied else 'would retire'} {len(report.retired)}")
    if report.cost_before:
        parts.append(f"workload cost {report.cost_after / report.cost_before:.3f} of before")
    return "; ".join(parts)


class _Sizer:
    """Row estimates of candidate grains and facts, cached per cube until the next load."""

    def __init__(
        self,
        advisor: Advisor,
        cube_spec: CubeSpec,
        cube: Cube,
        connections: Mapping[str, Connection],
        loaded_at: datetime | None,
        now: datetime,
    ) -> None:
        self.advisor, self.cube_spec, self.cube = advisor, cube_spec, cube
        self.connections = connections
        self.fresh_after = max(x for x in (loaded_at, now - ESTIMATE_TTL) if x is not None)
        self.now = now
        self._warehouses: dict[str, Warehouse] = {}
        self._facts: dict[str, float] = {}

    def _target(self, spec: DefinitionSpec) -> tuple[Warehouse, sqlgen.Target]:
        url = self.connections[spec.fact.connection].url
        if url not in self._warehouses:
            self._warehouses[url] = self.advisor.opener(url)
        return self._warehouses[url], target_for(url, self.connections)

    def _cached(self, key: str, measure: Callable[[], float]) -> float:
        with self.advisor.store.session() as s:
            known = records.estimates(s, self.cube.id, [key]).get(key)
        if known is not None and known[1] >= self.fresh_after:
            return known[0]
        rows = measure()
        with self.advisor.store.session() as s:
            records.save_estimate(s, self.cube.id, key, rows, self.now)
        return rows

    def fact_rows(self, fact: str) -> float:
        if fact not in self._facts:
            spec = DefinitionSpec("fact", "fact", self.cube_spec.relations[fact])
            self._facts[fact] = self._cached(f"fact:{fact}", lambda: self._count(spec))
        return self._facts[fact]

    def _count(self, spec: DefinitionSpec) -> float:
        wh, target = self._target(spec)
        select = exp_count(spec, target)
        row = wh.fetch_one(sqlgen.render(select, target.dialect))
        return float(max(1, row[0] if row else 1))

    @staticmethod
    def _key(spec: DefinitionSpec) -> str:
        return "grain:" + hashlib.sha256(spec.fingerprint().encode()).hexdigest()[:40]

    def rows(self, spec: DefinitionSpec) -> float:
        return self.rows_many([spec])[0]

    def rows_many(self, specs: Sequence[DefinitionSpec]) -> list[float]:
        """Estimated rows of each spec: cached ones as they are, the others measured — one
        pass over each fact for all of its grains where the engine counts distinct values
        approximately, else a sample per grain."""
        keys = [self._key(s) for s in specs]
        with self.advisor.store.session() as session:
            known = records.estimates(session, self.cube.id, keys)
        found = {k: v[0] for k, v in known.items() if v[1] >= self.fresh_after}
        todo = [s for s, k in zip(specs, keys, strict=True) if k not in found]
        by_fact: dict[str, list[DefinitionSpec]] = {}
        for spec in todo:
            by_fact.setdefault(spec.fact.dataset, []).append(spec)
        for group in by_fact.values():
            for start in range(0, len(group), BATCH):
                chunk = group[start : start + BATCH]
                for spec, rows in zip(chunk, self._measure(chunk), strict=True):
                    found[self._key(spec)] = rows
        with self.advisor.store.session() as session:
            for spec in todo:
                records.save_estimate(
                    session, self.cube.id, self._key(spec), found[self._key(spec)], self.now
                )
        return [found[k] for k in keys]

    def _measure(self, specs: Sequence[DefinitionSpec]) -> list[float]:
        wh, target = self._target(specs[0])
        fact_rows = self.fact_rows(specs[0].fact.dataset)
        if target.dialect not in estimate.APPROX_DIALECTS:
            return [self._estimate(spec) for spec in specs]
        percent = estimate.approx_sample_percent(fact_rows)
        found = self._approx(wh, target, specs, percent)
        again = [i for i, (rows, read) in enumerate(found)
                 if not estimate.settled(rows, read, percent)]  # fmt: skip
        if again:  # too many values to trust the sample: count those over the whole fact
            whole = self._approx(wh, target, [specs[i] for i in again], 100.0)
            for i, counted in zip(again, whole, strict=True):
                found[i] = counted
        return [float(min(max(1.0, rows), fact_rows)) for rows, _ in found]

    @staticmethod
    def _approx(
        wh: Warehouse, target: sqlgen.Target, specs: Sequence[DefinitionSpec], percent: float
    ) -> list[tuple[float, float]]:
        """(approximate distinct grain values, rows read) of each spec, in one pass."""
        select = estimate.approx_distinct_many(specs, target, percent)
        read, *counts = wh.fetch_one(sqlgen.render(select, target.dialect)) or (0,)
        return [(float(c or 1), float(read or 0)) for c in counts]

    def _estimate(self, spec: DefinitionSpec) -> float:
        wh, target = self._target(spec)
        fact_rows = self.fact_rows(spec.fact.dataset)
        if target.dialect in estimate.APPROX_DIALECTS:
            select = estimate.approx_distinct_select(spec, target)
            row = wh.fetch_one(sqlgen.render(select, target.dialect))
            return float(min(max(1, row[0] if row else 1), fact_rows))
        percent = estimate.sample_percent(fact_rows)
        profile = wh.fetch_all(
            sqlgen.render(estimate.profile_select(spec, target, percent), target.dialect)
        )
        return estimate.gee(profile, percent, fact_rows)


def exp_count(spec: DefinitionSpec, target: sqlgen.Target) -> Any:
    from sqlglot import exp

    return exp.select(exp.Count(this=exp.Star())).from_(
        sqlgen.relation_source(spec.fact, spec.fact_alias, target)
    )


def report_json(report: AdvisorReport) -> dict[str, Any]:
    """A JSON-ready report (API, CLI, batch details)."""
    return json.loads(
        json.dumps(
            {
                "cube_id": str(report.cube_id),
                "applied": report.applied,
                "message": report.message,
                "proposals": [
                    {
                        "name": p.name,
                        "fact": p.fact,
                        "attributes": [
                            {"name": a[0], "relationships_path": list(a[1])} for a in p.attributes
                        ],
                        "metrics": p.metrics,
                        "estimated_rows": p.rows,
                        "estimated_benefit": p.benefit,
                        "justified_by": p.queries[:100],
                        "definition_id": str(p.definition_id) if p.definition_id else None,
                    }
                    for p in report.proposals
                ],
                "retired": [{"name": n, "why": w} for n, w in report.retired],
                "kept": report.kept,
                "queries": report.queries,
                "grains": report.grains,
                "candidates": report.candidates,
                "method": report.method,
                "guarantee": report.guarantee,
                "cost_before": report.cost_before,
                "cost_after": report.cost_after,
                "max_rows": report.max_rows,
                "seconds": round(report.seconds, 3),
                "queued_batch": str(report.queued_batch) if report.queued_batch else None,
            },
            default=str,
        )
    )


__all__ = [
    "Advisor",
    "AdvisorFailed",
    "AdvisorOptions",
    "AdvisorReport",
    "Proposal",
    "advise_organization",
    "demand_of",
    "report_json",
]
