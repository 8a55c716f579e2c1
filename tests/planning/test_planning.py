"""Pure planning logic: names, partials, lattice choice, batch plans, SQL shape.

The SQL is also run on an in-memory DuckDB over tiny hand-made tables, so the tests check
what the queries compute, not only how they read.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import replace

import duckdb
import pytest

from aggsched.planning import naming, sqlgen
from aggsched.planning.lattice import Candidate, build_order, can_derive, choose_source
from aggsched.planning.partials import ROLLUP, is_derivable, partials_of
from aggsched.planning.plan import (
    ActiveInstance,
    BatchType,
    DefinitionState,
    StepMode,
    plan_batch,
)
from aggsched.planning.spec import (
    Attribute,
    ComputedColumn,
    DefinitionSpec,
    Incremental,
    Join,
    Metric,
    Relation,
)
from aggsched.sml import CalculationMethod

SALES = Relation(
    dataset="sales",
    connection="wh",
    table="SALES",
    schema="S",
    columns=("DAY", "STORE", "QTY", "PRICE"),
    computed={"Amount": ComputedColumn("QTY * PRICE", {"Postgresql": "QTY::numeric * PRICE"})},
)
STORES = Relation(
    dataset="stores", connection="wh", table="STORES", schema="S",
    columns=("STORE_ID", "CITY", "REGION"),
)  # fmt: skip
JOIN = Join("st", STORES, "f", ("STORE",), ("STORE_ID",), "sales_store")
CITY = Attribute("City", "st", ("CITY",), None, "Store", "City", ("sales_store",))
REGION = Attribute("Region", "st", ("REGION",), None, "Store", "Region", ("sales_store",))
DAY = Attribute("Sale Day", "f", ("DAY",), None, "Date", "Day", ())
REVENUE = Metric("m_Revenue", "sum", "f", "Amount")
QTY_AVG = Metric("m_qty_avg", "average", "f", "QTY")
QTY_STD = Metric("m qty std", "stddev_samp", "f", "QTY")
STORE_CD = Metric("m_stores", "count distinct", "f", "STORE")
TARGET = sqlgen.Target("duckdb", {"wh": sqlgen.Location(None, "S")})


def spec(name, attrs, metrics, incremental=None) -> DefinitionSpec:
    joins = (JOIN,) if any(a.alias == "st" for a in attrs) else ()
    return DefinitionSpec(name, "f", SALES, joins, tuple(attrs), tuple(metrics), incremental)


def test_table_name_follows_atscale_pattern():
    iid = uuid.UUID("0123abcd-0000-4000-8000-000000000000")
    assert naming.table_name(iid, "Sales by City & Month!") == "as_agg_0123abcd_sales_by_city"
    assert naming.table_name(str(iid), "") == "as_agg_0123abcd_x"


def test_column_names_are_readable_and_collisions_get_a_hash():
    s = spec("a", [CITY, DAY], [REVENUE, QTY_AVG])
    cols = naming.attribute_columns(s)
    assert cols[CITY.identity] == (["city__key"], None)
    assert naming.metric_column("m_Revenue_sum", "sum") == "m_revenue_sum__sum"
    clash = Attribute("city", "f", ("STORE",), None, "X", "Y", ())
    cols = naming.attribute_columns(spec("b", [CITY, clash], [REVENUE]))
    assert cols[CITY.identity][0][0] != cols[clash.identity][0][0]
    assert all(c[0][0].startswith("city_") for c in cols.values())


def test_every_method_has_partials_and_derivability():
    assert len(CalculationMethod) == 12
    for method in CalculationMethod:
        # derivable exactly when every stored partial rolls up
        assert is_derivable(method) == all(p in ROLLUP for p in partials_of(method))
    assert partials_of("average") == ("sum", "count")
    assert partials_of("var_pop") == ("count", "sum", "sumsq")
    assert is_derivable("stddev_samp") and is_derivable("minimum")
    assert not is_derivable("count distinct") and not is_derivable("percentile")
    assert not is_derivable("estimated count distinct")
    with pytest.raises(ValueError, match="unknown calculation_method 'median'"):
        partials_of("median")


def test_lattice_rules():
    fine = spec("fine", [CITY, REGION, DAY], [REVENUE, QTY_AVG])
    coarse = spec("coarse", [REGION], [REVENUE])
    assert can_derive(coarse, fine)
    assert not can_derive(fine, coarse)  # missing attributes
    assert not can_derive(spec("x", [REGION], [QTY_STD]), fine)  # missing partials
    assert not can_derive(spec("y", [REGION], [STORE_CD]), spec("z", [REGION, CITY], [STORE_CD]))
    other_path = Attribute("Region", "st2", ("REGION",), None, "Store", "Region", ("other",))
    assert not can_derive(spec("w", [other_path], [REVENUE]), fine)
    assert not can_derive(spec("inc", [REGION], [REVENUE], Incremental("DAY", 0)), fine)
    # a source reading more columns of the same fact still serves
    narrower = DefinitionSpec(
        "n", "f", replace(SALES, columns=("QTY",)), (JOIN,), (REGION,), (REVENUE,)
    )
    assert can_derive(narrower, fine)
    changed_sql = {"Amount": ComputedColumn("QTY * PRICE * 2")}
    other_sql = replace(narrower, fact=replace(SALES, computed=changed_sql))
    assert not can_derive(other_sql, fine)
    small = Candidate("small", spec("mid", [REGION, CITY], [REVENUE]), rows=10)
    big = Candidate("big", fine, rows=1000)
    assert choose_source(coarse, [big, small]).key == "small"
    assert choose_source(spec("q", [DAY], [REVENUE]), [small]) is None


def test_build_order_puts_finer_first():
    specs = [spec("a", [REGION], [REVENUE]), spec("b", [CITY, REGION, DAY], [REVENUE]),
             spec("c", [], [REVENUE]), spec("d", [CITY, REGION], [REVENUE])]  # fmt: skip
    assert [specs[i].name for i in build_order(specs)] == ["b", "d", "a", "c"]


def test_plan_selects_by_batch_type():
    inc = Incremental("DAY", 86400)
    active = ActiveInstance(uuid.uuid4(), "as_agg", "t", 5, "2024-01-01")
    with_active = DefinitionState(uuid.uuid4(), spec("act", [REGION], [REVENUE], inc), active)
    pending = DefinitionState(uuid.uuid4(), spec("pend", [CITY, REGION], [REVENUE]))
    blocked = DefinitionState(uuid.uuid4(), spec("blk", [CITY], [REVENUE]), blocked=True)
    plain = DefinitionState(uuid.uuid4(), spec("plain", [DAY], [REVENUE]), active)
    states = [with_active, pending, blocked, plain]
    steps = plan_batch(BatchType.MATERIALIZE_PENDING, states)
    assert [(s.definition.spec.name, s.mode) for s in steps] == [("pend", StepMode.FULL)]
    steps = plan_batch(BatchType.INCREMENTAL_REBUILD, states)
    assert [(s.definition.spec.name, s.mode) for s in steps] == [
        ("pend", StepMode.FULL),
        ("act", StepMode.INCREMENTAL),
        ("plain", StepMode.FULL),
    ]
    steps = plan_batch(BatchType.FULL_REBUILD, states)
    assert {s.mode for s in steps} == {StepMode.FULL} and len(steps) == 3


def test_computed_column_uses_the_dialect_variant_and_quotes_declared_columns():
    pg = sqlgen.Target("postgres", {"wh": sqlgen.Location(None, "S")})
    sql = sqlgen.render(sqlgen.base_select(spec("a", [CITY], [REVENUE]), pg), "postgres")
    assert 'CAST("f"."QTY" AS DECIMAL) * "f"."PRICE"' in sql
    sql = sqlgen.render(sqlgen.base_select(spec("a", [CITY], [REVENUE]), TARGET), "duckdb")
    assert '("f"."QTY" * "f"."PRICE")' in sql
    assert 'LEFT JOIN "S"."STORES" AS "st" ON "f"."STORE" = "st"."STORE_ID"' in sql


def test_unparseable_model_sql_is_a_clear_error():
    bad = Relation("bad", "wh", sql="SELEC FROM WHERE ((", columns=("A",))
    broken = DefinitionSpec("b", "f", bad, metrics=(Metric("m", "sum", "f", "A"),))
    with pytest.raises(sqlgen.SqlGenerationError, match="dataset 'bad'"):
        sqlgen.base_select(broken, TARGET)


@pytest.fixture
def db():
    con = duckdb.connect(":memory:")
    con.execute('CREATE SCHEMA "S"')
    con.execute('CREATE TABLE "S"."STORES" ("STORE_ID" INT, "CITY" TEXT, "REGION" TEXT)')
    con.execute("""INSERT INTO "S"."STORES" VALUES (1,'Oslo','North'),(2,'Bergen','North'),
                   (3,'Rome','South')""")
    con.execute('CREATE TABLE "S"."SALES" ("DAY" DATE, "STORE" INT, "QTY" INT, "PRICE" DOUBLE)')
    rows = [(dt.date(2024, 1, 1 + i % 5), 1 + i % 4, i % 7, 1.5 + i % 3) for i in range(200)]
    con.executemany('INSERT INTO "S"."SALES" VALUES (?,?,?,?)', rows)
    yield con
    con.close()


def _rows(con, query) -> list[tuple]:
    return sorted(con.execute(sqlgen.render(query, "duckdb")).fetchall(), key=repr)


def test_base_and_derived_queries_compute_the_same_numbers(db):
    metrics = [REVENUE, QTY_AVG, QTY_STD]
    fine = spec("fine", [CITY, REGION, DAY], metrics)
    coarse = spec("coarse", [REGION], metrics)
    db.execute('CREATE SCHEMA "agg"')
    dest = sqlgen.table("fine_t", "agg")
    db.execute(
        sqlgen.render(sqlgen.create_table_as(dest, sqlgen.base_select(fine, TARGET)), "duckdb")
    )
    direct = _rows(db, sqlgen.base_select(coarse, TARGET))
    rolled = _rows(db, sqlgen.derived_select(coarse, fine, dest))
    assert len(direct) == 3  # North, South and the unmatched store 4 (NULL region)
    assert [r[0] for r in direct] == [r[0] for r in rolled]
    for a, b in zip(direct, rolled, strict=True):
        assert a[1:] == pytest.approx(b[1:])
    by_hand = db.execute(
        """SELECT st."REGION", SUM(f."QTY" * f."PRICE"), SUM(f."QTY"), COUNT(f."QTY")
           FROM "S"."SALES" f LEFT JOIN "S"."STORES" st ON f."STORE" = st."STORE_ID"
           GROUP BY 1"""
    ).fetchall()
    for hand, ours in zip(sorted(by_hand, key=repr), direct, strict=True):
        assert hand == pytest.approx(ours[:4])


def test_incremental_rebuild_equals_full_rebuild(db):
    s = spec("inc", [REGION], [REVENUE, QTY_AVG], Incremental("DAY", 86400))
    old = sqlgen.table("inc_v1", "S")
    db.execute(sqlgen.render(sqlgen.create_table_as(old, sqlgen.base_select(s, TARGET)), "duckdb"))
    cols = [r[0] for r in db.execute('DESCRIBE "S"."inc_v1"').fetchall()]
    assert cols == sqlgen.output_columns(s)
    watermark = db.execute(sqlgen.render(sqlgen.max_incremental(s, TARGET), "duckdb")).fetchone()[0]
    assert watermark == dt.date(2024, 1, 5)
    db.execute("""INSERT INTO "S"."SALES" VALUES ('2024-01-05', 3, 100, 2.0),
                  ('2024-01-06', 1, 50, 1.0)""")
    since = sqlgen.literal(watermark - dt.timedelta(seconds=s.incremental.grace_seconds))
    fresh = sqlgen.base_select(s, TARGET, since)
    fresh_rows = db.execute(sqlgen.render(fresh, "duckdb")).fetchall()
    assert {r[1] for r in fresh_rows} == {
        dt.date(2024, 1, 4), dt.date(2024, 1, 5), dt.date(2024, 1, 6)
    }  # fmt: skip
    db.execute(sqlgen.render(sqlgen.delete_since(old, s, since), "duckdb"))
    db.execute(sqlgen.render(sqlgen.insert_select(old, s, fresh), "duckdb"))
    rebuilt = _rows(db, sqlgen.base_select(s, TARGET))
    assert sorted(db.execute('SELECT * FROM "S"."inc_v1"').fetchall(), key=repr) == rebuilt


def test_watermarks_round_trip_and_subtract_grace():
    from aggsched.planning import watermark

    day = watermark.encode(dt.date(2024, 3, 1))
    assert day == "date:2024-03-01" and watermark.decode(day) == dt.date(2024, 3, 1)
    assert watermark.threshold(day, 12 * 3600) == dt.date(2024, 2, 29)
    assert watermark.threshold(day, 0) == dt.date(2024, 3, 1)
    ts = watermark.encode(dt.datetime(2024, 3, 1, 6, 30))
    assert watermark.threshold(ts, 3600) == dt.datetime(2024, 3, 1, 5, 30)
    assert watermark.threshold(watermark.encode(42), 3600) == 42
    with pytest.raises(ValueError, match="date, timestamp or number"):
        watermark.encode("2024-01-01")  # type: ignore[arg-type]


def test_shared_scan_splits_into_exactly_the_separate_builds(db):
    from aggsched.planning import sharedscan

    a = spec("a", [CITY, DAY], [REVENUE, STORE_CD])
    b = spec("b", [REGION], [QTY_AVG, QTY_STD])
    c = spec("c", [], [REVENUE])
    derivable = spec("d", [CITY], [REVENUE])
    groups = sharedscan.shared_groups([a, b, derivable, c])
    assert groups == [[0, 1]]  # d and c roll up from a; only a and b must scan
    scan = sharedscan.grouping_select([a, b, c], TARGET)
    stage = sqlgen.table("stage", "S")
    db.execute(sqlgen.render(sqlgen.create_table_as(stage, scan.query), "duckdb"))
    for member, mask in zip([a, b, c], scan.masks, strict=True):
        split = _rows(db, sharedscan.split_select(member, scan, stage, mask))
        separate = _rows(db, sqlgen.base_select(member, TARGET))
        assert len(split) == len(separate)
        for x, y in zip(split, separate, strict=True):
            assert x == pytest.approx(y)


@pytest.mark.parametrize(
    ("column_sql", "dataset_sql"),
    [
        ("QTY; DROP TABLE SALES", None),
        ("DELETE FROM SALES", None),
        (None, "DELETE FROM S.SALES"),
        (None, "SELECT 1; DROP TABLE S.SALES"),
        (None, "CREATE TABLE x AS SELECT 1"),
    ],
)
def test_model_sql_can_never_be_a_statement(column_sql, dataset_sql):
    computed = {"Amount": ComputedColumn(column_sql)} if column_sql else {}
    fact = Relation(
        "sales", "wh", table="SALES", sql=dataset_sql, columns=("QTY",), computed=computed
    )
    metric = Metric("m", "sum", "f", "Amount" if column_sql else "QTY")
    with pytest.raises(sqlgen.SqlGenerationError, match=r"must be (a query|an expression)"):
        sqlgen.base_select(DefinitionSpec("x", "f", fact, metrics=(metric,)), TARGET)


def test_partials_are_matched_by_column_not_by_metric_name(db):
    """A coarse aggregate of `qty_total` (SUM QTY) and `qty_n` (COUNT QTY) rolls up from a
    fine one that stores the same partials under an average metric's name."""
    renamed = [
        Metric("qty_total", "sum", "f", "QTY"),
        Metric("qty_n", "count non-null", "f", "QTY"),
    ]
    fine = spec("fine", [CITY, REGION], [QTY_AVG])
    coarse = spec("coarse", [REGION], renamed)
    assert can_derive(coarse, fine)
    assert not can_derive(spec("c2", [REGION], [Metric("x", "sum", "f", "PRICE")]), fine)
    db.execute('CREATE SCHEMA "agg"')
    dest = sqlgen.table("fine_t", "agg")
    db.execute(
        sqlgen.render(sqlgen.create_table_as(dest, sqlgen.base_select(fine, TARGET)), "duckdb")
    )
    assert _rows(db, sqlgen.derived_select(coarse, fine, dest)) == _rows(
        db, sqlgen.base_select(coarse, TARGET)
    )


