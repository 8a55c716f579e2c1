"""Answering semantic queries: resolve, navigate to the best aggregates, run, log.

`QueryService.run` reads what a query needs from the store (the cube's queryable model,
cached per publish; the active instances; the connection mappings), plans it with
`planning.navigate` (pure), runs the SQL on the warehouse with a per-query timeout, and
records it in the query log — the demand the advisor learns from. Warehouse connections
are kept per URL between queries; embedded (DuckDB) ones are closed when idle so other
processes can use the file.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from aggsched import telemetry
from aggsched.engine.builds import target_for
from aggsched.planning import navigate, sqlgen
from aggsched.planning.cube import CubeSpec
from aggsched.planning.lattice import Candidate, Source
from aggsched.planning.partials import partial_columns
from aggsched.planning.query import Query, QueryError
from aggsched.planning.resolve import Part, ResolvedQuery, resolve
from aggsched.planning.spec import DefinitionSpec
from aggsched.store import Store, catalog, org_settings
from aggsched.store import queries as query_log
from aggsched.store.models import Connection, Cube
from aggsched.warehouse import (
    QueryTimeout,
    Warehouse,
    WarehouseError,
    open_warehouse,
    redact_url,
)

IDLE_CLOSE_SECONDS = 30.0
PLAN_CACHE = 512  # plans kept per service
DEFAULT_TIMEOUT_SECONDS = 60.0


class QueryRefused(Exception):
    """The query cannot run as asked (400): `field` says where."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class QueryFailed(Exception):
    """The warehouse failed the query (502), or it ran past its timeout (504)."""

    def __init__(self, message: str, *, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out


@dataclass(frozen=True)
class Active:
    """An active aggregate instance a query may read (a lattice candidate's key)."""

    instance_id: uuid.UUID
    definition_id: uuid.UUID
    definition: str
    schema: str
    table: str
    url: str


@dataclass(frozen=True)
class ServedPart:
    """Where one part of a query (one fact's metrics) was read from."""

    fact: str
    kind: str  # "aggregate" or "base"
    definition_id: uuid.UUID | None = None
    definition: str | None = None
    instance_id: uuid.UUID | None = None
    table: str | None = None


@dataclass
class QueryResult:
    columns: list[tuple[str, str]]
    rows: list[tuple[Any, ...]]
    served_by: list[ServedPart]
    sql: str
    duration_ms: float
    planning_ms: float
    explain: bool = False
    query_id: uuid.UUID | None = None

    @property
    def rows_returned(self) -> int:
        return len(self.rows)

    @property
    def served_from(self) -> str:
        """`aggregate`, `base` or `mixed`: what answered the query."""
        kinds = {p.kind for p in self.served_by}
        return kinds.pop() if len(kinds) == 1 else "mixed"


@dataclass
class _Loaded:
    cube: Cube
    spec: CubeSpec
    connections: dict[str, Connection]
    candidates: list[Candidate[Active]] = field(default_factory=list)
    timeout: float | None = DEFAULT_TIMEOUT_SECONDS


class _Pool:
    """Idle warehouse connections per URL, shared by the threads answering queries."""

    def __init__(self, opener: Callable[[str], Warehouse]) -> None:
        self._open = opener
        self._idle: dict[str, queue.SimpleQueue[tuple[Warehouse, float]]] = {}
        self._lock = threading.Lock()

    @contextmanager
    def borrow(self, url: str) -> Iterator[Warehouse]:
        with self._lock:
            idle = self._idle.setdefault(url, queue.SimpleQueue())
        try:
            wh, _ = idle.get_nowait()
        except queue.Empty:
            wh = self._open(url)
        try:
            yield wh
        except WarehouseError as exc:
            if exc.transient:  # a broken connection is not put back
                with suppress(WarehouseError):
                    wh.close()
                raise
            idle.put((wh, time.monotonic()))
            raise
        idle.put((wh, time.monotonic()))

    def close_idle(self, older_than: float, embedded_only: bool = True) -> None:
        """Close connections idle longer than `older_than` seconds (DuckDB files only, by
        default: one process may write a DuckDB file, so it is not held while idle)."""
        now = time.monotonic()
        with self._lock:
            items = list(self._idle.items())
        for _url, idle in items:
            keep = []
            while True:
                try:
                    wh, since = idle.get_nowait()
                except queue.Empty:
                    break
                if now - since >= older_than and (not embedded_only or wh.dialect == "duckdb"):
                    with suppress(WarehouseError):
                        wh.close()
                else:
                    keep.append((wh, since))
            for item in keep:
                idle.put(item)

    def close(self) -> None:
        self.close_idle(-1.0, embedded_only=False)


class QueryService:
    """Answers queries on one store (see the module docstring); thread-safe."""

    def __init__(
        self,
        store: Store,
        *,
        env: Mapping[str, str] | None = None,
        opener: Callable[[str], Warehouse] | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.store = store
        self.clock = clock  # when queries are logged (None: now); tests and benchmarks
        env = os.environ if env is None else env
        self._pool = _Pool(opener or (lambda url: open_warehouse(url, env)))
        self._specs: dict[uuid.UUID, tuple[Any, CubeSpec]] = {}
        self._plans: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
        self._lock = threading.Lock()
        self._definitions: dict[tuple[uuid.UUID, str], DefinitionSpec] = {}
        self._stop = threading.Event()
        self._reaper = threading.Thread(target=self._reap, name="query-pool-reaper", daemon=True)
        self._reaper.start()

    def close(self) -> None:
        self._stop.set()
        self._pool.close()

    def _reap(self) -> None:
        while not self._stop.wait(IDLE_CLOSE_SECONDS / 3):
            self._pool.close_idle(IDLE_CLOSE_SECONDS)

    # ------------------------------------------------------------------ public
    def run(
        self,
        org_id: str,
        cube_id: uuid.UUID,
        query: Query,
        *,
        project_id: uuid.UUID | None = None,
        username: str = "",
        explain: bool = False,
        use_aggregates: bool = True,
    ) -> QueryResult:
        """Answer `query` on the cube (or explain how it would be answered).

        Raises `QueryRefused` (bad query, 400), `QueryFailed` (warehouse error or
        timeout) and the store's `NotFoundError` (unknown or another org's cube)."""
        started = time.perf_counter()
        loaded = self._load(org_id, cube_id, project_id)
        resolved, planned, sql, url = self._plan(loaded, query, use_aggregates)
        served = _served(planned)
        planning_ms = (time.perf_counter() - started) * 1000
        result = QueryResult([], [], served, sql, 0.0, planning_ms, explain=explain)
        if explain:
            return result
        try:
            with self._pool.borrow(url) as wh:
                result.columns, result.rows = wh.query(sql, timeout=loaded.timeout)
        except WarehouseError as exc:
            result.duration_ms = (time.perf_counter() - started) * 1000
            self._log(loaded, query, resolved, result, username, error=str(exc))
            timed_out = isinstance(exc, QueryTimeout)
            raise QueryFailed(str(exc), timed_out=timed_out) from exc
        result.rows = [tuple(_plain(v) for v in row) for row in result.rows]
        result.columns = list(zip(planned.columns, (t for _, t in result.columns), strict=True))
        result.duration_ms = (time.perf_counter() - started) * 1000
        result.query_id = self._log(loaded, query, resolved, result, username)
        served = ", ".join(sorted({p.definition or "base" for p in result.served_by}))
        telemetry.query_served(served, result.duration_ms / 1000)
        return result

    def _plan(
        self, loaded: _Loaded, query: Query, use_aggregates: bool
    ) -> tuple[ResolvedQuery, navigate.Plan[Active], str, str]:
        """Resolve, navigate and write the SQL — or reuse the plan of the same query on the
        same model, candidates and mappings (dashboards repeat their queries)."""
        key = (
            loaded.cube.id, loaded.cube.spec_updated_at, query, use_aggregates,
            tuple(sorted((c.key.instance_id.hex, c.rows) for c in loaded.candidates)),
            tuple(sorted((n, c.url, c.sql_dialect, c.database_override, c.schema_override)
                         for n, c in loaded.connections.items())),
        )  # fmt: skip
        with self._lock:
            cached = self._plans.get(key)
            if cached is not None:
                self._plans.move_to_end(key)
                return cached
        try:
            resolved = _read_as(resolve(loaded.spec, query), loaded.connections)
            url = _warehouse_url(resolved, loaded.connections)
            target = target_for(url, loaded.connections)
            candidates = [c for c in loaded.candidates if c.key.url == url]
            planned = navigate.plan(resolved, candidates, target, use_aggregates=use_aggregates)
            sql = planned.sql(target.dialect)
        except QueryError as exc:
            raise QueryRefused(exc.field, exc.message) from exc
        except sqlgen.SqlGenerationError as exc:
            raise QueryRefused("metrics", str(exc)) from exc
        with self._lock:
            self._plans[key] = (resolved, planned, sql, url)
            while len(self._plans) > PLAN_CACHE:
                self._plans.popitem(last=False)
        return resolved, planned, sql, url

    # ------------------------------------------------------------------ store reads
    def _load(self, org_id: str, cube_id: uuid.UUID, project_id: uuid.UUID | None) -> _Loaded:
        with self.store.session() as s:
            if project_id is not None:
                cube = catalog.get_cube(s, org_id, project_id, cube_id)
            else:
                cube = catalog.get_cube_by_id(s, org_id, cube_id)
            spec = self._cube_spec(cube)
            connections = {c.name: c for c in catalog.list_connections(s, org_id)}
            timeout = org_settings.get_int_setting(s, org_id, "queries.timeoutSeconds")
            loaded = _Loaded(
                cube, spec, connections, timeout=float(timeout) if timeout > 0 else None
            )
            loaded.candidates = self._candidates(s, cube, connections)
            s.expunge_all()
        return loaded

    def _cube_spec(self, cube: Cube) -> CubeSpec:
        if not cube.query_spec:
            raise QueryRefused(
                "cubeId", f"cube {cube.id} was published before queries existed; republish it"
            )
        cached = self._specs.get(cube.id)
        if cached is None or cached[0] != cube.spec_updated_at:
            cached = (cube.spec_updated_at, CubeSpec.from_json(cube.query_spec))
            self._specs[cube.id] = cached
        return cached[1]

    def _candidates(
        self, s: Any, cube: Cube, connections: Mapping[str, Connection]
    ) -> list[Candidate[Active]]:
        """The cube's active instances as lattice candidates; definition specs are parsed
        once per (definition, fingerprint) and kept."""
        rows = query_log.active_for_queries(s, cube.id)
        missing = {
            r.definition_id
            for r in rows
            if (r.definition_id, r.fingerprint) not in self._definitions
        }
        for definition_id, data in query_log.definition_specs(s, missing).items():
            fingerprint = next(r.fingerprint for r in rows if r.definition_id == definition_id)
            self._definitions[(definition_id, fingerprint)] = DefinitionSpec.from_dict(data)
        found = []
        for r in rows:
            conn = connections.get(r.connection_id)
            spec = self._definitions.get((r.definition_id, r.fingerprint))
            if conn is None or spec is None:
                continue
            key = Active(r.instance_id, r.definition_id, r.definition, r.schema, r.table, conn.url)
            found.append(Candidate(key, spec, r.rows))
        return found

    # ------------------------------------------------------------------ the log
    def _log(
        self,
        loaded: _Loaded,
        query: Query,
        resolved: ResolvedQuery,
        result: QueryResult,
        username: str,
        error: str | None = None,
    ) -> uuid.UUID | None:
        grain = [grain_of(part) for part in resolved.parts]
        key = hashlib.sha256(json.dumps(grain, sort_keys=True).encode()).hexdigest()[:32]
        hits = [
            query_log.Hit(p.instance_id, p.definition_id)
            for p in result.served_by
            if p.instance_id and p.definition_id
        ]
        filtered = [a.name for p in resolved.parts for a in p.attributes[p.outputs :]]
        with self.store.session() as s:
            return query_log.record_query(
                s, loaded.cube, username=username, metrics=query.metrics,
                attributes=[a.name for a in query.attributes],
                filter_attributes=list(dict.fromkeys(filtered)), grain=grain, grain_key=key,
                served_by="error" if error else result.served_from,
                duration_ms=result.duration_ms, planning_ms=result.planning_ms,
                rows=len(result.rows), error=error, sql=result.sql, hits=hits,
                now=self.clock() if self.clock else None,
            )  # fmt: skip


def grain_of(part: Part) -> dict[str, Any]:
    """What a part needed, as logged: its fact, grain attributes (name and path), how many
    of them are output, and the partials it needed (what an aggregate must store)."""
    partials = sorted(partial_columns(part.spec))
    return {
        "fact": part.fact,
        "attributes": [[a.name, list(a.path)] for a in part.attributes],
        "outputs": part.outputs,
        "metrics": [m.name for m in part.metrics],
        "partials": [list(p) for p in partials],
        "exact": part.exact_only,
    }


def _served(planned: navigate.Plan[Active]) -> list[ServedPart]:
    served = []
    for part, source in zip(planned.parts, planned.sources, strict=True):
        if source is None:
            served.append(ServedPart(part.fact, "base"))
            continue
        key: Active = source.key
        served.append(
            ServedPart(
                part.fact,
                "aggregate",
                key.definition_id,
                key.definition,
                key.instance_id,
                f"{key.schema}.{key.table}",
            )
        )
    return served


def _read_as(resolved: ResolvedQuery, connections: Mapping[str, Connection]) -> ResolvedQuery:
    """The parts with the model's SQL read in each connection mapping's `sql_dialect`."""
    dialects = {name: c.sql_dialect for name, c in connections.items() if c.sql_dialect}
    if not dialects:
        return resolved
    parts = tuple(replace(p, spec=sqlgen.read_as(p.spec, dialects)) for p in resolved.parts)
    return replace(resolved, parts=parts)


def _warehouse_url(resolved: ResolvedQuery, connections: Mapping[str, Connection]) -> str:
    """The one warehouse the query's datasets live in (a query reads one warehouse)."""
    relations = [p.spec.fact for p in resolved.parts]
    relations += [j.relation for p in resolved.parts for j in p.spec.joins]
    names = sorted({r.connection for r in relations})
    missing = [n for n in names if n not in connections]
    if missing:
        raise QueryRefused(
            "cubeId",
            f"SML connection(s) {', '.join(map(repr, missing))} are not mapped to a warehouse "
            "(aggsched connection add NAME URL)",
        )
    urls = {connections[n].url for n in names}
    if len(urls) > 1:
        detail = ", ".join(f"{n} -> {redact_url(connections[n].url)}" for n in names)
        raise QueryRefused(
            "metrics", f"the query's datasets live in different warehouses ({detail})"
        )
    return urls.pop()


def _plain(value: Any) -> Any:
    """A warehouse value as JSON has it: decimals as numbers, dates as ISO text."""
    if isinstance(value, Decimal):
        return (
            int(value)
            if value == value.to_integral_value() and abs(value) < 2**53
            else float(value)
        )
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


__all__ = [
    "Active",
    "QueryFailed",
    "QueryRefused",
    "QueryResult",
    "QueryService",
    "ServedPart",
    "Source",
    "grain_of",
]
