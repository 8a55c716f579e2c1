"""A tutorial-style SML model, published unchanged, on real DuckDB, PostgreSQL and Spark.

`sml_retail/` is written the way public SML tutorials are (role-played dates shared by
two facts, a SQL dataset of inventory snapshots, a semi-additive metric, percentile
quartiles, an aggregate whose relationships_path names another fact's relationship, two
metrics over the same column, a typo). Every aggregate that is built is compared with the
same aggregation written by hand; every one that cannot be built right is `invalid` with
its reason, and the rest of the model is published and built.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from aggsched.engine.builds import BatchRunner
from aggsched.engine.publish import Change, PublishError, publish_path
from aggsched.planning.sqlgen import output_columns
from aggsched.store import Store, aggregates, api_views, catalog, queue
from aggsched.store.models import BatchStatus
from aggsched.warehouse import open_warehouse
from engine.test_engine_builds import WAREHOUSES, active_of, normalize, specs_of

RETAIL = Path(__file__).parent / "sml_retail"
MODEL = "Retail Sales"

SALES_JOINS = """
FROM "TPCH_SF1"."LINEITEM" l
LEFT JOIN "PUBLIC"."DATECUSTOM" d ON l."L_SHIPDATE" = CAST(d."PK_DATE" AS DATE)"""
MONTH_BUCKET = """CAST(DATE_TRUNC('month', l."L_SHIPDATE") AS DATE)"""
NET = 'l."L_EXTENDEDPRICE" * (1 - l."L_DISCOUNT")'
INVENTORY = """(SELECT "L_PARTKEY" AS "INV_PART", "L_SHIPDATE" AS "INV_DATE",
  SUM("L_QUANTITY") AS "ON_HAND" FROM "TPCH_SF1"."LINEITEM" GROUP BY 1, 2)"""
SALES_MONTHS = f"""SELECT d."YEAR" AS y, d."YEAR_NAME" AS yn, d."MONTH" AS m,
  d."MONTH_NAME" AS mn, COUNT(*) AS n, SUM({NET}) AS rev {SALES_JOINS} GROUP BY 1, 2, 3, 4"""
ORDER_MONTHS = """SELECT d."YEAR" AS y, d."YEAR_NAME" AS yn, d."MONTH" AS m,
  d."MONTH_NAME" AS mn, COUNT(*) AS n, SUM(o."O_TOTALPRICE") AS tot,
  COUNT(o."O_ORDERKEY") AS cnt
FROM "TPCH_SF1"."ORDERS" o
LEFT JOIN "PUBLIC"."DATECUSTOM" d ON o."O_ORDERDATE" = CAST(d."PK_DATE" AS DATE)
GROUP BY 1, 2, 3, 4"""

HAND_SQL = {
    "sales_by_month_brand": f"""
SELECT d."MONTH", d."MONTH_NAME", d."YEAR", d."YEAR_NAME", p."P_BRAND", {MONTH_BUCKET},
  SUM(l."L_QUANTITY"), SUM({NET}), SUM(l."L_DISCOUNT"), COUNT(l."L_DISCOUNT")
{SALES_JOINS}
LEFT JOIN "TPCH_SF1"."PART" p ON l."L_PARTKEY" = p."P_PARTKEY"
GROUP BY 1, 2, 3, 4, 5, 6""",
    "quantity_by_year": f"""
SELECT d."YEAR", d."YEAR_NAME", {MONTH_BUCKET}, SUM(l."L_QUANTITY")
{SALES_JOINS} GROUP BY 1, 2, 3""",
    # two facts at one grain: a full outer join on it, never a cartesian product
    "sales_and_orders_by_month": f"""
WITH s AS ({SALES_MONTHS}), o AS ({ORDER_MONTHS})
SELECT COALESCE(s.y, o.y), COALESCE(s.yn, o.yn), COALESCE(s.m, o.m), COALESCE(s.mn, o.mn),
  s.n, s.rev, o.n, o.tot, o.cnt
FROM s FULL OUTER JOIN o ON s.y = o.y AND s.yn = o.yn AND s.m = o.m AND s.mn = o.mn""",
    "orders_by_year": """
SELECT d."YEAR", d."YEAR_NAME", SUM(o."O_TOTALPRICE")
FROM "TPCH_SF1"."ORDERS" o
LEFT JOIN "PUBLIC"."DATECUSTOM" d ON o."O_ORDERDATE" = CAST(d."PK_DATE" AS DATE)
GROUP BY 1, 2""",
    "inventory_by_day_brand": f"""
