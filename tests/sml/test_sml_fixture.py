"""The real TPC-H SML repository loads cleanly and resolves to what its YAML says."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from aggsched.sml import (
    FACT_ALIAS,
    CalculationMethod,
    LoadResult,
    ResolvedAttribute,
    ResolvedModel,
    load_path,
    measure_references,
    parse_grace_period,
    system_aggregates,
)

MODEL = "Retail TPCH"


@pytest.fixture(scope="module")
def result(sml_tpch: Path) -> LoadResult:
    return load_path(sml_tpch, env={})


@pytest.fixture(scope="module")
def resolved(result: LoadResult) -> ResolvedModel:
    return result.models[MODEL]


def by_name(attrs: list[ResolvedAttribute], name: str) -> ResolvedAttribute:
    found = [a for a in attrs if a.name == name]
    assert len(found) == 1, [a.name for a in attrs]
    return found[0]


def test_fixture_loads_with_zero_errors_and_warnings(result: LoadResult) -> None:
    assert result.errors == []
    assert result.warnings == []
    repo = result.unwrap()
    assert set(repo.models) == {MODEL}
    assert len(repo.datasets) == 9
    assert len(repo.dimensions) == 9
    assert len(repo.metrics) == 10
    assert set(repo.calculations) == {
        "Order Revenue Previous Year",
        "YTD Order Revenue",
        "YoY Order Revenue Change",
    }


def test_catalog_and_connections(result: LoadResult) -> None:
    repo = result.unwrap()
    assert repo.catalog.unique_name == "tpc-h"
    assert repo.catalog.version == "1.6"
    assert repo.catalog.settings["aggressive_agg_promotion"] is False
    assert repo.catalog.settings["build_speculative_aggs"] is False
    date_conn = repo.connections["Connection - DateCustom"]
    assert (date_conn.database, date_conn.schema) == ("DEMO", "PUBLIC")  # from .env
    tpch = repo.connection_of("lineitem")
    assert (tpch.as_connection, tpch.database, tpch.schema) == (
        "Snowflake",
        "SNOWFLAKE_SAMPLE_DATA",
        "TPCH_SF1",
    )


def test_datasets_and_computed_columns(result: LoadResult) -> None:
    repo = result.unwrap()
    lineitem = repo.datasets["lineitem"]
    assert (lineitem.table, lineitem.sql, lineitem.connection_id) == (
        "LINEITEM",
        None,
        "Connection - TPCH",
    )
    revenue = lineitem.column("Item Revenue")
    assert revenue is not None and revenue.is_computed
    assert revenue.sql == "L_EXTENDEDPRICE * (1 - L_DISCOUNT)"
    assert revenue.data_type == "decimal(38,4)"
    assert revenue.sql_for("Postgresql") == revenue.sql  # no variant: the default
    assert lineitem.column("L_TAX") is not None and not lineitem.column("L_TAX").is_computed
    assert repo.datasets["DateCustom"].column("DATEKEY_DATE").sql == 'CAST("PK_DATE" AS DATE)'
    assert lineitem.incremental is None and lineitem.immutable is False


def test_dimensions(result: LoadResult) -> None:
    repo = result.unwrap()
    date = repo.dimensions["Date Dimension"]
    assert date.type == "time"
    assert [lv.unique_name for lv in date.hierarchies[0].levels] == ["Year", "Month", "Day - TPCH"]
    day = date.attribute("Day - TPCH")
    assert (day.dataset, day.key_columns, day.time_unit, day.is_unique_key) == (
        "DateCustom",
        ("DATEKEY_DATE",),
        "day",
        True,
    )
    customer = repo.dimensions["Customer - TPCH"]
    phone = customer.attribute("d_c_phone")
    assert phone.is_secondary and phone.level == "Customer - TPCH Level"
    location = repo.dimensions["Location - TPCH"]
    (snow,) = location.relationships
    assert (snow.type, snow.from_dataset, snow.from_columns, snow.to_level) == (
        "snowflake",
        "nation",
        ("N_REGIONKEY",),
        "Region",
    )
    assert repo.dimensions["Shipping Mode"].is_degenerate
    assert repo.dimensions["Shipping Mode"].type == "standard"  # no type: standard


def test_metrics_and_calculations(result: LoadResult, resolved: ResolvedModel) -> None:
    repo = result.unwrap()
    revenue = repo.metrics["m_Revenue_sum"]
    assert revenue.calculation_method is CalculationMethod.SUM
    assert (revenue.dataset, revenue.column, revenue.label) == (
        "lineitem",
        "Item Revenue",
        "Item Revenue",
    )
    assert repo.metrics["m_s_suppkey_count"].calculation_method is CalculationMethod.COUNT_DISTINCT
    calc = repo.calculations["YoY Order Revenue Change"]
    assert measure_references(calc.expression) == [
        "Order Revenue Previous Year",
        "m_order_revenue",
        "m_order_revenue",
        "Order Revenue Previous Year",
    ]
    resolved_revenue = next(m for m in resolved.base_metrics if m.unique_name == "m_Revenue_sum")
    assert resolved_revenue.column_sql == "L_EXTENDEDPRICE * (1 - L_DISCOUNT)"


def test_fact_datasets_and_base_metrics(resolved: ResolvedModel) -> None:
    facts = {f.name: f.allow_aggregates for f in resolved.fact_datasets}
    assert facts == {n: True for n in ("supplier", "customer", "lineitem", "partsupp", "orders")}
    assert {m.unique_name for m in resolved.metrics_on("lineitem")} == {
        "m_l_discount_sum",
        "m_l_quantity_sum",
        "m_l_tax_sum",
        "m_Revenue_sum",
    }
    assert [m.unique_name for m in resolved.metrics_on("orders")] == [
        "m_o_orderkey_count",
        "m_order_revenue",
    ]


def test_lineitem_has_four_role_played_dates(resolved: ResolvedModel) -> None:
    attrs = resolved.attributes_of("lineitem")
    days = {a.name: a for a in attrs if a.attribute == "Day - TPCH"}
    assert set(days) == {
        "Item Receipt Day - TPCH",
        "Item Ship Day - TPCH",
        "Item Commit Day - TPCH",
        "Order Day - TPCH",
    }
    ship = days["Item Ship Day - TPCH"]
    (step,) = ship.join_path
    assert (step.left_alias, step.left_columns, step.right_dataset, step.right_columns) == (
        FACT_ALIAS,
        ("L_SHIPDATE",),
        "DateCustom",
        ("DATEKEY_DATE",),
    )
    assert step.relationship == "lineitem_Date_Dimension_ItemShip"
    assert ship.dimension_name == "Item Ship Date Dimension"
    order = days["Order Day - TPCH"]
    to_orders, to_date = order.join_path
    assert (to_orders.left_columns, to_orders.right_dataset, to_orders.right_columns) == (
        ("L_ORDERKEY",),
        "orders",
        ("O_ORDERKEY",),
    )
    assert (to_date.left_alias, to_date.left_columns, to_date.right_dataset) == (
        to_orders.right_alias,
        ("O_ORDERDATE",),
        "DateCustom",
    )
    assert order.relationships_path == (
        "lineitem_Orders__-_TPCH",
        "Orders-TPCH_DateDimension_Order",
    )
    assert len({a.alias for a in days.values()}) == 4  # one alias per role
    assert by_name(attrs, "Item Ship Year").alias == ship.alias  # same join, same alias


def test_customer_nation_region_path(resolved: ResolvedModel) -> None:
    region = by_name(resolved.attributes_of("orders"), "Customer Region")
    steps = [(s.right_dataset, s.left_columns, s.right_columns) for s in region.join_path]
    assert steps == [
        ("customer", ("O_CUSTKEY",), ("C_CUSTKEY",)),
        ("nation", ("C_NATIONKEY",), ("N_NATIONKEY",)),
        ("region", ("N_REGIONKEY",), ("R_REGIONKEY",)),
    ]
    assert [s.kind for s in region.join_path] == ["model", "embedded", "snowflake"]
    chain = [FACT_ALIAS] + [s.right_alias for s in region.join_path]
    assert [s.left_alias for s in region.join_path] == chain[:-1]
    assert region.alias == chain[-1] and region.dataset == "region"
    # From the customer fact itself the customer -> customer self-join is skipped.
    from_customer = by_name(resolved.attributes_of("customer"), "Customer Region")
    assert [s.right_dataset for s in from_customer.join_path] == ["nation", "region"]
    assert from_customer.join_path[0].left_alias == FACT_ALIAS


def test_degenerate_dimension_is_on_the_fact(resolved: ResolvedModel) -> None:
    ship_mode = by_name(resolved.attributes_of("lineitem"), "L_Ship_Mode Level")
    assert ship_mode.join_path == () and ship_mode.alias == FACT_ALIAS
    assert ship_mode.key_columns == ("L_SHIPMODE",)
    assert all(a.name != "L_Ship_Mode Level" for a in resolved.attributes_of("orders"))


def test_system_aggregates(resolved: ResolvedModel) -> None:
    specs = {s.unique_name: s for s in system_aggregates(resolved)}
    # supplier's only metric is a count distinct: not derivable, so no all-member aggregate
    assert set(specs) == {
        "system_customer_all",
        "system_lineitem_all",
        "system_partsupp_all",
        "system_orders_all",
    }
    lineitem = specs["system_lineitem_all"]
    assert lineitem.system and lineitem.attributes == () and lineitem.fact_dataset == "lineitem"
    assert {m.unique_name for m in lineitem.metrics} == {
        "m_l_discount_sum",
        "m_l_quantity_sum",
        "m_l_tax_sum",
        "m_Revenue_sum",
    }
    assert lineitem.fact.table == "LINEITEM"
    assert set(lineitem.connections) == {"Connection - TPCH"}


def test_calculation_methods_and_grace_periods() -> None:
    assert len(CalculationMethod) == 12
    not_derivable = {m.value for m in CalculationMethod if not m.derivable}
    assert not_derivable == {"count distinct", "estimated count distinct", "percentile"}
    assert parse_grace_period("1w") == timedelta(weeks=1)
    assert parse_grace_period("12h") == timedelta(hours=12)
    assert parse_grace_period("30m") == timedelta(minutes=30)
    assert parse_grace_period("2d") == timedelta(days=2)
    assert parse_grace_period("86400") == timedelta(days=1)
    with pytest.raises(ValueError, match="grace_period"):
        parse_grace_period("1 fortnight")
