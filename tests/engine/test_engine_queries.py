"""Semantic queries on real DuckDB, PostgreSQL and Spark: answers from aggregates equal
answers from the base tables, proven on random queries over the example TPC-H model."""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aggsched.engine.builds import BatchRunner, build_now
from aggsched.engine.publish import publish_path
from aggsched.engine.queries import QueryFailed, QueryRefused, QueryService
from aggsched.examples import TPCH_DUCKDB
from aggsched.planning.plan import BatchType
from aggsched.planning.query import AttributeRef, Condition, Logical, OrderBy, Query
from aggsched.store import Store, aggregates, catalog, org_settings, queue
from aggsched.store import queries as query_log
from aggsched.store.models import BatchStatus
from aggsched.warehouse import open_warehouse
from engine.test_engine_builds import WAREHOUSES

VALUES = {
    "Return Flag": ["A", "N", "R"],
    "Ship Mode": ["AIR", "MAIL", "RAIL", "SHIP", "TRUCK"],
    "Supplier Region": ["AFRICA", "AMERICA", "ASIA", "EUROPE", "MIDDLE EAST"],
    "Market Segment": ["AUTOMOBILE", "BUILDING", "FURNITURE", "HOUSEHOLD", "MACHINERY"],
    "Ship Year": ["1993", "1995", "1997"],
    "Order Year": ["1992", "1994", "1996"],
    "Order Priority": ["1-URGENT", "3-MEDIUM", "5-LOW"],
}
LINEITEM_ATTRIBUTES = ["Ship Year", "Ship Month", "Ship Quarter", "Supplier Region",
                       "Supplier Nation", "Return Flag", "Ship Mode", *(
                           ["Market Segment", "Order Year", "Order Priority"])]  # fmt: skip
ORDER_ATTRIBUTES = ["Market Segment", "Order Year", "Order Priority", "Customer Region"]
LINEITEM_METRICS = ["revenue", "quantity", "avg_discount", "max_price", "line_count"]
#: random queries per warehouse (default 30): each Spark query is a job of ~0.5-2 s
EXAMPLES = {"spark": 12}


class Example:
    """The example project published and built on one warehouse, with a query service."""

    def __init__(self, store: Store, warehouse: str, url: str, schema: str) -> None:
        self.store, self.warehouse, self.url, self.schema = store, warehouse, url, schema
        with store.session() as s:
            for name in ("tpch", "calendar"):
                catalog.upsert_connection(s, "default", name, url, aggregate_schema=schema)
        result = publish_path(store, TPCH_DUCKDB)
        self.cube = result.cubes["Sales"]
        runner = BatchRunner(store, heartbeat_seconds=0.2)
        (batch_id,) = result.queued_batches
        with store.session() as s:
            assert queue.claim_batch(s, batch_id, runner.worker_id) is not None
        assert runner.run(batch_id).status is BatchStatus.DONE
        self.service = QueryService(store)

    def both(self, query: Query):
        ours = self.service.run("default", self.cube, query)
        base = self.service.run("default", self.cube, query, use_aggregates=False)
        return ours, base


@pytest.fixture(scope="module", params=WAREHOUSES)
def example(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Example]:
    url = request.getfixturevalue(f"tpch_{request.param}")
    store = Store.open(f"sqlite:///{tmp_path_factory.mktemp('q') / 'meta.db'}")
    ex = Example(store, request.param, url, f"as_agg_{uuid.uuid4().hex[:8]}")
    yield ex
    ex.service.close()
    store.dispose()


def same(a: list[tuple], b: list[tuple]) -> bool:
    """Equal row multisets, floats within 1e-9 relative."""
    if len(a) != len(b):
        return False
    for x, y in zip(sorted(a, key=repr), sorted(b, key=repr), strict=True):
        for u, v in zip(x, y, strict=True):
            if isinstance(u, float) or isinstance(v, float):
                if u is None or v is None or not math.isclose(u, v, rel_tol=1e-9, abs_tol=1e-12):
                    return False
            elif u != v:
                return False
    return True


