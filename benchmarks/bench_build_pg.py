"""Build engine on PostgreSQL: ~30 aggregates over three facts against naive CREATE TABLE AS.

The model is aggsched's TPC-H SML project (lineitem, orders and partsupp facts) with 30
user-defined aggregates of varied grain — the largest multi-fact model TPC-H allows. (A
TPC-DS model on `tpcgen-cli` data, as issue 14 asks, is not written yet.)

The engine's full rebuild (lattice roll-ups, `parallelConnections` connections) is timed
against the naive baseline that builds every aggregate from the base tables, one after
another on one connection, with the same generated SQL. Both run in the same process on
the same database, interleaved, so the ratio holds on a noisy shared machine.
Target: <= 0.5x. `AGGSCHED_BENCH_PG_SCALE` sets the scale factor (default 1),
`AGGSCHED_BENCH_PG` the admin DSN, `AGGSCHED_BENCH_REPEAT` the repetitions (default 2),
`AGGSCHED_BENCH_PG_CONNECTIONS` the connections of the parallel side (default 2); the
engine on one connection is timed too.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
import yaml

from aggsched.engine.builds import BatchRunner, build_now
from aggsched.engine.publish import publish_path
from aggsched.planning import sqlgen
from aggsched.planning.plan import BatchType
from aggsched.planning.spec import DefinitionSpec
from aggsched.store import Store, aggregates, catalog, org_settings
from aggsched.warehouse import open_warehouse
from aggsched.warehouse.tpch import generate_tpch, load_datecustom, load_tpch

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = Path(os.environ.get("AGGSCHED_SML_TPCH", ROOT.parent / "shared/fixtures/sml-tpch"))
CACHE = ROOT / "benchmarks" / ".data"
ADMIN = os.environ.get("AGGSCHED_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
DATABASE = "aggsched_bench_build_pg"
REPEAT = int(os.environ.get("AGGSCHED_BENCH_REPEAT", "2"))
DATE, LOC = "Date Dimension", "Location - TPCH"
SHIP = "lineitem_Date_Dimension_ItemShip"
PARTS, ORDERS = "Parts - TPCH", "Orders  - TPCH"


def _a(name: str, dim: str, *path: str) -> dict:
    return {"name": name, "dimension": dim, **({"relationships_path": list(path)} if path else {})}


DAY, MONTH, YEAR = _a("Day - TPCH", DATE, SHIP), _a("Month", DATE, SHIP), _a("Year", DATE, SHIP)
S_COUNTRY, S_REGION = _a("Supplier Country", LOC), _a("Supplier Region", LOC)
FLAG, MODE = _a("L_Return_Flag Level", "Return Flag"), _a("L_Ship_Mode Level", "Shipping Mode")
O_MONTH, O_YEAR = _a("Order Month", DATE), _a("Order Year", DATE)
C_COUNTRY, C_REGION = _a("Customer Country", LOC), _a("Customer Region", LOC)
PRIORITY, STATUS = _a("d_o_orderpriority", ORDERS), _a("d_o_orderstatus", ORDERS)
BRAND, MFGR, PTYPE, SIZE = (_a(n, PARTS) for n in ("d_p_brand", "d_p_mfgr", "d_p_type", "d_p_size"))
LINEITEM = ["m_Revenue_sum", "m_l_quantity_sum", "m_l_discount_sum", "m_l_tax_sum"]
ORDER_METRICS = ["m_order_revenue", "m_o_orderkey_count"]
PARTSUPP = ["m_ps_availqty_sum", "m_ps_supplycost_sum"]
AGGREGATES: list[tuple[str, list[str], list[dict]]] = [
    ("li_day_flag_mode", LINEITEM, [DAY, MONTH, YEAR, FLAG, MODE]),
    ("li_month_country_flag_mode", LINEITEM, [MONTH, YEAR, S_COUNTRY, S_REGION, FLAG, MODE]),
    ("li_month_region", LINEITEM, [MONTH, YEAR, S_REGION]),
    ("li_year_country", LINEITEM, [YEAR, S_COUNTRY]),
    ("li_year_flag_mode", LINEITEM, [YEAR, FLAG, MODE]),
    ("li_month", LINEITEM, [MONTH, YEAR]),
    ("li_region_mode", LINEITEM, [S_REGION, MODE]),
    ("li_year", LINEITEM, [YEAR]),
    ("li_day", LINEITEM, [DAY]),
    ("li_flag", LINEITEM, [FLAG]),
    ("li_mode", LINEITEM, [MODE]),
    ("li_country", LINEITEM, [S_COUNTRY]),
    ("li_year_region_flag", LINEITEM, [YEAR, S_REGION, FLAG]),
    ("li_month_mode", LINEITEM, [MONTH, YEAR, MODE]),
    ("o_month_customer_country", ORDER_METRICS, [O_MONTH, O_YEAR, C_COUNTRY, C_REGION]),
    ("o_year_customer_region", ORDER_METRICS, [O_YEAR, C_REGION]),
    ("o_month", ORDER_METRICS, [O_MONTH, O_YEAR]),
    ("o_year", ORDER_METRICS, [O_YEAR]),
    ("o_customer_country", ORDER_METRICS, [C_COUNTRY, C_REGION]),
    ("o_customer_region", ORDER_METRICS, [C_REGION]),
    ("o_priority_year", ORDER_METRICS, [PRIORITY, O_YEAR]),
    ("o_status_priority", ORDER_METRICS, [STATUS, PRIORITY]),
    ("o_status", ORDER_METRICS, [STATUS]),
    ("ps_supplier_country", PARTSUPP, [S_COUNTRY, S_REGION]),
    ("ps_supplier_region", PARTSUPP, [S_REGION]),
    ("ps_brand_region", PARTSUPP, [BRAND, S_REGION]),
    ("ps_brand", PARTSUPP, [BRAND]),
    ("ps_mfgr", PARTSUPP, [MFGR]),
    ("ps_type", PARTSUPP, [PTYPE]),
    ("ps_size_mfgr", PARTSUPP, [SIZE, MFGR]),
]


def make_repo(target: Path) -> Path:
    repo = Path(shutil.copytree(FIXTURE, target))
    model = repo / "models" / "Retail TPCH.yml"
    aggs = [{"unique_name": n, "label": n, "metrics": m, "attributes": a} for n, m, a in AGGREGATES]
    model.write_text(model.read_text() + yaml.safe_dump({"aggregates": aggs}, sort_keys=False))
    return repo


def fresh_database(scale: float) -> str:
    """A new database with TPC-H at `scale` (and DATECUSTOM), analyzed."""
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DATABASE}"')
    url = ADMIN.rsplit("/", 1)[0] + "/" + DATABASE
    with open_warehouse(url) as wh:
        load_tpch(wh, generate_tpch(scale, CACHE))
        load_datecustom(wh)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ANALYZE")
    return url


def prepare(work: Path, url: str) -> tuple[Store, uuid.UUID]:
    store = Store.open(f"sqlite:///{work / 'meta.db'}")
    with store.session() as s:
        for name in ("Connection - TPCH", "Connection - DateCustom"):
            catalog.upsert_connection(s, "default", name, url, aggregate_schema="as_agg")
        org_settings.set_setting(s, "default", "aggregates.new.build.scheduled", "true")
        org_settings.set_setting(s, "default", "aggregates.instance.drop.graceSeconds", "3600")
    result = publish_path(store, make_repo(work / "repo"))
    return store, result.cubes["Retail TPCH"]


def specs_of(store: Store, cube: uuid.UUID) -> list[DefinitionSpec]:
    with store.session() as s:
        return [
            DefinitionSpec.from_dict(d.spec)
            for d in aggregates.cube_definitions(s, cube, buildable=True)
        ]


def naive_build(url: str, specs: list[DefinitionSpec]) -> float:
    """Each aggregate from the base tables, one after another (same SQL generator)."""
    target = sqlgen.Target("postgres")
    with open_warehouse(url) as wh:
        wh.ensure_schema("naive")
        started = time.perf_counter()
        for i, spec in enumerate(specs):
            dest = sqlgen.table(f"naive_{i}", "naive")
            wh.execute(wh.render(sqlgen.create_table_as(dest, sqlgen.base_select(spec, target))))
        elapsed = time.perf_counter() - started
        for i in range(len(specs)):
            wh.drop_table("naive", f"naive_{i}")
    return elapsed


def set_connections(store: Store, connections: int) -> None:
    with store.session() as s:
        org_settings.set_setting(
            s, "default", "aggregates.build.parallelConnections", str(connections)
        )


def timed_batch(store: Store, runner: BatchRunner, cube: uuid.UUID, kind: BatchType) -> float:
    started = time.perf_counter()
    report = build_now(store, runner, "default", cube, kind)
    elapsed = time.perf_counter() - started
    if report.status.value != "done":
        raise SystemExit(f"benchmark batch failed: {report.message}")
    return elapsed


def main() -> None:
    scale = float(os.environ.get("AGGSCHED_BENCH_PG_SCALE", "1"))
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="aggsched-bench-pg-", dir=CACHE.parent) as tmp:
        url = fresh_database(scale)
        store, cube = prepare(Path(tmp), url)
        specs = specs_of(store, cube)
        facts = sorted({s.fact.identity for s in specs for s in s.components()})
        print(f"== bench_build_pg: TPC-H SF{scale:g} in PostgreSQL, {len(specs)} aggregates "
              f"over {len(facts)} facts")  # fmt: skip
        runner = BatchRunner(store, keep_connections=True)
        parallel = int(os.environ.get("AGGSCHED_BENCH_PG_CONNECTIONS", "2"))
        sides: dict[str, list[float]] = {"naive": [], "serial": [], "parallel": []}
        try:
            timed_batch(store, runner, cube, BatchType.MATERIALIZE_PENDING)  # warm up
            for _ in range(REPEAT):  # interleaved: load on the machine hits all alike
                sides["naive"].append(naive_build(url, specs))
                for side, connections in (("serial", 1), ("parallel", parallel)):
                    set_connections(store, connections)
                    sides[side].append(timed_batch(store, runner, cube, BatchType.FULL_REBUILD))
        finally:
            runner.close()
            store.dispose()
        best = {side: min(times) for side, times in sides.items()}
        ratio = {side: best[side] / best["naive"] for side in sides}
        runs = "; ".join(f"{side} {', '.join(f'{x:.2f}' for x in times)}"
                         for side, times in sides.items())  # fmt: skip
        print(f"full build (best of {REPEAT}): naive {best['naive']:.2f} s; engine with "
              f"{parallel} connections {best['parallel']:.2f} s, ratio "
              f"{ratio['parallel']:.3f} (target <= 0.5); engine on one connection "
              f"{best['serial']:.2f} s, ratio {ratio['serial']:.3f}")  # fmt: skip
        print(f"runs (s): {runs}")
        with psycopg.connect(ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')


if __name__ == "__main__":
    main()
