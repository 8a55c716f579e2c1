"""Incremental rebuilds on real data: after appends, each table equals a full rebuild."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import pytest

from aggsched.engine.builds import BatchRunner, build_now
from aggsched.planning import sqlgen, watermark
from aggsched.planning.plan import BatchType, StepMode
from aggsched.store import Store, org_settings
from aggsched.store.models import BatchStatus, InstanceStatus
from aggsched.warehouse import dialect_for_url, open_warehouse
from engine.test_engine_builds import WAREHOUSES, active_of, normalize, run_pending, specs_of
from engine.tpch_project import AGGREGATES, make_repo, publish_tpch
from sml.helpers import replace_in

LINEITEM_COLUMNS = [
    "L_ORDERKEY", "L_PARTKEY", "L_SUPPKEY", "L_LINENUMBER", "L_QUANTITY", "L_EXTENDEDPRICE",
    "L_DISCOUNT", "L_TAX", "L_RETURNFLAG", "L_LINESTATUS", "L_SHIPDATE", "L_COMMITDATE",
    "L_RECEIPTDATE", "L_SHIPINSTRUCT", "L_SHIPMODE", "L_COMMENT",
]  # fmt: skip
INCREMENTAL = ["li_ship_month_supplier_region", "li_ship_year"]


@pytest.fixture(params=WAREHOUSES)
def warehouse_url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue(f"tpch_{request.param}")


def append(url: str, table: str, shift_days: int, every: int, since: str = "1900-01-01") -> int:
    """Copy every `every`-th row shipped on or after `since` with its ship date moved by
    `shift_days`; returns the number of rows added."""
    cols = ", ".join(
        f"CAST(\"L_SHIPDATE\" + INTERVAL '{shift_days} days' AS DATE)"
        if c == "L_SHIPDATE"
        else f'"{c}"'
        for c in LINEITEM_COLUMNS
    )
    with open_warehouse(url) as wh:
        before = wh.row_count("TPCH_SF1", table)
        wh.execute(
            f'INSERT INTO "TPCH_SF1"."{table}" SELECT {cols} FROM "TPCH_SF1"."{table}" '
            f'WHERE "L_ORDERKEY" % {every} = 0 AND "L_SHIPDATE" >= DATE \'{since}\''
        )
        return wh.row_count("TPCH_SF1", table) - before


def test_incremental_rebuild_equals_full_rebuild(sml_tpch, tmp_path: Path, warehouse_url: str):
    own = f"LINEITEM_{uuid.uuid4().hex[:6]}"
    schema = f"as_agg_{uuid.uuid4().hex[:8]}"
    with open_warehouse(warehouse_url) as wh:
        wh.execute(f'CREATE TABLE "TPCH_SF1"."{own}" AS SELECT * FROM "TPCH_SF1"."LINEITEM"')
    try:
        repo = make_repo(sml_tpch, tmp_path / "repo", [*AGGREGATES[:3]])
        replace_in(
            repo, "datasets/lineitem.yml", "table: LINEITEM",
            f"table: {own}\nincremental:\n  column: L_SHIPDATE\n  grace_period: 1w",
        )  # fmt: skip
        store = Store.open(f"sqlite:///{tmp_path / 'meta.db'}")
        result = publish_tpch(store, repo, warehouse_url, schema)
        cube_id = result.cubes["Retail TPCH"]
        assert run_pending(store, result.queued_batches[0]).status is BatchStatus.DONE
        first = active_of(store, cube_id)
        marks = {n: watermark.decode(first[n].watermark) for n in INCREMENTAL}
        assert first["li_parts_by_order_year"].watermark is None  # count distinct: not incremental

        latest = marks["li_ship_year"]
        # ~1% new rows, all shipped after the watermark: last year's, a year later
        year_ago = (latest - dt.timedelta(days=364)).isoformat()
        added = append(warehouse_url, own, 365, 14, year_ago)
        with store.session() as s:  # replaced tables go at once, so the check below is exact
            org_settings.set_setting(s, "default", "aggregates.instance.drop.graceSeconds", "0")
        # late rows, shipped up to 3 days before the watermark: inside the 1-week grace
        added += append(warehouse_url, own, -3, 7, (latest - dt.timedelta(days=3)).isoformat())
        assert added > 0
        report = build_now(
            store, BatchRunner(store), "default", cube_id, BatchType.INCREMENTAL_REBUILD
        )
        assert report.status is BatchStatus.DONE, report.message
        modes = {r.name: r.mode for r in report.steps}
        assert modes["li_ship_month_supplier_region"] is StepMode.INCREMENTAL
        assert modes["li_ship_year"] is StepMode.INCREMENTAL
        assert modes["li_parts_by_order_year"] is StepMode.FULL
        second = active_of(store, cube_id)
        specs = specs_of(store, cube_id)
        target = sqlgen.Target(dialect_for_url(warehouse_url))
        with open_warehouse(warehouse_url) as wh:
            for name in [*INCREMENTAL, "li_parts_by_order_year", "system_lineitem_all"]:
                inst = second[name]
                assert inst.id != first[name].id
                cols = ", ".join(f'"{c}"' for c in sqlgen.output_columns(specs[name]))
                ours = wh.fetch_all(f'SELECT {cols} FROM "{schema}"."{inst.table_name}"')
                full = wh.fetch_all(
                    sqlgen.render(sqlgen.base_select(specs[name], target), wh.dialect)
                )
                assert normalize(ours) == normalize(full), name
            for name in INCREMENTAL:
                assert watermark.decode(second[name].watermark) > marks[name]
                # updated in place, atomically: same table, a new instance record
                assert second[name].table_name == first[name].table_name
                sql = second[name].sql.upper()
                if wh.supports_transactions:  # DELETE + INSERT in one transaction
                    assert sql.startswith("DELETE FROM") and "INSERT INTO" in sql
                else:  # Spark: one statement swapping in the recomputed partitions
                    assert sql.startswith("INSERT OVERWRITE TABLE") and "PARTITION(" in sql
            tables = set(wh.list_tables(schema, "as_agg_"))
        assert tables == {i.table_name for i in second.values()}
    finally:
        with open_warehouse(warehouse_url) as wh:
            wh.drop_table("TPCH_SF1", own)
    statuses = {r.status for r in report.steps}
    assert statuses == {InstanceStatus.ACTIVE}


def test_a_lost_incremental_build_never_drops_the_live_table(sml_tpch, tmp_path, tpch_duckdb):
    """An incremental build works on the active table under a new instance; when its
    worker is lost, recovery fails that instance, and cleanup must leave the table alone."""
    from aggsched.engine.builds import drop_expired_tables
    from aggsched.store import aggregates

    schema = f"as_agg_{uuid.uuid4().hex[:8]}"
    repo = make_repo(sml_tpch, tmp_path / "repo", [AGGREGATES[1]])
    replace_in(
        repo, "datasets/lineitem.yml", "table: LINEITEM",
        "table: LINEITEM\nincremental:\n  column: L_SHIPDATE\n  grace_period: 1w",
    )  # fmt: skip
    store = Store.open(f"sqlite:///{tmp_path / 'meta.db'}")
    result = publish_tpch(store, repo, tpch_duckdb, schema)
    cube_id = result.cubes["Retail TPCH"]
    run_pending(store, result.queued_batches[0])
    live = active_of(store, cube_id)["li_ship_year"]
    with store.session() as s:  # what a lost worker leaves: an in-place instance in progress
        definition = aggregates.get_definition(s, "default", live.definition_id)
        lost = aggregates.create_instance(
            s, definition, table_name=live.table_name, table_schema=live.table_schema
        )
        aggregates.set_instance_status(s, lost.id, InstanceStatus.INPROGRESS)
        lost.batch_id = result.queued_batches[0]
        aggregates.fail_unfinished_instances(s, result.queued_batches[0], "worker lost")
    assert drop_expired_tables(store, lambda url: open_warehouse(url)) == 0
    with open_warehouse(tpch_duckdb) as wh:
        assert live.table_name in wh.list_tables(schema, "as_agg_")
    assert active_of(store, cube_id)["li_ship_year"].id == live.id