@st.composite
def queries(draw: st.DrawFn) -> Query:
    """Random queries over the example model: lineitem metrics (sometimes with orders'),
    grouped by lineitem attributes or the conformed order attributes, filtered on
    attributes and metrics, ordered."""
    multi = draw(st.booleans())
    pool = ORDER_ATTRIBUTES[:3] if multi else LINEITEM_ATTRIBUTES
    metrics = draw(st.lists(st.sampled_from(LINEITEM_METRICS), min_size=1, max_size=3, unique=True))
    if multi:
        metrics.append("order_total")
    if draw(st.integers(0, 5)) == 0 and not multi:
        metrics = ["order_count"]  # a distinct count: only an aggregate of exactly the grain
        pool = ["Market Segment", "Order Year", "Ship Year"]
    attrs = draw(st.lists(st.sampled_from(pool), max_size=3, unique=True))
    conditions: list[Condition | Logical] = []
    for name in draw(st.lists(st.sampled_from([a for a in pool if a in VALUES]), max_size=2,
                              unique=True)):  # fmt: skip
        op = draw(st.sampled_from(["=", "!=", "in", "not_in", ">=", "is_not_null"]))
        values: tuple = ()
        if op in ("in", "not_in"):
            values = tuple(draw(st.lists(st.sampled_from(VALUES[name]), min_size=1,
                                         max_size=2, unique=True)))  # fmt: skip
        elif op != "is_not_null":
            values = (draw(st.sampled_from(VALUES[name])),)
        conditions.append(Condition(AttributeRef(name), op, values))
    if conditions and draw(st.booleans()) and len(conditions) == 2:
        conditions = [Logical("or", tuple(conditions))]
    if draw(st.booleans()) and metrics[0] != "order_count":
        conditions.append(Condition(metrics[0], ">", (draw(st.sampled_from([0, 0.05, 1e6])),)))
    filter_ = None
    if conditions:
        filter_ = conditions[0] if len(conditions) == 1 else Logical("and", tuple(conditions))
    order = tuple(OrderBy(m, draw(st.booleans())) for m in draw(
        st.lists(st.sampled_from(metrics + attrs), max_size=2, unique=True)))  # fmt: skip
    return Query(tuple(metrics), tuple(AttributeRef(a) for a in attrs), filter_, order)