SELECT CAST(d."PK_DATE" AS DATE), d."DATE_NAME", p."P_BRAND", SUM(i."ON_HAND")
FROM {INVENTORY} i
LEFT JOIN "PUBLIC"."DATECUSTOM" d ON i."INV_DATE" = CAST(d."PK_DATE" AS DATE)
LEFT JOIN "TPCH_SF1"."PART" p ON i."INV_PART" = p."P_PARTKEY"
GROUP BY 1, 2, 3""",
}
INVALID = {
    "inventory_by_brand": 'semi-additive metric "on_hand" takes its last value over '
    '"Inventory Day"',
    "price_quartiles_by_year": "named_quantiles quartiles is not computed",
    "typo_metric": 'unknown metric "net_revenu"',
}


@pytest.fixture(params=WAREHOUSES)
def warehouse_url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue(f"tpch_{request.param}")


@pytest.fixture
def store(tmp_path: Path):
    store = Store.open(f"sqlite:///{tmp_path / 'meta.db'}")
    yield store
    store.dispose()


def publish_retail(store: Store, url: str, schema: str, **kwargs):
    with store.session() as s:
        for name in ("Connection - Retail", "Connection - Calendar"):
            catalog.upsert_connection(s, "default", name, url, aggregate_schema=schema)
    return publish_path(store, RETAIL, **kwargs)


def test_published_unchanged_bad_aggregates_invalid_the_rest_built_right(
    store: Store, warehouse_url: str
) -> None:
    schema = f"as_agg_{uuid.uuid4().hex[:8]}"
    result = publish_retail(store, warehouse_url, schema)
    cube_id = result.cubes[MODEL]
    invalid = {c.definition: c.reason for c in result.changes if c.change is Change.INVALID}
    assert set(invalid) == set(INVALID)
    for name, expected in INVALID.items():
        assert expected in invalid[name], invalid[name]
        assert "models/Retail Sales.yml:" in invalid[name]  # file and line
    runner = BatchRunner(store, heartbeat_seconds=0.2)
    (batch_id,) = result.queued_batches
    with store.session() as s:
        assert queue.claim_batch(s, batch_id, runner.worker_id) is not None
    report = runner.run(batch_id)
    assert report.status is BatchStatus.DONE, report.message
    assert {r.name for r in report.steps} >= set(HAND_SQL)
    assert not set(INVALID) & {r.name for r in report.steps}  # never built
    sources = {r.name: r.source for r in report.steps}
    # another metric name, the same SUM over the same column: rolled up, not rescanned
    assert sources["quantity_by_year"] == "sales_by_month_brand"
    active, specs = active_of(store, cube_id), specs_of(store, cube_id)
    with open_warehouse(warehouse_url) as wh:
        for name, hand in HAND_SQL.items():
            cols = ", ".join(f'"{c}"' for c in output_columns(specs[name]))
            ours = wh.fetch_all(f'SELECT {cols} FROM "{schema}"."{active[name].table_name}"')
            assert normalize(ours) == normalize(wh.fetch_all(hand)), name
            assert active[name].number_of_rows == len(ours)
    with store.session() as s:
        rows, _ = api_views.list_definitions(s, "default", cube_id=cube_id, status="invalid")
        assert {d.unique_name: d.invalid_reason for d in rows}.keys() == set(INVALID)
        statuses = api_views.definition_statuses(s, [d.id for d in rows])
        assert set(statuses.values()) == {"invalid"}


def test_strict_refuses_the_repository_and_stores_nothing(store: Store, tpch_duckdb: str):
    with pytest.raises(PublishError) as caught:
        publish_retail(store, tpch_duckdb, "as_agg_strict", strict=True)
    messages = [e.message for e in caught.value.errors]
    assert len(messages) == len(INVALID)
    with store.session() as s:
        assert catalog.list_projects(s, "default") == []


def test_republish_that_fixes_an_aggregate_makes_it_buildable(
    store: Store, tpch_duckdb: str, tmp_path: Path
) -> None:
    import shutil

    repo = Path(shutil.copytree(RETAIL, tmp_path / "retail"))
    first = publish_retail(store, tpch_duckdb, "as_agg_fix")
    model = repo / "models" / "Retail Sales.yml"
    model.write_text(model.read_text().replace("[net_revenu]", "[net_revenue]"))
    second = publish_path(store, repo)
    changes = {c.definition: c.change for c in second.changes}
    assert changes["typo_metric"] is Change.CHANGED
    assert changes["sales_by_month_brand"] is Change.UNCHANGED
    with store.session() as s:
        (fixed,) = [
            d
            for d in aggregates.cube_definitions(s, first.cubes[MODEL], buildable=True)
            if d.unique_name == "typo_metric"
        ]
        assert fixed.invalid_reason is None and fixed.spec["metrics"][0]["name"] == "net_revenue"


def test_queries_on_the_model_semi_additive_calculations_multi_fact(
    store: Store, warehouse_url: str
) -> None:
    """Queries over the same model: a semi-additive metric takes the last day's values
    (from base and from its aggregate alike), a calculation divides two facts' metrics,
    the multi-fact aggregate serves both facts' slices."""
    from aggsched.engine.queries import QueryRefused, QueryService
    from aggsched.planning.query import AttributeRef, Query

    schema = f"as_agg_{uuid.uuid4().hex[:8]}"
    result = publish_retail(store, warehouse_url, schema)
    cube = result.cubes[MODEL]
    runner = BatchRunner(store, heartbeat_seconds=0.2)
    (batch_id,) = result.queued_batches
    with store.session() as s:
        assert queue.claim_batch(s, batch_id, runner.worker_id) is not None
    assert runner.run(batch_id).status is BatchStatus.DONE
    service = QueryService(store)
    try:
        on_hand = Query(("on_hand",), (AttributeRef("Brand"),))
        ours = service.run("default", cube, on_hand)
        base = service.run("default", cube, on_hand, use_aggregates=False)
        assert ours.served_by[0].definition == "inventory_by_day_brand"
        with open_warehouse(warehouse_url) as wh:
            hand = wh.fetch_all(
                f"""WITH i AS (SELECT p."P_BRAND" AS b, CAST(d."PK_DATE" AS DATE) AS day,
                      inv."ON_HAND" AS q FROM {INVENTORY} inv
                    LEFT JOIN "PUBLIC"."DATECUSTOM" d ON inv."INV_DATE" = CAST(d."PK_DATE" AS DATE)
                    LEFT JOIN "TPCH_SF1"."PART" p ON inv."INV_PART" = p."P_PARTKEY"),
                  last AS (SELECT b, MAX(day) AS day FROM i GROUP BY b)
                SELECT i.b, SUM(i.q) FROM i JOIN last ON i.b = last.b AND i.day = last.day
                GROUP BY i.b"""
            )
            summed = wh.fetch_one(f'SELECT SUM("ON_HAND") FROM {INVENTORY} x')[0]
        assert normalize(ours.rows) == normalize(hand) == normalize(base.rows)
        assert sum(r[1] for r in ours.rows) < float(summed) / 10  # not summed over days

        per_order = Query(("Revenue per Order", "order_count"), (AttributeRef("Sale Year"),))
        ours = service.run("default", cube, per_order)
        base = service.run("default", cube, per_order, use_aggregates=False)
        assert {p.definition for p in ours.served_by} == {"sales_and_orders_by_month"}
        double = "DOUBLE" if warehouse_url.startswith("sc:") else "DOUBLE PRECISION"
        with open_warehouse(warehouse_url) as wh:
            hand = wh.fetch_all(
                f"""WITH s AS (SELECT d."YEAR_NAME" AS y, SUM({NET}) AS rev {SALES_JOINS}
                      GROUP BY 1),
                  o AS (SELECT d."YEAR_NAME" AS y, COUNT(o."O_ORDERKEY") AS n
                    FROM "TPCH_SF1"."ORDERS" o LEFT JOIN "PUBLIC"."DATECUSTOM" d
                    ON o."O_ORDERDATE" = CAST(d."PK_DATE" AS DATE) GROUP BY 1)
                SELECT s.y, CAST(s.rev AS {double}) / o.n, o.n
                FROM s FULL OUTER JOIN o ON s.y = o.y"""
            )
        assert normalize(ours.rows) == normalize(hand) == normalize(base.rows)
        with pytest.raises(QueryRefused, match="named_quantiles quartiles is not computed"):
            service.run("default", cube, Query(("price_quartiles",)))
    finally:
        service.close()
