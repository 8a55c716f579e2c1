"""`planning.navigate`: which aggregate answers a query, and that its SQL is right.

The choice is pure and tested without a warehouse. The SQL is run on an in-memory DuckDB
over a tiny hand-made star (a sales fact, a stores dimension some sales miss, NULL
quantities): a property test builds random aggregates, asks random queries, and checks
that the answer from aggregates, the answer from the base tables and a hand-written
GROUP BY with DuckDB's own aggregate functions all agree, for every calculation method.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aggsched.planning import navigate, sqlgen
from aggsched.planning.cube import CubeAttribute, CubeJoin, CubeSpec, grain_spec
from aggsched.planning.lattice import Candidate
from aggsched.planning.query import AttributeRef, Condition, Logical, OrderBy, Query
from aggsched.planning.resolve import resolve
from aggsched.sml import FACT_ALIAS
from planning.query_star import (
    ATTRS,
    COLUMN,
    CUBE,
    DERIVABLE,
    EXACT,
    METHODS,
    SALES_ROWS,
    STORES_ROWS,
    TARGET,
    Key,
    build,
    hand_sql,
    load,
    make_cube,
    run,
    same,
)


def plan(
    query: Query, candidates: list[Candidate[Key]], *, aggregates: bool = True
) -> navigate.Plan[Key]:
    return navigate.plan(resolve(CUBE, query), candidates, TARGET, use_aggregates=aggregates)


def q(metrics: list[str], attrs: list[str], flt: Any = None) -> Query:
    return Query(tuple(metrics), tuple(AttributeRef(a) for a in attrs), flt)


@pytest.fixture
def db() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    load(con, SALES_ROWS, STORES_ROWS)
    return con


# --- the choice ---------------------------------------------------------------------------


def cand(name: str, attrs: list[str], metrics: list[str], rows: int) -> Candidate[Key]:
    """A built aggregate as the navigator sees it (no table needed to choose)."""
    spec = grain_spec(CUBE, name, "sales", [(a, ATTRS[a].path) for a in attrs], metrics)
    return Candidate(Key(name), spec, rows)


def chosen_key(query: Query, candidates: list[Candidate[Key]]) -> str | None:
    (source,) = navigate.choose(resolve(CUBE, query), candidates)
    return None if source is None else source.key.table


def test_the_smallest_covering_aggregate_wins() -> None:
    fine = cand("by_day_city", ["Day", "City"], ["q_sum", "q_count"], 500)
    coarse = cand("by_city_region", ["City", "Region"], ["q_sum", "q_count"], 40)
    other = cand("by_region", ["Region"], ["q_sum", "q_max"], 2)
    pool = [fine, coarse, other]
    assert chosen_key(q(["q_sum", "avg_ratio"], ["City"]), pool) == "by_city_region"
    assert chosen_key(q(["q_sum"], ["Region"]), pool) == "by_region"
    assert chosen_key(q(["q_sum"], []), pool) == "by_region"
    # fewest rows, whatever the order they come in
    assert chosen_key(q(["q_sum"], ["City"]), [coarse, fine]) == "by_city_region"
    assert chosen_key(q(["q_sum"], ["City"]), [replace(coarse, rows=501), fine]) == "by_day_city"
    # a metric the smaller one lacks (q_count for the average) sends it to one that has it
    assert chosen_key(q(["avg_ratio"], ["Region"]), pool) == "by_city_region"
    # partials are matched by what they are: q_avg needs q_sum's sum and q_count's count
    assert chosen_key(q(["q_avg"], ["Region"]), pool) == "by_city_region"
    # an attribute no aggregate has: the base tables
    assert chosen_key(q(["q_sum"], ["Store"]), pool) is None
    # a filtered attribute must be in the grain too
    assert chosen_key(q(["q_sum"], ["City"], Condition("Day", ">", (2,))), pool) == "by_day_city"
    assert chosen_key(q(["q_sum"], [], Condition("Region", "=", ("x",))), pool) == "by_region"


def test_the_same_attribute_by_another_join_path_does_not_cover() -> None:
    """City by the `sales_store` relationship is not City by another one."""
    cube = make_cube()
    other = CubeAttribute(
        "sales", "City", "City", "City", "City", ("sales_other",), "st2", ("CITY",), None,
        (CubeJoin("st2", "stores", FACT_ALIAS, ("DAY",), ("STORE_ID",), "sales_other"),),
    )  # fmt: skip
    spec = grain_spec(cube, "a", "sales", [("City", ("sales_store",))], ["q_sum"])
    resolved = resolve(cube, q(["q_sum"], ["City"]))
    assert navigate.choose(resolved, [Candidate(Key("a"), spec, 1)])[0] is not None
    wrong = replace(cube, attributes=(other,))
    spec_other = grain_spec(wrong, "b", "sales", [("City", ("sales_other",))], ["q_sum"])
    assert navigate.choose(resolved, [Candidate(Key("b"), spec_other, 1)]) == [None]


def test_distinct_counts_and_medians_only_from_exactly_their_grain(
    db: duckdb.DuckDBPyConnection,
) -> None:
    exact = build(db, "exact_city", ["City"], EXACT)
    finer = build(db, "finer", ["City", "Region"], EXACT)
    assert exact.spec.incremental is None  # not partitioned: read as stored
    for metric in EXACT:
        assert plan(q([metric], ["City"]), [finer, exact]).sources[0].key == Key("exact_city")  # type: ignore[union-attr]
        assert plan(q([metric], ["City"]), [finer]).sources == (None,)
        assert plan(q([metric], []), [exact, finer]).sources == (None,)
        # a filter on an attribute not queried regroups: base tables only
        flt = Condition("Region", "=", ("NORTH",))
        assert plan(q([metric], ["City"], flt), [finer, exact]).sources == (None,)


def test_an_incremental_aggregate_rolls_its_partition_up(db: duckdb.DuckDBPyConnection) -> None:
    """The aggregate is partitioned by DAY in buckets of 2; a query by City must sum
    the partitions, even at the aggregate's own grain."""
    agg = build(db, "inc_city", ["City"], DERIVABLE)
    assert agg.spec.incremental is not None
    cols = [r[0] for r in db.execute("DESCRIBE S.inc_city").fetchall()]
    assert any(c.startswith("inc__") for c in cols)
    partitions = db.execute("SELECT COUNT(DISTINCT city__key) FROM S.inc_city").fetchone()[0]  # type: ignore[index]
    assert agg.rows > partitions  # more than one row per city
    chosen = plan(q(DERIVABLE, ["City"]), [agg])
    assert chosen.sources[0] is not None
    assert same(run(db, chosen), db.execute(hand_sql(["City"], DERIVABLE)).fetchall())
    # a distinct count is never read from a partitioned aggregate
    assert not plan(q(["q_sum", "q_distinct"], ["City"]), [agg]).from_aggregates


