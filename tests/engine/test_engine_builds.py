"""Build batches on real TPC-H data in DuckDB, PostgreSQL and Spark.

Every aggregate table is compared with the same aggregation written by hand over the base
tables; failures, cancellation, timeouts, the outcome guard and cleanup are checked on
the real engines.
"""

from __future__ import annotations

import datetime as dt
import math
import threading
import time
import uuid
from decimal import Decimal
from pathlib import Path

import pytest

from aggsched.engine.builds import BatchRunner, build_now
from aggsched.engine.publish import publish_path
from aggsched.planning.plan import BatchType
from aggsched.planning.spec import DefinitionSpec
from aggsched.planning.sqlgen import output_columns
from aggsched.store import Store, aggregates, batches, catalog, org_settings, queue
from aggsched.store.models import BatchStatus, InstanceStatus
from aggsched.warehouse import open_warehouse
from engine.tpch_project import AGGREGATES, make_repo, publish_tpch, slow_repo
from sml.helpers import replace_in

LINEITEM_JOINS = """
FROM "TPCH_SF1"."LINEITEM" l
LEFT JOIN "PUBLIC"."DATECUSTOM" d ON l."L_SHIPDATE" = CAST(d."PK_DATE" AS DATE)
LEFT JOIN "TPCH_SF1"."SUPPLIER" s ON l."L_SUPPKEY" = s."S_SUPPKEY"
LEFT JOIN "TPCH_SF1"."NATION" n ON s."S_NATIONKEY" = n."N_NATIONKEY"
LEFT JOIN "TPCH_SF1"."REGION" r ON n."N_REGIONKEY" = r."R_REGIONKEY"
"""
QTY_DISC = """SUM(l."L_QUANTITY"), COUNT(l."L_QUANTITY"),
  COUNT(l."L_DISCOUNT"), SUM(l."L_DISCOUNT"), SUM(l."L_DISCOUNT" * l."L_DISCOUNT")"""
REVENUE = 'SUM(l."L_EXTENDEDPRICE" * (1 - l."L_DISCOUNT"))'

HAND_SQL = {
    "li_ship_month_supplier_region": f"""
SELECT d."MONTH", CAST(d."MONTH" AS DATE), d."YEAR", d."YEAR_NAME", r."R_REGIONKEY",
  {REVENUE}, SUM(l."L_QUANTITY"), {QTY_DISC}
{LINEITEM_JOINS} GROUP BY 1, 2, 3, 4, 5""",
    "li_ship_year": f"""
SELECT d."YEAR", d."YEAR_NAME", {REVENUE}, {QTY_DISC}
{LINEITEM_JOINS} GROUP BY 1, 2""",
    "li_parts_by_order_year": """
SELECT d."YEAR", d."YEAR_NAME", COUNT(DISTINCT l."L_PARTKEY"), MAX(l."L_EXTENDEDPRICE")
FROM "TPCH_SF1"."LINEITEM" l
LEFT JOIN "TPCH_SF1"."ORDERS" o ON l."L_ORDERKEY" = o."O_ORDERKEY"
LEFT JOIN "PUBLIC"."DATECUSTOM" d ON o."O_ORDERDATE" = CAST(d."PK_DATE" AS DATE)
GROUP BY 1, 2""",
    "orders_customer_region": """
SELECT r."R_REGIONKEY", n."N_NATIONKEY", n."N_NAME", SUM(o."O_TOTALPRICE"),
  COUNT(o."O_ORDERKEY")
FROM "TPCH_SF1"."ORDERS" o
LEFT JOIN "TPCH_SF1"."CUSTOMER" c ON o."O_CUSTKEY" = c."C_CUSTKEY"
LEFT JOIN "TPCH_SF1"."NATION" n ON c."C_NATIONKEY" = n."N_NATIONKEY"
LEFT JOIN "TPCH_SF1"."REGION" r ON n."N_REGIONKEY" = r."R_REGIONKEY"
GROUP BY 1, 2, 3""",
    "customers_by_region": """
SELECT r."R_REGIONKEY", COUNT(c."C_CUSTKEY")
FROM "TPCH_SF1"."CUSTOMER" c
LEFT JOIN "TPCH_SF1"."NATION" n ON c."C_NATIONKEY" = n."N_NATIONKEY"
LEFT JOIN "TPCH_SF1"."REGION" r ON n."N_REGIONKEY" = r."R_REGIONKEY"
GROUP BY 1""",
    "system_lineitem_all": """
SELECT SUM(l."L_DISCOUNT"), SUM(l."L_QUANTITY"), SUM(l."L_TAX"),
  SUM(l."L_EXTENDEDPRICE" * (1 - l."L_DISCOUNT")) FROM "TPCH_SF1"."LINEITEM" l""",
}
# The system aggregate carries every derivable lineitem metric; compare the model's own.
COLUMNS = {
    "system_lineitem_all": [
        "m_l_discount_sum__sum", "m_l_quantity_sum__sum", "m_l_tax_sum__sum",
        "m_revenue_sum__sum",
    ]
}  # fmt: skip


