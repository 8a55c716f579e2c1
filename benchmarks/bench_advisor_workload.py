"""The advisor on a real workload: TPC-H SF1 in DuckDB, the example model without its
user-defined aggregates.

1. A seeded, skewed workload of 200 queries over 18 grains (a few grains are most of the
   traffic) runs from the base tables; the advisor learns from the log, its aggregates are
   built, and the same workload runs again. Printed: total workload time after / before
   (target <= 0.1), the new aggregates' rows as a percentage of the fact table's, the
   advisor's own run time, and how many queries the aggregates answered.
2. The workload shifts to other grains, two weeks later (an injected clock): the advisor
   makes aggregates for the new grains and retires the ones nobody queries any more.

`AGGSCHED_BENCH_SCALE` changes the scale factor (`bench_advisor` is the lattice part).
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from aggsched.engine.advisor import Advisor
from aggsched.engine.builds import BatchRunner, build_now
from aggsched.engine.publish import publish_path
from aggsched.engine.queries import QueryService
from aggsched.examples import TPCH_DUCKDB
from aggsched.planning.plan import BatchType
from aggsched.planning.query import AttributeRef, Condition, Query
from aggsched.store import Store, aggregates, catalog
from aggsched.warehouse import duckdb_url, open_warehouse
from aggsched.warehouse.tpch import generate_tpch, load_datecustom, load_tpch

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "benchmarks" / ".data"
SEED = 20261202


def q(metrics: str, *attrs: str, where: tuple[str, str] | None = None) -> Query:
    condition = Condition(AttributeRef(where[0]), "=", (where[1],)) if where else None
    return Query(tuple(metrics.split()), tuple(AttributeRef(a) for a in attrs), condition)


FIRST = [
    q("revenue", "Ship Year"),
    q("revenue quantity", "Ship Year", "Supplier Region"),
    q("quantity", "Return Flag", "Ship Mode"),
    q("revenue", "Customer Region", "Order Year"),
    q("line_count", "Order Priority", "Ship Mode"),
    q("revenue", "Market Segment"),
    q("avg_discount", "Ship Month", where=("Ship Year", "1995")),
    q("max_price", "Supplier Nation"),
    q("order_total", "Order Priority"),
    q("order_total", "Order Year", "Market Segment"),
    q("revenue", "Ship Quarter"),
    q("quantity", "Supplier Region", "Return Flag"),
    q("revenue", "Customer Nation"),
    q("line_count", "Ship Year", "Ship Mode"),
    q("order_count", "Market Segment", "Order Year"),
    q("revenue", "Order Month"),
    q("avg_discount", "Return Flag"),
    q("quantity", "Ship Day"),
]
SHIFTED = [
    q("revenue", "Supplier Nation", "Ship Year"),
    q("quantity", "Customer Nation", "Ship Mode"),
    q("order_total", "Customer Region"),
    q("revenue", "Order Quarter"),
    q("line_count", "Return Flag", "Order Priority"),
    q("max_price", "Ship Quarter"),
]


def workload(grains: list[Query], n: int, rng: random.Random) -> list[Query]:
    """`n` queries, grain i drawn with weight 1 / (i + 1)^1.2 (a few grains dominate)."""
    weights = [1 / (i + 1) ** 1.2 for i in range(len(grains))]
    return rng.choices(grains, weights, k=n)


def plain_example(target: Path) -> Path:
    repo = Path(shutil.copytree(TPCH_DUCKDB, target))
    model = repo / "models" / "sales.yml"
    doc = yaml.safe_load(model.read_text())
    doc.pop("aggregates")
    model.write_text(yaml.safe_dump(doc, sort_keys=False))
    return repo


def run(service: QueryService, cube: object, queries: list[Query]) -> tuple[float, int]:
    """Total seconds of the workload, and how many queries aggregates answered."""
    started, hits = time.perf_counter(), 0
    for query in queries:
        result = service.run("default", cube, query)  # type: ignore[arg-type]
        hits += result.served_from == "aggregate"
    return time.perf_counter() - started, hits


def demand_rows(store: Store, cube: object) -> tuple[int, list[str]]:
    with store.session() as s:
        found = [
            (d.unique_name, aggregates.active_instance(s, d.id))
            for d in aggregates.cube_definitions(s, cube, include_removed=False)  # type: ignore[arg-type]
            if d.subtype == "demand_defined"
        ]
    return sum(int(a.number_of_rows or 0) for _, a in found if a), [n for n, _ in found]


def main() -> None:
    scale = float(os.environ.get("AGGSCHED_BENCH_SCALE", "1"))
    rng = random.Random(SEED)
    print(f"== bench_advisor_workload: TPC-H SF{scale:g} in DuckDB, example model, "
          f"no user-defined aggregates")  # fmt: skip
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="aggsched-bench-", dir=CACHE.parent) as tmp:
        work = Path(tmp)
        url = duckdb_url(work / "tpch.duckdb")
        with open_warehouse(url) as wh:
            load_tpch(wh, generate_tpch(scale, CACHE))
            load_datecustom(wh)
            (fact_rows,) = wh.fetch_one('SELECT COUNT(*) FROM "TPCH_SF1"."LINEITEM"')
        store = Store.open(f"sqlite:///{work / 'meta.db'}")
        with store.session() as s:
            for name in ("tpch", "calendar"):
                catalog.upsert_connection(s, "default", name, url, aggregate_schema="as_agg")
        cube = publish_path(store, plain_example(work / "repo")).cubes["Sales"]
        runner = BatchRunner(store)
        build_now(store, runner, "default", cube, BatchType.MATERIALIZE_PENDING)
        t0 = datetime.now(UTC)
        clock = {"now": t0}
        service = QueryService(store, clock=lambda: clock["now"])

        first = workload(FIRST, 200, rng)
        print(f"workload: {len(first)} queries over {len(set(first))} grains")
        before, _ = run(service, cube, first)
        advisor = Advisor(store, clock=lambda: clock["now"])
        started = time.perf_counter()
        report = advisor.advise("default", cube, apply=True)
        advised = time.perf_counter() - started
        built = build_now(store, runner, "default", cube, BatchType.MATERIALIZE_PENDING)
        after, hits = run(service, cube, first)
        rows, names = demand_rows(store, cube)
        build_seconds = sum(r.seconds for r in built.steps)
        print(f"advisor: {report.message} ({advised:.2f} s; {report.method}, "
              f"guarantee {report.guarantee:.3f}); built in {build_seconds:.1f} s")  # fmt: skip
        print(f"workload from base tables {before:.1f} s, from aggregates {after:.1f} s: ratio "
              f"{after / before:.3f} (target <= 0.1); {hits} of {len(first)} queries served by "
              f"aggregates")  # fmt: skip
        print(f"{len(names)} demand-defined aggregates, {rows:,} rows = "
              f"{100 * rows / fact_rows:.2f}% of lineitem's {fact_rows:,}")  # fmt: skip

        clock["now"] = t0 + timedelta(days=15)  # two weeks later, the users ask other things
        shifted = workload(SHIFTED, 100, rng)
        run(service, cube, shifted)
        second = advisor.advise("default", cube, apply=True)
        build_now(store, runner, "default", cube, BatchType.MATERIALIZE_PENDING)
        _, now_names = demand_rows(store, cube)
        _, hits = run(service, cube, shifted)
        print(f"after the shift: {second.message}; retired {len(second.retired)} "
              f"({', '.join(n for n, _ in second.retired) or 'none'}); now {len(now_names)} "
              f"demand-defined aggregates; {hits} of {len(shifted)} shifted queries served by "
              f"aggregates")  # fmt: skip
        service.close()
        runner.close()
        store.dispose()


if __name__ == "__main__":
    main()