def test_division_by_zero_is_null_not_an_error(db: duckdb.DuckDBPyConnection) -> None:
    agg = build(db, "by_region_all", ["Region"], ["q_sum", "q_count", "q_max", "q_min"])
    for aggregates in (True, False):
        chosen = plan(
            q(["per_zero", "avg_ratio", "spread"], ["Region"]), [agg], aggregates=aggregates
        )
        rows = run(db, chosen)
        assert rows and all(r[1] is None for r in rows)
        hand = db.execute(hand_sql(["Region"], ["q_sum", "q_count", "q_max", "q_min"])).fetchall()
        expected = [
            (g, s / c if c else None, (mx - mn) * 2 + 1 if mx is not None else None)
            for g, s, c, mx, mn in hand
        ]
        assert same([(r[0], r[2], r[3]) for r in rows], expected)


def test_a_metric_filter_named_by_label_filters_on_the_metric(
    db: duckdb.DuckDBPyConnection,
) -> None:
    agg = build(db, "by_city", ["City"], ["q_sum"])
    query = Query(("q_sum",), (AttributeRef("City"),), Condition("q sum", ">", (5,)))
    rows = run(db, plan(query, [agg]))
    hand = [r for r in db.execute(hand_sql(["City"], ["q_sum"])).fetchall() if r[1] and r[1] > 5]
    assert rows and same(rows, hand)


# --- every method, random data, random groupings -------------------------------------------