def normalize(rows: list[tuple]) -> list[tuple]:
    """Rows comparable across engines: numbers rounded, dates as ISO text, sorted."""

    def value(v: object) -> object:
        if isinstance(v, Decimal | float | int) and not isinstance(v, bool):
            return round(float(v), 4)
        if isinstance(v, dt.date):
            return v.isoformat()
        return v

    return sorted((tuple(value(v) for v in row) for row in rows), key=repr)


WAREHOUSES = ["duckdb", "postgres", pytest.param("spark", marks=pytest.mark.spark)]


@pytest.fixture(params=WAREHOUSES)
def warehouse_url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue(f"tpch_{request.param}")


@pytest.fixture
def store(tmp_path: Path) -> Store:
    store = Store.open(f"sqlite:///{tmp_path / 'meta.db'}")
    yield store
    store.dispose()


@pytest.fixture
def schema() -> str:
    return f"as_agg_{uuid.uuid4().hex[:8]}"


def run_pending(store: Store, batch_id: uuid.UUID, runner: BatchRunner | None = None):
    runner = runner or BatchRunner(store, heartbeat_seconds=0.2)
    with store.session() as s:
        assert queue.claim_batch(s, batch_id, runner.worker_id) is not None
    return runner.run(batch_id)


def instances_by_name(store: Store, cube_id: uuid.UUID) -> dict[str, list]:
    with store.session() as s:
        result = {}
        for d in aggregates.cube_definitions(s, cube_id):
            result[d.unique_name] = aggregates.definition_instances(s, d.id)
            for i in result[d.unique_name]:
                s.expunge(i)
        return result


def active_of(store: Store, cube_id: uuid.UUID) -> dict[str, object]:
    return {
        name: next((i for i in insts if i.status == InstanceStatus.ACTIVE.value), None)
        for name, insts in instances_by_name(store, cube_id).items()
    }


def specs_of(store: Store, cube_id: uuid.UUID) -> dict[str, DefinitionSpec]:
    with store.session() as s:
        return {
            d.unique_name: DefinitionSpec.from_dict(d.spec)
            for d in aggregates.cube_definitions(s, cube_id, buildable=True)
        }