def test_random_queries_answer_as_the_base_tables_do(example: Example) -> None:
    @settings(max_examples=EXAMPLES.get(example.warehouse, 30), deadline=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(query=queries())
    def answers_alike(query: Query) -> None:
        ours, base = example.both(query)
        assert all(p.kind == "base" for p in base.served_by)
        assert [c for c, _ in ours.columns] == [c for c, _ in base.columns]
        assert same(ours.rows, base.rows), (query, ours.sql, base.sql)

    answers_alike()


def test_random_queries_are_mostly_served_by_aggregates(example: Example) -> None:
    """The property test above is worth something only if aggregates answer queries:
    every query it can draw that an aggregate covers is served by one."""
    covered = [
        Query(("revenue", "quantity"), (AttributeRef("Ship Year"),)),
        Query(("revenue",), (AttributeRef("Return Flag"),),
              Condition(AttributeRef("Ship Mode"), "in", ("AIR", "RAIL"))),
        Query(("avg_discount", "max_price"), (AttributeRef("Supplier Region"),),
              Condition(AttributeRef("Ship Year"), "=", ("1995",))),
        Query(("order_count",), (AttributeRef("Market Segment"), AttributeRef("Order Year"))),
        Query(("quantity",), ()),
    ]  # fmt: skip
    for query in covered:
        ours, base = example.both(query)
        assert ours.served_from == "aggregate", query
        assert same(ours.rows, base.rows), query


def test_cheapest_covering_aggregate_and_exact_grain_only_for_distinct_counts(
    example: Example,
) -> None:
    (year,) = example.service.run(
        "default", example.cube, Query(("revenue",), (AttributeRef("Ship Year"),))
    ).served_by
    assert year.definition == "sales_by_ship_year"  # not the finer month x region one
    # a distinct count at a coarser grain than any aggregate: only the base tables know
    (coarse,) = example.service.run(
        "default", example.cube, Query(("order_count",), (AttributeRef("Market Segment"),))
    ).served_by
    assert coarse.kind == "base"
    # filtered on an attribute it does not group by: re-aggregation would be wrong
    filtered = Query(
        ("order_count",), (AttributeRef("Market Segment"), AttributeRef("Order Year")),
        Condition(AttributeRef("Ship Mode"), "=", ("AIR",)),
    )  # fmt: skip
    (part,) = example.service.run("default", example.cube, filtered).served_by
    assert part.kind == "base"


def test_multi_fact_query_joins_facts_on_the_conformed_grain(example: Example) -> None:
    query = Query(("revenue", "order_total"), (AttributeRef("Order Year"),))
    ours, base = example.both(query)
    assert [p.fact for p in ours.served_by] == ["lineitem", "orders"]
    assert same(ours.rows, base.rows)
    with open_warehouse(example.url) as wh:
        hand = wh.fetch_all(
            """SELECT d."YEAR_NAME", SUM(o."O_TOTALPRICE") FROM "TPCH_SF1"."ORDERS" o
               LEFT JOIN "PUBLIC"."DATECUSTOM" d ON o."O_ORDERDATE" = CAST(d."PK_DATE" AS DATE)
               GROUP BY 1"""
        )
    assert same([(r[0], r[2]) for r in ours.rows], [(y, float(t)) for y, t in hand])


def test_bad_queries_are_refused_with_what_and_where(example: Example) -> None:
    run = example.service.run
    with pytest.raises(QueryRefused, match=r'unknown metric "revenu".*closest.*revenue'):
        run("default", example.cube, Query(("revenu",)))
    with pytest.raises(QueryRefused, match=r'unknown attribute "Ship Yeer".*Ship Year') as bad:
        run("default", example.cube, Query(("revenue",), (AttributeRef("Ship Yeer"),)))
    assert bad.value.field == "attributes[0]"
    with pytest.raises(QueryRefused, match='not reachable from dataset "orders"') as bad:
        run("default", example.cube, Query(("order_total",), (AttributeRef("Ship Mode"),)))
    assert "reachable from: lineitem" in str(bad.value)
    with pytest.raises(QueryRefused, match="limit must be between 0 and 100,000"):
        run("default", example.cube, Query(("revenue",), limit=100_001))
    with pytest.raises(QueryRefused, match="or-group mixes"):
        mixed = Logical("or", (Condition(AttributeRef("Ship Mode"), "=", ("AIR",)),
                               Condition("revenue", ">", (1,))))  # fmt: skip
        run("default", example.cube, Query(("revenue",), filter=mixed))


def test_warehouse_errors_are_reported_not_hidden(example: Example) -> None:
    bad = Query(("revenue",), (AttributeRef("Ship Year"),),
                Condition("revenue", ">", ("not a number",)))  # fmt: skip
    with pytest.raises(QueryFailed) as failed:
        example.service.run("default", example.cube, bad)
    assert not failed.value.timed_out
    with example.store.session() as s:
        rows, _ = query_log.list_queries(s, "default", served_by="error", limit=1)
        assert rows and rows[0].error


def test_every_query_is_logged_with_its_grain_and_hits(example: Example) -> None:
    query = Query(("revenue",), (AttributeRef("Return Flag"),),
                  Condition(AttributeRef("Ship Mode"), "=", ("AIR",)))  # fmt: skip
    result = example.service.run("default", example.cube, query, username="ana")
    with example.store.session() as s:
        rows, _ = query_log.list_queries(s, "default", username="ana", limit=5)
        row = rows[0]
        assert row.id == result.query_id and row.served_by == "aggregate"
        assert row.metrics == {"names": ["revenue"]}
        assert row.filter_attributes == {"names": ["Ship Mode"]}
        (part,) = row.grain["parts"]
        assert [a[0] for a in part["attributes"]] == ["Return Flag", "Ship Mode"]
        assert part["outputs"] == 1
        (served,) = result.served_by
        hits = query_log.instance_hits(s, [served.instance_id])
        assert hits[served.instance_id].hits >= 1


def test_views_follow_the_active_instance(example: Example) -> None:
    """Each definition has a view named after it, pointing at the active table; a full
    rebuild switches it to the new table in the activating step."""
    with example.store.session() as s:
        (d,) = [
            d for d in aggregates.cube_definitions(s, example.cube)
            if d.unique_name == "sales_by_ship_year"
        ]  # fmt: skip
        before = d.view_table
        assert d.view_name == "sales_by_ship_year" and d.view_schema == example.schema
    with open_warehouse(example.url) as wh:
        view = wh.fetch_all(f'SELECT COUNT(*) FROM "{example.schema}"."sales_by_ship_year"')
        table = wh.fetch_all(f'SELECT COUNT(*) FROM "{example.schema}"."{before}"')
        assert view == table and view[0][0] > 0
    runner = BatchRunner(example.store, heartbeat_seconds=0.2)
    report = build_now(example.store, runner, "default", example.cube, BatchType.FULL_REBUILD)
    assert report.status is BatchStatus.DONE
    with example.store.session() as s:
        d = aggregates.get_definition(s, "default", d.id)
        assert d.view_table != before
        active = aggregates.active_instance(s, d.id)
        assert active.table_name == d.view_table
    with open_warehouse(example.url) as wh:
        assert wh.fetch_all(
            f'SELECT COUNT(*) FROM "{example.schema}"."sales_by_ship_year"'
        ) == wh.fetch_all(f'SELECT COUNT(*) FROM "{example.schema}"."{d.view_table}"')


def test_query_log_retention_prunes_old_queries(example: Example) -> None:
    """Maintenance deletes logged queries older than queries.retentionDays."""
    import datetime as dt

    from aggsched.engine.maintenance import run_maintenance

    example.service.run("default", example.cube, Query(("revenue",)))
    with example.store.session() as s:
        org_settings.set_setting(s, "default", "queries.retentionDays", "1")
        _, before = query_log.list_queries(s, "default")
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=2)
    report = run_maintenance(example.store, "default", clock=lambda: later)
    (item,) = [i for i in report.items if i.name == "query_log"]
    assert item.count == before
    with example.store.session() as s:
        assert query_log.list_queries(s, "default")[1] == 0
        org_settings.set_setting(s, "default", "queries.retentionDays", "30")


def test_timeout_cancels_the_query(tmp_path: Path, tpch_duckdb: str, sml_tpch: Path) -> None:
    """A query slower than queries.timeoutSeconds is cancelled in the warehouse."""
    from engine.tpch_project import publish_tpch, slow_repo

    store = Store.open(f"sqlite:///{tmp_path / 'meta.db'}")
    result = publish_tpch(store, slow_repo(sml_tpch, tmp_path / "repo"), tpch_duckdb)
    with store.session() as s:
        org_settings.set_setting(s, "default", "queries.timeoutSeconds", "1")
    service = QueryService(store)
    try:
        query = Query(("m_c_custkey_count",), (AttributeRef("Customer Region"),))
        with pytest.raises(QueryFailed) as failed:
            service.run("default", result.cubes["Retail TPCH"], query, use_aggregates=False)
        assert failed.value.timed_out
    finally:
        service.close()
        store.dispose()
