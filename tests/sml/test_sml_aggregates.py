"""User-defined aggregates on a copy of the TPC-H model resolve to the right specs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aggsched.planning.aggregates import definition_spec
from aggsched.sml import FACT_ALIAS, AggregateSpec, LoadResult, load_path
from sml.helpers import add_aggregates, attr, copy_repo, replace_in

MODEL = "Retail TPCH"
DATE = "Date Dimension"
ORDERS = "Orders  - TPCH"


def load_with(sml_tpch: Path, tmp_path: Path, *aggs: dict[str, Any]) -> LoadResult:
    repo = copy_repo(sml_tpch, tmp_path / "repo")
    add_aggregates(repo, list(aggs))
    return load_path(repo, env={})


def only_spec(result: LoadResult) -> AggregateSpec:
    assert result.errors == [], [str(e) for e in result.errors]
    (spec,) = result.models[MODEL].aggregates
    return spec


def test_role_played_dates_with_relationships_path(sml_tpch: Path, tmp_path: Path) -> None:
    spec = only_spec(
        load_with(
            sml_tpch,
            tmp_path,
            {
                "unique_name": "ship_vs_order",
                "label": "Ship vs order",
                "metrics": ["m_l_quantity_sum", "m_Revenue_sum"],
                "attributes": [
                    attr("Month", DATE, "lineitem_Date_Dimension_ItemShip"),
                    attr("Year", DATE, "lineitem_Orders__-_TPCH"),  # prefix of the path
                    attr("Item Receipt Day - TPCH", DATE),  # visible role-played name
                ],
            },
        )
    )
    assert spec.fact_dataset == "lineitem"
    assert [a.name for a in spec.attributes] == [
        "Item Ship Month",
        "Order Year",
        "Item Receipt Day - TPCH",
    ]
    ship, order, receipt = spec.attributes
    assert ship.key_columns == ("MONTH",) and ship.name_column == "MONTH_DATE"
    assert ship.sort_column == "MONTH"
    assert [s.relationship for s in order.join_path] == [
        "lineitem_Orders__-_TPCH",
        "Orders-TPCH_DateDimension_Order",
    ]
    assert len({ship.alias, order.alias, receipt.alias}) == 3
    steps = spec.join_steps()
    assert [s.right_dataset for s in steps] == ["DateCustom", "orders", "DateCustom", "DateCustom"]
    assert set(spec.datasets) == {"lineitem", "orders", "DateCustom"}
    assert set(spec.connections) == {"Connection - TPCH", "Connection - DateCustom"}


def test_computed_column_metric(sml_tpch: Path, tmp_path: Path) -> None:
    spec = only_spec(
        load_with(
            sml_tpch,
            tmp_path,
            {
                "unique_name": "revenue_by_mode",
                "label": "x",
                "metrics": ["m_Revenue_sum"],
                "attributes": [attr("L_Ship_Mode Level", "Shipping Mode", partition="key")],
            },
        )
    )
    (metric,) = spec.metrics
    assert (metric.calculation_method.value, metric.dataset, metric.column) == (
        "sum",
        "lineitem",
        "Item Revenue",
    )
    assert metric.column_sql == "L_EXTENDEDPRICE * (1 - L_DISCOUNT)"
    assert metric.sql_for("Snowflake") == metric.column_sql
    (mode,) = spec.attributes
    assert mode.join_path == () and mode.alias == FACT_ALIAS
    assert spec.partition is mode and mode.partition == "key"


def test_customer_nation_region_attributes(sml_tpch: Path, tmp_path: Path) -> None:
    spec = only_spec(
        load_with(
            sml_tpch,
            tmp_path,
            {
                "unique_name": "orders_geo",
                "label": "x",
                "metrics": ["m_order_revenue", "m_o_orderkey_count"],
                "attributes": [
                    attr("Region", "Location - TPCH", "orders_Customer_-_TPCH"),
                    attr("Customer Country", "Customer Location - TPCH"),
                    attr("d_o_orderpriority", "Orders  - TPCH"),
                ],
            },
        )
    )
    region, country, priority = spec.attributes
    assert region.name == "Customer Region" and region.dataset == "region"
    assert [s.right_dataset for s in region.join_path] == ["customer", "nation", "region"]
    assert country.join_path == region.join_path[:2]  # shared prefix, same aliases
    assert country.alias == region.join_path[1].right_alias
    assert priority.join_path == () and priority.key_columns == ("O_ORDERPRIORITY",)
    assert {m.unique_name for m in spec.metrics} == {"m_order_revenue", "m_o_orderkey_count"}


def test_calculation_resolves_to_base_metrics(sml_tpch: Path, tmp_path: Path) -> None:
    spec = only_spec(
        load_with(
            sml_tpch,
            tmp_path,
            {
                "unique_name": "yoy",
                "label": "x",
                "metrics": ["YoY Order Revenue Change", "m_order_revenue"],
                "attributes": [attr("Order Year", DATE)],
            },
        )
    )
    assert spec.requested_metrics == ("YoY Order Revenue Change", "m_order_revenue")
    assert [m.unique_name for m in spec.metrics] == ["m_order_revenue"]  # deduplicated
    assert spec.fact_dataset == "orders"
    (year,) = spec.attributes
    assert [s.relationship for s in year.join_path] == ["Orders-TPCH_DateDimension_Order"]


def test_fingerprint_is_stable_and_tracks_content(sml_tpch: Path, tmp_path: Path) -> None:
    base = {
        "unique_name": "a",
        "label": "A",
        "metrics": ["m_l_tax_sum"],
        "attributes": [attr("Year", DATE, "lineitem_Date_Dimension_ItemShip")],
    }
    first = only_spec(load_with(sml_tpch, tmp_path / "1", base))
    again = only_spec(load_with(sml_tpch, tmp_path / "2", base))
    relabelled = only_spec(load_with(sml_tpch, tmp_path / "3", {**base, "label": "Other"}))
    other_role = only_spec(
        load_with(
            sml_tpch,
            tmp_path / "4",
            {**base, "attributes": [attr("Year", DATE, "lineitem_Date_Dimension_ItemCommit")]},
        )
    )

    # the stored spec's fingerprint: what a republish compares
    def fp(spec):  # type: ignore[no-untyped-def]
        return definition_spec(spec).fingerprint()

    assert fp(first) == fp(again) == fp(relabelled)
    assert len(fp(first)) == 32
    assert fp(other_role) != fp(first)
    repo = copy_repo(sml_tpch, tmp_path / "5" / "repo")
    replace_in(repo, "datasets/lineitem.yml", "table: LINEITEM", "table: LINEITEM_V2")
    add_aggregates(repo, [base])
    moved = only_spec(load_path(repo, env={}))
    assert fp(moved) != fp(first)
    as_dict = first.to_dict()
    assert as_dict["fact_dataset"] == "lineitem"
    assert as_dict["metrics"][0]["calculation_method"] == "sum"


def test_metrics_on_two_facts_make_a_multi_fact_aggregate(sml_tpch: Path, tmp_path: Path) -> None:
    """Metrics of lineitem and orders at a grain both reach (conformed dimensions): one
    spec per fact, the same attributes in the same order, each on its own fact's path."""
    spec = only_spec(
        load_with(
            sml_tpch,
            tmp_path,
            {
                "unique_name": "mixed",
                "label": "x",
                "metrics": ["m_l_tax_sum", "m_order_revenue"],
                "attributes": [attr("Order Year", DATE), attr("d_o_orderpriority", ORDERS)],
            },
        )
    )
    (orders,) = spec.others
    assert (spec.fact_dataset, orders.fact_dataset) == ("lineitem", "orders")
    assert [m.unique_name for m in spec.metrics] == ["m_l_tax_sum"]
    assert [m.unique_name for m in orders.metrics] == ["m_order_revenue"]
    assert [a.name for a in spec.attributes] == [a.name for a in orders.attributes]
    assert [a.conformed for a in spec.attributes] == [a.conformed for a in orders.attributes]
    assert spec.attributes[0].relationships_path[0] == "lineitem_Orders__-_TPCH"
    assert orders.attributes[0].relationships_path[0] == "orders_Orders__-_TPCH"