# Spark builds separately only: its staging tables (what shared scans add) have their own
# tests in tests/warehouse, and each Spark build here costs a minute of the suite.
@pytest.mark.parametrize(
    ("warehouse_url", "shared_scans"),
    [
        pytest.param("duckdb", False, id="duckdb-separate"),
        pytest.param("duckdb", True, id="duckdb-shared-scans"),
        pytest.param("postgres", False, id="postgres-separate"),
        pytest.param("postgres", True, id="postgres-shared-scans"),
        pytest.param("spark", False, id="spark-separate", marks=pytest.mark.spark),
    ],
    indirect=["warehouse_url"],
)
def test_first_build_equals_hand_written_sql(
    store, sml_tpch, tmp_path, warehouse_url, schema, shared_scans
):
    result = publish_tpch(store, make_repo(sml_tpch, tmp_path / "repo"), warehouse_url, schema)
    cube_id = result.cubes["Retail TPCH"]
    assert len(result.queued_batches) == 1
    runner = BatchRunner(store, heartbeat_seconds=0.2, shared_scans=shared_scans)
    report = run_pending(store, result.queued_batches[0], runner)
    assert report.status is BatchStatus.DONE, report.message
    sources = {r.name: r.source for r in report.steps}
    # the lineitem aggregates that nothing else can serve read the base tables: each on its
    # own, or all in one GROUPING SETS scan
    from_base = "shared scan" if shared_scans else None
    for name in ("li_ship_month_supplier_region", "li_parts_by_order_year", "system_lineitem_all"):
        assert sources[name] == from_base, sources
    assert sources["li_ship_year"] == "li_ship_month_supplier_region"
    active = active_of(store, cube_id)
    specs = specs_of(store, cube_id)
    assert all(active.values()), {n: a for n, a in active.items() if a is None}
    with open_warehouse(warehouse_url) as wh:
        for name, hand in HAND_SQL.items():
            inst = active[name]
            cols = ", ".join(f'"{c}"' for c in COLUMNS.get(name, output_columns(specs[name])))
            ours = wh.fetch_all(f'SELECT {cols} FROM "{schema}"."{inst.table_name}"')
            assert normalize(ours) == normalize(wh.fetch_all(hand)), name
            assert inst.number_of_rows == len(ours)
            assert inst.table_name.startswith(f"as_agg_{inst.id.hex[:8]}_")
        # the ship-year aggregate was rolled up from the finer ship-month one
        year, month = active["li_ship_year"], active["li_ship_month_supplier_region"]
        assert year.source_instance_id == month.id
        assert month.table_name in year.sql
        # averages and standard deviations computed from the stored partials equal the
        # warehouse's own AVG and STDDEV_SAMP over the base rows
        key = output_columns(specs["li_ship_year"])[0]
        cols = f'"{key}", m_l_quantity_avg__sum, m_l_quantity_avg__count, '
        cols += "m_l_discount_std__count, m_l_discount_std__sum, m_l_discount_std__sumsq"
        from_partials = [
            (y, float(q_sum) / q_n, math.sqrt((float(xx) - float(x) ** 2 / n) / (n - 1)))
            for y, q_sum, q_n, n, x, xx in wh.fetch_all(
                f'SELECT {cols} FROM "{schema}"."{year.table_name}"'
            )
        ]
        direct = wh.fetch_all(
            f"""SELECT d."YEAR", AVG(l."L_QUANTITY"), STDDEV_SAMP(l."L_DISCOUNT")
            {LINEITEM_JOINS} GROUP BY 1"""
        )
        assert normalize(from_partials) == normalize(direct)
        tables = set(wh.list_tables(schema, "as_agg_"))
    assert tables == {a.table_name for a in active.values()}
    with store.session() as s:
        batch = batches.get_batch(s, report.batch_id)
        assert batch.start_time and batch.end_time and batch.end_time >= batch.start_time


def test_rebuild_estimates_replaces_atomically_and_drops_old_tables(
    store, sml_tpch, tmp_path, warehouse_url, schema
):
    result = publish_tpch(store, make_repo(sml_tpch, tmp_path / "repo"), warehouse_url, schema)
    cube_id = result.cubes["Retail TPCH"]
    run_pending(store, result.queued_batches[0])
    first = active_of(store, cube_id)
    with store.session() as s:
        org_settings.set_setting(s, "default", "aggregates.instance.drop.graceSeconds", "0")
    runner = BatchRunner(store, heartbeat_seconds=0.2)
    report = build_now(store, runner, "default", cube_id, BatchType.FULL_REBUILD)
    assert report.status is BatchStatus.DONE, report.message
    second = active_of(store, cube_id)
    for name, inst in second.items():
        assert inst.id != first[name].id
        old = next(i for i in instances_by_name(store, cube_id)[name] if i.id == first[name].id)
        assert old.status == InstanceStatus.DELETED.value and old.table_dropped_at is not None
    with store.session() as s:
        # the estimate is the last build time of each aggregate the batch rebuilds
        expected = math.ceil(sum(i.build_duration for i in first.values()))
        assert batches.get_batch(s, report.batch_id).estimate_time == expected
        assert expected >= 1
    with open_warehouse(warehouse_url) as wh:
        assert set(wh.list_tables(schema, "as_agg_")) == {i.table_name for i in second.values()}