SALES_ROW = st.tuples(
    st.one_of(st.none(), st.integers(1, 6)),
    st.integers(1, 5),
    st.one_of(st.none(), st.integers(-4, 8).map(lambda v: v / 2)),
)
STORE_ROWS = st.lists(
    st.tuples(
        st.one_of(st.none(), st.sampled_from(["Oslo", "Rome", "Pune"])),
        st.sampled_from(["North", "South"]),
    ),
    min_size=4,
    max_size=4,
).map(lambda rows: [(i + 1, c, r) for i, (c, r) in enumerate(rows) if i != 3])  # store 5: none


@st.composite
def _filters(draw: st.DrawFn) -> tuple[Any, str]:
    """(filter, hand SQL) over the attributes."""
    attr = draw(st.sampled_from(list(ATTRS)))
    col = COLUMN[attr]
    if attr in ("City", "Region"):
        values = draw(st.lists(st.sampled_from(["Oslo", "Rome", "NORTH"]), min_size=1, max_size=2))
        sql_values = ", ".join(f"'{v}'" for v in values)
        return Condition(attr, "in", tuple(values)), f"{col} IN ({sql_values})"
    low = draw(st.integers(1, 4))
    one = Condition(attr, "between", (low, low + 2))
    other = Condition(attr, "is_null", ())
    if draw(st.booleans()):
        return one, f"{col} BETWEEN {low} AND {low + 2}"
    return Logical("or", (one, other)), f"({col} BETWEEN {low} AND {low + 2} OR {col} IS NULL)"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sales=st.lists(SALES_ROW, min_size=0, max_size=25),
    stores=STORE_ROWS,
    agg_attrs=st.lists(st.sets(st.sampled_from(list(ATTRS)), max_size=3), min_size=1, max_size=3),
    query_attrs=st.lists(st.sampled_from(list(ATTRS)), unique=True, max_size=2),
    metrics=st.lists(st.sampled_from(list(METHODS)), unique=True, min_size=1, max_size=4),
    flt=st.one_of(st.none(), _filters()),
)
def test_aggregates_base_tables_and_hand_sql_agree(
    sales: list[tuple],
    stores: list[tuple],
    agg_attrs: list[set[str]],
    query_attrs: list[str],
    metrics: list[str],
    flt: tuple[Any, str] | None,
) -> None:
    db = duckdb.connect()
    load(db, sales, stores)
    candidates = []
    for i, attrs in enumerate(agg_attrs):
        grain = sorted(attrs)
        candidates.append(build(db, f"agg{i}", grain, DERIVABLE))
        candidates.append(build(db, f"exact{i}", grain, list(METHODS)))
    # and one of exactly the query's grain (filtered attributes included) for distinct counts
    filtered = []
    if flt is not None:
        filtered = [c.member for c in (flt[0].items if isinstance(flt[0], Logical) else (flt[0],))]
    grain = list(dict.fromkeys([*query_attrs, *filtered]))
    candidates.append(build(db, "exact_q", grain, list(METHODS)))
    query = q(metrics, query_attrs, flt[0] if flt else None)
    from_aggs = plan(query, candidates)
    from_base = plan(query, candidates, aggregates=False)
    hand = db.execute(hand_sql(query_attrs, metrics, flt[1] if flt else "")).fetchall()
    assert same(run(db, from_base), hand)
    assert same(run(db, from_aggs), hand)
    exact_needed = any(m in EXACT for m in metrics)
    regroups = any(a not in query_attrs for a in filtered)
    if exact_needed and regroups:
        assert from_aggs.sources == (None,)
    else:
        assert from_aggs.from_aggregates  # served: "exact_q" always covers


# --- semi-additive first / last ---------------------------------------------------------------


def semi_hand_sql(attrs: list[str], position: str) -> str:
    """Per group, the value at the first/last Day on which the metric is not empty
    (AtScale's FirstNonEmpty/LastNonEmpty over the level)."""
    grain = [COLUMN[a] for a in attrs]
    pick = "MAX" if position == "last" else "MIN"
    by = ", ".join(f"g{i}" for i in range(len(grain)))
    items = ", ".join(f"{c} AS g{i}" for i, c in enumerate(grain))
    per_day = (
        f"SELECT {items + ', ' if items else ''}f.DAY AS d, SUM(f.QTY) AS v "
        'FROM S."SALES" f LEFT JOIN S."STORES" st ON f.STORE = st.STORE_ID '
        f"GROUP BY {by + ', ' if by else ''}f.DAY"
    )
    partition = f"PARTITION BY {by}" if by else ""
    picked = (
        f"SELECT *, {pick}(d) FILTER (WHERE v IS NOT NULL) OVER ({partition}) AS p FROM ({per_day})"
    )
    groups = f"SELECT DISTINCT {by + ', ' if by else ''}p FROM ({picked})"
    value = (
        f"SELECT {'g.' + ', g.'.join(f'g{i}' for i in range(len(grain))) + ', ' if grain else ''}"
        f"(SELECT MAX(x.v) FROM ({per_day}) x WHERE x.d = g.p"
        + "".join(f" AND x.g{i} IS NOT DISTINCT FROM g.g{i}" for i in range(len(grain)))
        + f") FROM ({groups}) g"
    )
    return value


