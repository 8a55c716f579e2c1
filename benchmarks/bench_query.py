"""Queries answered from aggregates vs from the base tables, TPC-H SF1 in DuckDB.

The example project (src/aggsched/examples/tpch-duckdb) is published and built; a
workload of queries written against its model — group-bys in the spirit of TPC-H Q1, Q3,
Q5, Q6, Q10 and Q12, roll-ups to year and region, filtered drill-downs, distinct counts,
a two-fact query — runs through the query service twice per query, from aggregates and
from the base tables (`use_aggregates=False`), interleaved, best of a few runs each. The
answers are compared. Printed: each query's speedup, the median speedup over the queries
an aggregate covers (target >= 20x), and navigation overhead p99: resolving and planning
a query and writing its SQL, with the cube model and candidates in memory (target
<= 5 ms). `AGGSCHED_BENCH_SCALE` changes the scale factor.
"""

from __future__ import annotations

import math
import os
import statistics
import tempfile
import time
from pathlib import Path

from aggsched.engine.builds import BatchRunner, build_now
from aggsched.engine.publish import publish_path
from aggsched.engine.queries import QueryService
from aggsched.examples import TPCH_DUCKDB
from aggsched.planning import navigate, sqlgen
from aggsched.planning.plan import BatchType
from aggsched.planning.query import AttributeRef, Condition, OrderBy, Query
from aggsched.planning.resolve import resolve
from aggsched.store import Store, aggregates, catalog
from aggsched.warehouse import duckdb_url, open_warehouse
from aggsched.warehouse.tpch import generate_tpch, load_datecustom, load_tpch

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "benchmarks" / ".data"
REPEAT = int(os.environ.get("AGGSCHED_BENCH_REPEAT", "3"))


def a(*names: str) -> tuple[AttributeRef, ...]:
    return tuple(AttributeRef(n) for n in names)


WORKLOAD: list[tuple[str, Query]] = [
    ("Q6 revenue by ship year", Query(("revenue", "quantity"), a("Ship Year"))),
    ("Q6 one year", Query(("revenue",), a("Ship Year"),
                          Condition(AttributeRef("Ship Year"), "=", ("1994",)))),
    ("Q1 by return flag", Query(("quantity", "revenue", "avg_discount", "line_count"),
                                a("Return Flag"))),
    ("Q1 flag x mode", Query(("revenue", "quantity"), a("Return Flag", "Ship Mode"))),
    ("Q5 revenue by supplier region", Query(("revenue",), a("Supplier Region"))),
    ("Q5 region x year", Query(("revenue",), a("Supplier Region", "Ship Year"))),
    ("drill: 1995 by month", Query(("revenue", "line_count"), a("Ship Month"),
                                   Condition(AttributeRef("Ship Year"), "=", ("1995",)))),
    ("max price by year x region", Query(("max_price",), a("Ship Year", "Supplier Region"))),
    ("Q5 customer region x order year", Query(("revenue",), a("Customer Region", "Order Year"))),
    ("Q10 customer nation", Query(("revenue", "line_count"), a("Customer Nation"),
                                  order_by=(OrderBy("revenue", True),), limit=10)),
    ("Q3 revenue by segment", Query(("revenue",), a("Market Segment"))),
    ("Q3 segment x order month", Query(("revenue", "line_count"),
                                       a("Market Segment", "Order Month"))),
    ("revenue by order year", Query(("revenue",), a("Order Year"))),
    ("Q12 priority x mode", Query(("line_count",), a("Order Priority", "Ship Mode"),
                                  Condition(AttributeRef("Ship Mode"), "in", ("MAIL", "SHIP")))),
    ("Q12 by year", Query(("line_count", "quantity"), a("Order Priority", "Ship Year"))),
    ("orders total by priority", Query(("order_total",), a("Order Priority"))),
    ("orders by year", Query(("order_total",), a("Order Year"))),
    ("distinct orders segment x year", Query(("order_count",),
                                             a("Market Segment", "Order Year"))),
    ("two facts by order year", Query(("revenue", "order_total"), a("Order Year"))),
    ("grand total", Query(("revenue", "quantity", "line_count"))),
    ("metric filter", Query(("avg_discount",), a("Ship Year"),
                            Condition("revenue", ">", (1_000_000,)))),
    # not covered by any aggregate: answered from the base tables both times
    ("(base) by supplier nation", Query(("revenue",), a("Supplier Nation"))),
    ("(base) distinct orders by segment", Query(("order_count",), a("Market Segment"))),
    ("(base) by ship quarter", Query(("quantity",), a("Ship Quarter"))),
]  # fmt: skip


def prepare(work: Path, scale: float) -> tuple[Store, str, object]:
    url = duckdb_url(work / "tpch.duckdb")
    with open_warehouse(url) as wh:
        load_tpch(wh, generate_tpch(scale, CACHE))
        load_datecustom(wh)
    store = Store.open(f"sqlite:///{work / 'meta.db'}")
    with store.session() as s:
        for name in ("tpch", "calendar"):
            catalog.upsert_connection(s, "default", name, url, aggregate_schema="as_agg")
    cube = publish_path(store, TPCH_DUCKDB).cubes["Sales"]
    with BatchRunner(store) as runner:
        report = build_now(store, runner, "default", cube, BatchType.MATERIALIZE_PENDING)
    if report.status.value != "done":
        raise SystemExit(f"build failed: {report.message}")
    return store, url, cube