def test_multi_fact_attribute_unreachable_from_one_fact(sml_tpch: Path, tmp_path: Path) -> None:
    result = load_with(
        sml_tpch,
        tmp_path,
        {
            "unique_name": "mixed",
            "label": "x",
            "metrics": ["m_l_tax_sum", "m_order_revenue"],
            "attributes": [attr("Item Ship Year", DATE)],
        },
    )
    (error,) = result.aggregate_errors
    assert error.yaml_path == "aggregates[0].attributes[0].name"
    assert 'not reachable from dataset "orders"' in error.message
    assert "multi-fact" in error.message
    assert result.ok and result.models[MODEL].aggregates == ()


def test_relationships_path_of_another_fact_selects_the_role_play(
    sml_tpch: Path, tmp_path: Path
) -> None:
    """An orders aggregate naming lineitem's relationship to the Orders dimension: the
    path selects the dimension and role play, so orders' own relationship is used."""
    spec = only_spec(
        load_with(
            sml_tpch,
            tmp_path,
            {
                "unique_name": "orders_by_year",
                "label": "x",
                "metrics": ["m_order_revenue"],
                "attributes": [attr("Year", DATE, "lineitem_Orders__-_TPCH")],
            },
        )
    )
    (year,) = spec.attributes
    assert spec.fact_dataset == "orders" and year.name == "Order Year"
    assert year.relationships_path[0] == "orders_Orders__-_TPCH"


def test_relationships_path_with_no_equivalent_says_which_would_fit(
    sml_tpch: Path, tmp_path: Path
) -> None:
    result = load_with(
        sml_tpch,
        tmp_path,
        {
            "unique_name": "orders_by_ship_year",
            "label": "x",
            "metrics": ["m_order_revenue"],
            "attributes": [attr("Year", DATE, "lineitem_Date_Dimension_ItemShip")],
        },
    )
    (error,) = result.aggregate_errors
    assert error.yaml_path == "aggregates[0].attributes[0].relationships_path"
    assert 'dataset "orders" has no relationship to dimension "Date Dimension"' in error.message
    assert 'role play "Item Ship {0}"' in error.message