def own_customer_repo(
    sml_tpch: Path, tmp_path: Path, url: str, schema: str, aggregates: list | None = None
) -> tuple[Path, str]:
    """The TPC-H repo whose customer dataset reads a copy owned by the test (which may
    then break or empty it), and that copy's table name."""
    own = f"CUST_{uuid.uuid4().hex[:6]}"
    with open_warehouse(url) as wh:
        wh.ensure_schema(schema)
        wh.execute(f'CREATE TABLE "{schema}"."{own}" AS SELECT * FROM "TPCH_SF1"."CUSTOMER"')
    repo = make_repo(sml_tpch, tmp_path / "repo", aggregates)
    replace_in(
        repo, "datasets/customer.yml", "table: CUSTOMER", f'sql: SELECT * FROM "{schema}"."{own}"'
    )
    return repo, own


def only(name: str) -> list[dict]:
    return [a for a in AGGREGATES if a["unique_name"] == name]


def test_a_broken_dataset_fails_only_its_aggregates(
    store, sml_tpch, tmp_path, warehouse_url, schema
):
    repo, own = own_customer_repo(sml_tpch, tmp_path, warehouse_url, schema)
    result = publish_tpch(store, repo, warehouse_url, schema)
    cube_id = result.cubes["Retail TPCH"]
    assert run_pending(store, result.queued_batches[0]).status is BatchStatus.DONE
    before = active_of(store, cube_id)
    with open_warehouse(warehouse_url) as wh:
        wh.execute(f'DROP TABLE "{schema}"."{own}"')
    with store.session() as s:
        org_settings.set_setting(s, "default", "aggregates.instance.drop.graceSeconds", "0")
    report = build_now(store, BatchRunner(store), "default", cube_id, BatchType.FULL_REBUILD)
    assert report.status is BatchStatus.FAILED
    failed = {r.name for r in report.steps if r.status is InstanceStatus.FAILED}
    assert failed == {"customers_by_region", "orders_customer_region", "system_customer_all"}
    assert all(own.lower() in (r.error or "").lower() for r in report.steps if r.name in failed)
    assert "3 failed" in report.message
    after = active_of(store, cube_id)
    for name in failed:
        assert after[name].id == before[name].id  # the previous instance stays active
    with open_warehouse(warehouse_url) as wh:
        tables = set(wh.list_tables(schema, "as_agg_"))
    assert tables == {a.table_name for a in after.values()}  # no stray tables


def test_outcome_guard_keeps_a_good_table(store, sml_tpch, tmp_path, warehouse_url, schema):
    # an aggregate with a grain, so an emptied source gives an empty table
    repo, own = own_customer_repo(
        sml_tpch, tmp_path, warehouse_url, schema, only("customers_by_region")
    )
    result = publish_tpch(store, repo, warehouse_url, schema)
    cube_id = result.cubes["Retail TPCH"]
    run_pending(store, result.queued_batches[0])
    good = active_of(store, cube_id)["customers_by_region"]
    with open_warehouse(warehouse_url) as wh:
        wh.execute(f'TRUNCATE TABLE "{schema}"."{own}"')  # Spark deletes no rows of Parquet
    report = build_now(store, BatchRunner(store), "default", cube_id, BatchType.FULL_REBUILD)
    step = next(r for r in report.steps if r.name == "customers_by_region")
    assert step.status is InstanceStatus.FAILED and "outcome guard" in step.error
    assert active_of(store, cube_id)["customers_by_region"].id == good.id


