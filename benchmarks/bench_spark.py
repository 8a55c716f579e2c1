"""Builds on Spark: TPC-H SF1 on an in-process Spark ``local[2]``, next to DuckDB.

The example aggregates of ``bench_build`` (10 user-defined of varied grain plus the system
ones), full rebuilds:

1. the engine's batch on Spark (lattice roll-ups, finest first) vs the naive baseline on
   the same Spark: each aggregate from the base tables, one CREATE TABLE ... AS after
   another, same SQL generator, same open session;
2. the engine's batch on Spark vs the same batch on DuckDB (same machine, same data).

Both Spark sides run in one session, interleaved, so the ratio holds on a noisy machine.
Needs ``aggsched[spark]`` and Java. ``AGGSCHED_BENCH_SCALE`` changes the scale factor,
``AGGSCHED_BENCH_REPEAT`` the number of timed rounds (best of).
"""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from pathlib import Path

from aggsched.engine.builds import BatchRunner, build_now
from aggsched.engine.publish import publish_path
from aggsched.planning import sqlgen
from aggsched.planning.plan import BatchType
from aggsched.planning.spec import DefinitionSpec
from aggsched.store import Store, aggregates, catalog, org_settings
from aggsched.warehouse import duckdb_url, open_warehouse
from aggsched.warehouse.tpch import generate_tpch, load_datecustom, load_tpch
from benchmarks.bench_build import AGGREGATES, CACHE, make_repo

SPARK_URL = "spark://local[2]"
REPEAT = int(os.environ.get("AGGSCHED_BENCH_REPEAT", "2"))


def prepare(url: str, work: Path, scale: float, tag: str) -> tuple[Store, uuid.UUID]:
    with open_warehouse(url) as wh:
        load_tpch(wh, generate_tpch(scale, CACHE))
        load_datecustom(wh)
    store = Store.open(f"sqlite:///{work / f'meta-{tag}.db'}")
    with store.session() as s:
        for name in ("Connection - TPCH", "Connection - DateCustom"):
            catalog.upsert_connection(s, "default", name, url, aggregate_schema="as_agg")
        org_settings.set_setting(s, "default", "aggregates.new.build.scheduled", "true")
        org_settings.set_setting(s, "default", "aggregates.instance.drop.graceSeconds", "0")
    result = publish_path(store, make_repo(work / f"repo-{tag}", incremental=False))
    return store, result.cubes["Retail TPCH"]


def timed_batch(runner: BatchRunner, store: Store, cube: uuid.UUID, kind: BatchType) -> float:
    started = time.perf_counter()
    report = build_now(store, runner, "default", cube, kind)
    elapsed = time.perf_counter() - started
    if report.status.value != "done":
        raise SystemExit(f"benchmark batch failed: {report.message}")
    return elapsed


def naive_build(store: Store, url: str, cube: uuid.UUID) -> float:
    """Each aggregate from the base tables, one CREATE TABLE ... AS after another."""
    with store.session() as s:
        specs = [DefinitionSpec.from_dict(d.spec) for d in aggregates.cube_definitions(s, cube)]
    with open_warehouse(url) as wh:
        target = sqlgen.Target(wh.dialect)
        wh.ensure_schema("naive")
        started = time.perf_counter()
        for i, spec in enumerate(specs):
            wh.create_table_as(
                sqlgen.table(f"naive_{i}", "naive"), sqlgen.base_select(spec, target)
            )
        elapsed = time.perf_counter() - started
        for i in range(len(specs)):
            wh.drop_table("naive", f"naive_{i}")
    return elapsed


def main() -> None:
    scale = float(os.environ.get("AGGSCHED_BENCH_SCALE", "1"))
    print(f"== bench_spark: TPC-H SF{scale:g}, {len(AGGREGATES)} user aggregates + system ones, "
          f"Spark {SPARK_URL} vs DuckDB")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="aggsched-bench-spark-", dir=CACHE.parent) as tmp:
        work = Path(tmp)
        duck_url = duckdb_url(work / "tpch.duckdb")
        store, cube = prepare(duck_url, work, scale, "duckdb")
        with BatchRunner(store, keep_connections=True) as runner:
            timed_batch(runner, store, cube, BatchType.MATERIALIZE_PENDING)
            duck = min(timed_batch(runner, store, cube, BatchType.FULL_REBUILD)
                       for _ in range(REPEAT))  # fmt: skip
        store.dispose()

        store, cube = prepare(SPARK_URL, work, scale, "spark")
        naive: list[float] = []
        engine: list[float] = []
        with BatchRunner(store, keep_connections=True) as runner:
            timed_batch(runner, store, cube, BatchType.MATERIALIZE_PENDING)  # warm the JVM
            for _ in range(REPEAT):  # interleaved: load on the machine hits both alike
                naive.append(naive_build(store, SPARK_URL, cube))
                engine.append(timed_batch(runner, store, cube, BatchType.FULL_REBUILD))
        store.dispose()
        n, e = min(naive), min(engine)
        print(f"full build on Spark (best of {REPEAT}): naive per-aggregate CTAS {n:.2f} s; "
              f"engine {e:.2f} s, ratio {e / n:.3f}")  # fmt: skip
        print(f"same batch on DuckDB (best of {REPEAT}): {duck:.2f} s; Spark engine / DuckDB "
              f"engine {e / duck:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