def test_multi_fact_select_joins_facts_on_the_grain_nulls_included(db):
    """Two facts at one grain: every grain value of either fact once (the unmatched
    store's NULL city included), each fact's partials where it has rows, NULL elsewhere."""
    db.execute('CREATE TABLE "S"."RETURNS" ("STORE" INT, "AMOUNT" INT)')
    db.execute('INSERT INTO "S"."RETURNS" VALUES (1, 5), (1, 7), (3, 1), (9, 4)')
    returns = Relation("returns", "wh", "RETURNS", schema="S", columns=("STORE", "AMOUNT"))
    city_r = Attribute("City", "st_r", ("CITY",), None, "Store", "City", ("returns_store",))
    join_r = Join("st_r", STORES, "f", ("STORE",), ("STORE_ID",), "returns_store")
    refunds = Metric("refunds", "sum", "f", "AMOUNT")
    sales = spec("both", [CITY], [REVENUE])
    other = DefinitionSpec("both", "f", returns, (join_r,), (city_r,), (refunds,))
    both = replace(sales, others=(other,))
    assert both.multi_fact and [p.fact.dataset for p in both.components()] == ["sales", "returns"]
    rows = _rows(db, sqlgen.base_select(both, TARGET))
    cols = sqlgen.output_columns(both)
    assert cols == ["city__key", "rows__sales", "m_revenue__sum", "rows__returns", "refunds__sum"]
    by_city = {r[0]: r for r in rows}
    assert len(rows) == len(by_city) == 4  # Bergen, Oslo, Rome, NULL (stores 4 and 9)
    assert by_city["Oslo"][3:] == (2, 12) and by_city["Bergen"][3:] == (None, None)
    assert by_city[None][1] == 50 and by_city[None][3:] == (1, 4)
    # a multi-fact table serves a single-fact query slice: only that fact's groups
    db.execute('CREATE SCHEMA "agg"')
    dest = sqlgen.table("both_t", "agg")
    db.execute(
        sqlgen.render(sqlgen.create_table_as(dest, sqlgen.base_select(both, TARGET)), "duckdb")
    )
    only_returns = DefinitionSpec("r", "f", returns, (join_r,), (city_r,), (refunds,))
    source = choose_source(only_returns, [Candidate("both", both, 4)])
    assert source is not None and source.part == 1
    sliced = _rows(db, sqlgen.derived_select(only_returns, source, dest))
    assert sliced == _rows(db, sqlgen.base_select(only_returns, TARGET))