def test_cancel_mid_build_leaves_nothing_partial(store, sml_tpch, tmp_path, warehouse_url, schema):
    result = publish_tpch(store, slow_repo(sml_tpch, tmp_path / "repo"), warehouse_url, schema)
    batch_id = result.queued_batches[0]
    cancel_at = []

    def cancel_soon() -> None:
        time.sleep(1.0)
        with store.session() as s:
            batches.cancel_or_request(s, batch_id)
        cancel_at.append(time.monotonic())

    threading.Thread(target=cancel_soon, daemon=True).start()
    report = run_pending(store, batch_id, BatchRunner(store, heartbeat_seconds=0.2))
    assert report.status is BatchStatus.CANCELLED, report.message
    assert time.monotonic() - cancel_at[0] < 5
    cancelled = [r for r in report.steps if r.status is InstanceStatus.CANCELLED]
    assert cancelled, report.steps
    with open_warehouse(warehouse_url) as wh:
        # aggregates built on other connections meanwhile (PostgreSQL) are active
        assert wh.list_tables(schema, "as_agg_") == sorted(
            a.table_name for a in active_of(store, result.cubes["Retail TPCH"]).values() if a
        )
    with store.session() as s:
        assert batches.get_batch(s, batch_id).status == BatchStatus.CANCELLED.value


def test_timeout_fails_the_aggregate_cleanly(store, sml_tpch, tmp_path, warehouse_url, schema):
    result = publish_tpch(store, slow_repo(sml_tpch, tmp_path / "repo"), warehouse_url, schema)
    with store.session() as s:
        org_settings.set_setting(s, "default", "aggregates.build.timeoutSeconds", "1")
    started = time.monotonic()
    report = run_pending(store, result.queued_batches[0])
    assert time.monotonic() - started < 20
    slow = [r for r in report.steps if r.name in ("customers_by_region", "system_customer_all")]
    assert slow and all(r.status is InstanceStatus.FAILED for r in slow)
    assert all("timed out after 1 s" in r.error for r in slow)
    with open_warehouse(warehouse_url) as wh:
        tables = set(wh.list_tables(schema, "as_agg_"))
    active = active_of(store, result.cubes["Retail TPCH"])
    assert tables == {a.table_name for a in active.values() if a}


def test_datasets_in_two_warehouses_make_the_definition_invalid(
    store, sml_tpch, tmp_path, tpch_duckdb, schema
):
    result = publish_tpch(store, make_repo(sml_tpch, tmp_path / "repo"), tpch_duckdb, schema)
    with store.session() as s:
        other = f"duckdb:///{tmp_path / 'other.duckdb'}"
        catalog.upsert_connection(s, "default", "Connection - DateCustom", other)
    report = run_pending(store, result.queued_batches[0])
    invalid = {r.name for r in report.steps if r.status is InstanceStatus.INVALID}
    assert invalid == {"li_ship_month_supplier_region", "li_ship_year", "li_parts_by_order_year"}
    step = next(r for r in report.steps if r.name == "li_ship_year")
    assert "different warehouses" in step.error and "Connection - DateCustom" in step.error
    assert report.status is BatchStatus.FAILED


def test_republish_invalidates_and_next_batch_drops_the_table(
    store, sml_tpch, tmp_path, tpch_duckdb, schema
):
    result = publish_tpch(store, make_repo(sml_tpch, tmp_path / "repo"), tpch_duckdb, schema)
    cube_id = result.cubes["Retail TPCH"]
    run_pending(store, result.queued_batches[0])
    before = active_of(store, cube_id)
    kept = [a for a in AGGREGATES if a["unique_name"] != "customers_by_region"]
    changed = [dict(a) for a in kept]
    changed[1] = {**changed[1], "metrics": ["m_Revenue_sum"]}  # li_ship_year changes
    again = publish_path(store, make_repo(sml_tpch, tmp_path / "repo2", changed))
    changes = {c.definition: c.change.value for c in again.changes}
    assert changes["customers_by_region"] == "removed"
    assert changes["li_ship_year"] == "changed"
    assert changes["li_ship_month_supplier_region"] == "unchanged"
    now = instances_by_name(store, cube_id)
    assert now["customers_by_region"][0].status == InstanceStatus.INVALID.value
    assert now["li_ship_year"][0].status == InstanceStatus.PENDING.value
    assert active_of(store, cube_id)["li_ship_month_supplier_region"].id == (
        before["li_ship_month_supplier_region"].id
    )
    report = run_pending(store, again.queued_batches[0])
    assert [r.name for r in report.steps] == ["li_ship_year"]
    with open_warehouse(tpch_duckdb) as wh:
        tables = set(wh.list_tables(schema, "as_agg_"))
    assert before["customers_by_region"].table_name not in tables
    assert before["li_ship_year"].table_name not in tables