@pytest.mark.parametrize("position", ["first", "last"])
@pytest.mark.parametrize("attrs", [[], ["City"], ["Region", "Store"]])
def test_semi_additive_takes_the_first_or_last_non_empty_day(
    db: duckdb.DuckDBPyConnection, position: str, attrs: list[str]
) -> None:
    """Day 1 of store 3 (Rome) has a row whose quantity is NULL, and day 3 of store 2
    (Bergen) too: those days are empty for the metric and must be skipped."""
    metric = f"q_{position}"
    agg = build(db, "semi_agg", ["Day", "City", "Region", "Store"], [metric])
    expected = db.execute(semi_hand_sql(attrs, position)).fetchall()
    for aggregates in (True, False):
        got = run(db, plan(q([metric], attrs), [agg], aggregates=aggregates))
        assert same(got, expected), (aggregates, got, expected)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sales=st.lists(SALES_ROW, min_size=0, max_size=20),
    stores=STORE_ROWS,
    attrs=st.lists(st.sampled_from(["Store", "City", "Region"]), unique=True, max_size=2),
    position=st.sampled_from(["first", "last"]),
)
def test_semi_additive_random_data(
    sales: list[tuple], stores: list[tuple], attrs: list[str], position: str
) -> None:
    db = duckdb.connect()
    load(db, sales, stores)
    metric = f"q_{position}"
    agg = build(db, "semi_agg", ["Day", "City", "Region", "Store"], [metric])
    expected = db.execute(semi_hand_sql(attrs, position)).fetchall()
    if not attrs and not expected:
        expected = [(None,)]  # a grand total of no rows is one empty row, as SUM() gives
    from_aggs = plan(q([metric], attrs), [agg])
    assert from_aggs.from_aggregates
    assert same(run(db, from_aggs), expected)
    assert same(run(db, plan(q([metric], attrs), [agg], aggregates=False)), expected)


def test_a_semi_additive_metric_beside_an_additive_one(db: duckdb.DuckDBPyConnection) -> None:
    """Two parts (the plain metrics, the semi-additive one) joined on the grain; the
    semi part's groups with no non-empty day (City NULL only at store 4, day 3) stay."""
    agg = build(db, "semi_agg", ["Day", "City", "Region", "Store"], ["q_last", "q_sum"])
    last = dict(db.execute(semi_hand_sql(["City"], "last")).fetchall())
    total = dict(db.execute(hand_sql(["City"], ["q_sum"])).fetchall())
    expected = [(city, last.get(city), total.get(city)) for city in {*last, *total}]
    for aggregates in (True, False):
        rows = run(db, plan(q(["q_last", "q_sum"], ["City"]), [agg], aggregates=aggregates))
        assert same(rows, expected), (aggregates, rows, expected)


def test_metric_filters_order_and_page(db: duckdb.DuckDBPyConnection) -> None:
    """Filters on metric values apply after aggregation; the order puts NULLs last; limit
    and offset page the ordered rows; the same from aggregates and base tables."""
    agg = build(db, "by_store_all", ["Store", "Day"], DERIVABLE)
    hand = db.execute(hand_sql(["Store"], ["q_sum", "q_count"])).fetchall()
    kept = [r for r in hand if (r[2] >= 1 and r[1] is not None and r[1] <= 12) or r[1] is None]
    assert len(kept) < len(hand)  # the filter drops store 1 (13 > 12)
    kept.sort(key=lambda r: (r[1] is None, -(r[1] or 0), r[0]))
    flt = Logical("and", (Condition("q_count", ">=", (1,)), Condition("q_sum", "<=", (12,))))
    for aggregates in (True, False):
        query = Query(
            ("q_sum", "q_count"),
            (AttributeRef("Store"),),
            Logical("or", (flt, Condition("q_sum", "is_null", ()))),
            order_by=(OrderBy("q_sum", descending=True), OrderBy("Store")),
            limit=2,
            offset=1,
        )
        chosen = plan(query, [agg], aggregates=aggregates)
        assert chosen.from_aggregates is aggregates
        assert run(db, chosen) == kept[1:3]