def test_incremental_partitions_are_buckets(db):
    """Month buckets of the date column: the partition column holds the first day of the
    month, and a rebuild from a threshold recomputes whole months."""
    from aggsched.planning import watermark

    s = spec("inc", [REGION], [REVENUE], Incremental("DAY", 86400, bucket="month", kind="date"))
    assert sqlgen.output_columns(s)[1] == "inc__day__month"
    rows = _rows(db, sqlgen.base_select(s, TARGET))
    assert {r[1] for r in rows} == {dt.date(2024, 1, 1)}
    assert watermark.bucket_start(dt.date(2024, 2, 29), "month") == dt.date(2024, 2, 1)
    assert watermark.bucket_start(dt.date(2024, 5, 17), "quarter") == dt.date(2024, 4, 1)
    assert watermark.bucket_start(dt.date(2024, 5, 17), "week") == dt.date(2024, 5, 13)
    assert watermark.bucket_start(dt.datetime(2024, 5, 17, 8), "year") == dt.datetime(2024, 1, 1)
    assert watermark.bucket_start(1234, "100") == 1200
    since = sqlgen.since_expr(s, dt.date(2024, 1, 20), TARGET)
    assert sqlgen.render(since, "duckdb") == "CAST('2024-01-01' AS DATE)"
    numeric = spec("n", [REGION], [REVENUE], Incremental("QTY", 0, bucket="3", kind="number"))
    assert {r[1] for r in _rows(db, sqlgen.base_select(numeric, TARGET))} == {0, 3, 6}