def same(x: list[tuple], y: list[tuple]) -> bool:
    if len(x) != len(y):
        return False
    for r, s in zip(sorted(x, key=repr), sorted(y, key=repr), strict=True):
        for u, v in zip(r, s, strict=True):
            if isinstance(u, float) and isinstance(v, float):
                if not math.isclose(u, v, rel_tol=1e-9):
                    return False
            elif u != v:
                return False
    return True


def partition_rows(store: Store, url: str, cube: object) -> list[tuple[str, int, int]]:
    """Rows of each incremental aggregate as built (month partitions) and as it would be
    with the raw daily partition (the grain plus the ship date), counted in the warehouse."""
    from dataclasses import replace

    from aggsched.planning.spec import DefinitionSpec

    found = []
    with store.session() as s:
        specs = [
            (d.unique_name, DefinitionSpec.from_dict(d.spec), aggregates.active_instance(s, d.id))
            for d in aggregates.cube_definitions(s, cube, buildable=True)  # type: ignore[arg-type]
        ]
    with open_warehouse(url) as wh:
        for name, spec, active in specs:
            if spec.incremental is None or active is None:
                continue
            daily = replace(spec, incremental=replace(spec.incremental, bucket=None))
            query = sqlgen.base_select(daily, sqlgen.Target("duckdb"))
            (rows,) = wh.fetch_one(f"SELECT COUNT(*) FROM ({sqlgen.render(query, 'duckdb')})")
            found.append((name, int(active.number_of_rows or 0), int(rows)))
    return found


def planning_times(service: QueryService, cube: object) -> list[float]:
    """Resolve + navigate + SQL of every workload query, many times, in memory (ms),
    sorted."""
    loaded = service._load("default", cube, None)  # the store reads, cached as in service
    target = sqlgen.Target("duckdb")
    times = []
    for _ in range(50):
        for _name, query in WORKLOAD:
            started = time.perf_counter()
            plan = navigate.plan(resolve(loaded.spec, query), loaded.candidates, target)
            plan.sql("duckdb")
            times.append((time.perf_counter() - started) * 1000)
    return sorted(times)


def main() -> None:
    scale = float(os.environ.get("AGGSCHED_BENCH_SCALE", "1"))
    print(f"== bench_query: TPC-H SF{scale:g} in DuckDB, {len(WORKLOAD)} queries")
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="aggsched-bench-", dir=CACHE.parent) as tmp:
        store, _url, cube = prepare(Path(tmp), scale)
        service = QueryService(store)
        speedups = []
        served_planning: list[float] = []
        for name, query in WORKLOAD:
            agg_t, base_t = [], []
            for _ in range(REPEAT):  # interleaved, so machine load hits both alike
                ours = service.run("default", cube, query)  # type: ignore[arg-type]
                agg_t.append(ours.duration_ms)
                served_planning.append(ours.planning_ms)
                base = service.run("default", cube, query, use_aggregates=False)  # type: ignore[arg-type]
                base_t.append(base.duration_ms)
            if not same(ours.rows, base.rows):
                raise SystemExit(f"{name}: answers differ between aggregates and base tables")
            ratio = min(base_t) / min(agg_t)
            served = ", ".join(sorted({p.definition or "base" for p in ours.served_by}))
            if ours.served_from == "aggregate":
                speedups.append(ratio)
            print(f"  {name:38s} aggregates {min(agg_t):8.1f} ms  base {min(base_t):8.1f} ms  "
                  f"speedup {ratio:7.1f}x  ({served})")  # fmt: skip
        planning = planning_times(service, cube)
        service.close()
        print("incremental aggregates: rows with month partitions (built) vs daily partitions")
        for name, month, day in partition_rows(store, _url, cube):
            print(f"  {name:42s} {month:10,d} vs {day:10,d}  ({day / max(month, 1):.1f}x fewer)")
        store.dispose()
    print(
        f"median speedup over the {len(speedups)} queries aggregates cover: "
        f"{statistics.median(speedups):.1f}x (target >= 20x); min {min(speedups):.1f}x, "
        f"max {max(speedups):.1f}x"
    )
    p50, p99 = planning[len(planning) // 2], planning[int(len(planning) * 0.99) - 1]
    print(f"navigation (resolve + plan + SQL, nothing cached) p99: {p99:.2f} ms (target <= 5 ms), "
          f"p50 {p50:.2f} ms; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs "
          "(on a loaded machine p99 measures waiting for a CPU)")  # fmt: skip
    served_planning.sort()
    print(
        "as served (store reads + navigation, the service's plan cache warm after a query's "
        f"first run) p99: {served_planning[int(len(served_planning) * 0.99) - 1]:.2f} ms"
    )


if __name__ == "__main__":
    main()