# --- the example TPC-H model: role plays and multi-fact slices (choice only) -------------------


@pytest.fixture(scope="module")
def sales_cube() -> CubeSpec:
    from aggsched.examples import TPCH_DUCKDB
    from aggsched.planning.cube import cube_spec

    return cube_spec(load_path_models(TPCH_DUCKDB)["Sales"])


def load_path_models(path: Any) -> dict[str, Any]:
    from aggsched.sml import load_path

    return load_path(path, env={}).models


def test_a_role_played_grain_serves_only_its_role(sales_cube: CubeSpec) -> None:
    """An aggregate by Ship Year does not answer Order Year (same Calendar level)."""
    ship = grain_spec(sales_cube, "ship", "lineitem", [("Ship Year", ("lineitem_ship_date",))],
                      ["revenue"])  # fmt: skip
    pool = [Candidate(Key("ship"), ship, 7)]
    for name, served in (("Ship Year", True), ("Order Year", False)):
        resolved = resolve(sales_cube, Query(("revenue",), (AttributeRef(name),)))
        assert (navigate.choose(resolved, pool)[0] is not None) is served


def test_each_fact_is_served_by_its_slice_of_a_multi_fact_aggregate(sales_cube: CubeSpec) -> None:
    year = "Order Year"
    line = grain_spec(sales_cube, "both", "lineitem", [(year, ("lineitem_order", "order_date"))],
                      ["revenue", "line_count"])  # fmt: skip
    orders = grain_spec(sales_cube, "both", "orders", [(year, ("orders_order", "order_date"))],
                        ["order_total"])  # fmt: skip
    both = replace(line, incremental=None, others=(replace(orders, name="both"),))
    only_line = grain_spec(sales_cube, "small", "lineitem",
                           [(year, ("lineitem_order", "order_date"))], ["revenue"])  # fmt: skip
    pool = [Candidate(Key("both"), both, 7), Candidate(Key("small"), only_line, 3)]
    query = Query(("revenue", "order_total", "line_count"), (AttributeRef(year),))
    resolved = resolve(sales_cube, query)
    sources = navigate.choose(resolved, pool)
    assert [(p.fact, s.key.table, s.part) for p, s in zip(resolved.parts, sources, strict=True)
            if s is not None] == [("lineitem", "both", 0), ("orders", "both", 1)]  # fmt: skip
    # revenue alone: the smaller single-fact aggregate
    (source,) = navigate.choose(resolve(sales_cube, Query(("revenue",), query.attributes)), pool)
    assert source is not None and source.key.table == "small"
    # the plan reads the orders slice where that fact has rows (the presence column)
    sql = navigate.plan(resolved, pool, sqlgen.Target("duckdb")).sql("duckdb")
    assert sql.count('FROM "S"."both"') == 2
    assert 'NOT "agg"."rows__orders" IS NULL' in sql
    assert 'NOT "agg"."rows__lineitem" IS NULL' in sql


def test_a_filter_on_a_calculation_that_is_not_queried(db: duckdb.DuckDBPyConnection) -> None:
    """`avg_ratio > 3` filters groups by q_sum / q_count though only q_max is asked for
    (this looked the calculation up among base metrics: a KeyError, an API 500)."""
    agg = build(db, "by_city_all", ["City", "Day"], DERIVABLE)
    hand = db.execute(hand_sql(["City"], ["q_max", "q_sum", "q_count"])).fetchall()
    expected = [(c, mx) for c, mx, s, n in hand if n and s / n > 3]
    assert 0 < len(expected) < len(hand)
    query = q(["q_max"], ["City"], Condition("avg_ratio", ">", (3,)))
    for aggregates in (True, False):
        assert same(run(db, plan(query, [agg], aggregates=aggregates)), expected)