def test_cube_spec_round_trips_through_json() -> None:
    """The queryable model stored at publish reads back whole (facts' incremental
    partitioning included: demand-defined aggregates are made from it)."""
    from aggsched.examples import TPCH_DUCKDB
    from aggsched.planning.cube import CubeSpec, cube_spec
    from aggsched.sml import load_path

    spec = cube_spec(load_path(TPCH_DUCKDB, env={}).models["Sales"])
    assert spec.incremental["lineitem"].bucket == "month"
    assert CubeSpec.from_json(spec.to_json()) == spec


def test_gee_scales_a_sample_to_the_whole_table() -> None:
    """The distinct values of a skewed population, from 10% Bernoulli samples: the GEE
    estimate is within its error bound's order (here a factor of 2) of the truth, and
    never below what the sample saw nor above the rows."""
    import random
    from collections import Counter

    from aggsched.planning.estimate import gee, sample_percent

    rng = random.Random(7)
    population = [min(int(rng.paretovariate(1.2)), 5000) for _ in range(100_000)]
    truth = len(set(population))
    for _ in range(5):
        sample = [v for v in population if rng.random() < 0.1]
        profile = Counter(Counter(sample).values()).items()
        guess = gee(profile, 10.0, len(population))
        assert truth / 2 <= guess <= truth * 2, (guess, truth)
        assert guess >= len(set(sample))
    assert gee([(1, 3)], 100.0, 10) == 3.0
    assert sample_percent(1_000) == 100.0 and sample_percent(20_000_000) == 1.0


def test_sampled_distinct_counts_stand_only_when_each_value_was_seen_often() -> None:
    """The first HyperLogLog pass reads a row sample of a large fact: its counts stand for
    a grain whose values the sample saw many times each, and are counted again otherwise.
    Run on DuckDB over 200,000 rows: the sample reads about the share asked for, a coarse
    grain's sampled count is exact and settled, a fine grain's is not."""
    from aggsched.planning.estimate import approx_distinct_many, approx_sample_percent, settled

    con = duckdb.connect()
    con.execute("CREATE SCHEMA S")
    con.execute(
        "CREATE TABLE S.SALES AS SELECT DATE '2024-01-01' + (i % 365)::INT AS \"DAY\", "
        'i % 7 AS "STORE", i AS "QTY", 1.0 AS "PRICE" FROM range(200000) t(i)'
    )
    by_day = spec("by_day", [DAY], [REVENUE])
    by_qty = spec("by_qty", [Attribute("Qty", "f", ("QTY",), None, "Qty", "Qty", ())], [REVENUE])
    sql = sqlgen.render(approx_distinct_many([by_day, by_qty], TARGET, 10.0), "duckdb")
    assert "TABLESAMPLE BERNOULLI (10.0 PERCENT)" in sql
    read, days, qtys = con.execute(sql).fetchone()
    assert 16_000 <= read <= 24_000  # about 10% of the rows
    assert 330 <= days <= 400 and settled(days, read, 10.0)  # ~55 rows a day in the sample
    assert not settled(qtys, read, 10.0)  # every value once: the sample cannot tell
    assert settled(qtys, read, 100.0)  # read whole, a count is a count
    assert approx_sample_percent(1_500_000) == 100.0
    assert approx_sample_percent(100_000_000) == 1.0
