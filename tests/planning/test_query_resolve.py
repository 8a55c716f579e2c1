"""`planning.resolve` over the public TPC-H SML model (tests/../shared/fixtures/sml-tpch).

Pure and fast: the model is read once; no warehouse. Role-played dates, attributes
reached along several paths, multi-fact queries, and every refusal with the field it
names and the closest names it offers.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from aggsched.planning.cube import CubeSpec, cube_spec
from aggsched.planning.query import AttributeRef, Condition, Logical, OrderBy, Query, QueryError
from aggsched.planning.resolve import ResolvedQuery, resolve
from aggsched.sml import load_path

SHIP = "lineitem_Date_Dimension_ItemShip"
RECEIPT = "lineitem_Date_Dimension_ItemReceipt"
QTY = "m_l_quantity_sum"


@pytest.fixture(scope="module")
def cube(sml_tpch: Path) -> CubeSpec:
    (model,) = load_path(sml_tpch, env={}).models.values()
    return cube_spec(model)


def ask(cube: CubeSpec, *metrics: str, by: tuple[AttributeRef, ...] = (), **kw) -> ResolvedQuery:  # type: ignore[no-untyped-def]
    return resolve(cube, Query(tuple(metrics), by, **kw))


def refused(cube: CubeSpec, query: Query) -> QueryError:
    with pytest.raises(QueryError) as info:
        resolve(cube, query)
    return info.value


def test_a_role_played_name_selects_its_path(cube: CubeSpec) -> None:
    (part,) = ask(cube, QTY, by=(AttributeRef("Item Ship Year"),)).parts
    (attr,) = part.attributes
    assert (attr.name, attr.level, attr.path) == ("Item Ship Year", "Year", (SHIP,))
    assert part.fact == "lineitem" and part.outputs == 1 and not part.regroups
    assert [j.relationship for j in part.spec.joins] == [SHIP]


def test_a_level_name_shared_by_roles_is_ambiguous_listing_every_full_path(
    cube: CubeSpec,
) -> None:
    error = refused(cube, Query((QTY,), (AttributeRef("Year"),)))
    assert error.field == "attributes[0]"
    message = error.message
    assert message.startswith('ambiguous attribute "Year": 4 paths from dataset "lineitem"')
    for described in (
        f'"Item Ship Year" via [{SHIP}]',
        f'"Item Receipt Year" via [{RECEIPT}]',
        '"Item Commit Year" via [lineitem_Date_Dimension_ItemCommit]',
        '"Order Year" via [lineitem_Orders__-_TPCH, Orders-TPCH_DateDimension_Order]',
    ):
        assert described in message
    assert "relationships_path" in message


def test_relationships_path_or_dimension_picks_the_role(cube: CubeSpec) -> None:
    for ref in (
        AttributeRef("Year", relationships_path=(SHIP,)),
        AttributeRef("Year", dimension="Item Ship Date Dimension"),
    ):
        (part,) = ask(cube, QTY, by=(ref,)).parts
        assert part.attributes[0].path == (SHIP,)
        assert part.attribute(ref) is part.attributes[0]


def test_an_attribute_reached_two_ways_needs_its_path(cube: CubeSpec) -> None:
    """Supplier Region from the supplier fact: straight, or through lineitem and back."""
    metric = "m_s_suppkey_count"
    error = refused(cube, Query((metric,), (AttributeRef("Supplier Region"),)))
    assert 'ambiguous attribute "Supplier Region": 2 paths from dataset "supplier"' in (
        error.message
    )
    direct = ("supplier_Supplier_-_TPCH", "Supplier-TPCH_Location-TPCH_Supplier")
    assert f"via [{', '.join(direct)}]" in error.message
    via_lineitem = "supplier_S_SUPPKEY_to_LineItem - TPCH_L_SUPPKEY"
    for path in ((direct[0],), direct, (via_lineitem,)):
        ref = AttributeRef("Supplier Region", relationships_path=path)
        (part,) = ask(cube, metric, by=(ref,)).parts
        assert part.attributes[0].path[: len(path)] == path
        assert part.exact_only  # a distinct count


def test_another_facts_path_maps_to_this_facts_own_relationship(cube: CubeSpec) -> None:
    """A multi-fact query names a conformed attribute by one fact's path; the other
    fact reaches it through its own relationship to the same dimension."""
    path = ("orders_Orders__-_TPCH", "Orders-TPCH_DateDimension_Order")
    ref = AttributeRef("Order Year", relationships_path=path)
    resolved = ask(cube, QTY, "m_order_revenue", by=(ref,))
    by_fact = {p.fact: p.attributes[0].path for p in resolved.parts}
    assert by_fact == {
        "lineitem": ("lineitem_Orders__-_TPCH", "Orders-TPCH_DateDimension_Order"),
        "orders": path,
    }
    assert resolved.facts == ["lineitem", "orders"]


def test_filtered_attributes_join_the_grain_after_the_outputs(cube: CubeSpec) -> None:
    flt = Logical(
        "and",
        (Condition("Item Receipt Year", "=", (1995,)), Condition("Item Ship Year", ">", (1990,))),
    )
    (part,) = ask(cube, QTY, by=(AttributeRef("Item Ship Year"),), filter=flt).parts
    assert [a.name for a in part.attributes] == ["Item Ship Year", "Item Receipt Year"]
    assert part.outputs == 1 and part.regroups


def test_filters_split_into_attribute_and_metric_parts(cube: CubeSpec) -> None:
    year = Condition("Item Ship Year", "=", (1995,))
    big = Condition(QTY, ">", (10,))
    taxed = Condition("m_l_tax_sum", "<", (3,))
    resolved = ask(cube, QTY, filter=Logical("and", (year, Logical("or", (big, taxed)))))
    assert resolved.attribute_filter == Condition(AttributeRef("Item Ship Year"), "=", (1995,))
    assert resolved.metric_filter == Logical("or", (big, taxed))
    assert set(resolved.bases) == {QTY, "m_l_tax_sum"}  # a filter's metric is computed too
    error = refused(cube, Query((QTY,), filter=Logical("or", (year, big))))
    assert error.field == "filters" and "or-group mixes" in error.message


def test_a_metric_filter_by_label_means_the_metric(cube: CubeSpec) -> None:
    """ "Item Quantity" is m_l_quantity_sum's label: filtered on, it is that metric."""
    resolved = ask(cube, "Item Quantity", filter=Condition("Item Quantity", ">", (5,)))
    assert [m.name for m in resolved.metrics] == [QTY]
    assert resolved.metric_filter == Condition(QTY, ">", (5,))


def test_metrics_of_two_facts_make_two_parts(cube: CubeSpec) -> None:
    resolved = ask(cube, QTY, "m_order_revenue", "m_l_tax_sum")
    assert [(p.fact, [m.name for m in p.metrics]) for p in resolved.parts] == [
        ("lineitem", [QTY, "m_l_tax_sum"]),
        ("orders", ["m_order_revenue"]),
    ]


@pytest.mark.parametrize(
    ("query", "field", "says"),
    [
        (
            Query(("m_l_quantity_sm",)),
            "metrics[0]",
            "unknown metric \"m_l_quantity_sm\" (closest: 'm_l_quantity_sum'",
        ),
        (
            Query((QTY, "Item Taxx")),
            "metrics[1]",
            "unknown metric \"Item Taxx\" (closest: 'Item Tax'",
        ),
        (
            Query((QTY,), (AttributeRef("Item Shipp Year"),)),
            "attributes[0]",
            "unknown attribute \"Item Shipp Year\" (closest: 'Item Ship Year'",
        ),
        (
            Query((QTY,), filter=Condition("Item Shipp Year", "=", (1,))),
            "filters",
            "unknown attribute \"Item Shipp Year\" (closest: 'Item Ship Year'",
        ),
        (
            Query((QTY,), (AttributeRef("Customer Region"),)),
            "attributes[0]",
            'attribute "Customer Region" is not reachable from dataset "lineitem" (metric '
            '"m_l_quantity_sum"): no relationship path leads from it to that attribute '
            "(reachable from: customer, orders)",
        ),
        (
            Query((QTY,), order_by=(OrderBy("m_l_quantity_sumx"),)),
            "order_by[0]",
            'cannot order by "m_l_quantity_sumx": order by a queried attribute or metric '
            "(closest: 'm_l_quantity_sum')",
        ),
        (
            Query(("YTD Order Revenue",)),
            "metrics",
            'calculated metric "YTD Order Revenue" is not arithmetic',
        ),
        (Query(()), "metrics", "at least one metric"),
        (Query((QTY, "Item Quantity")), "metrics", "asked for twice"),
        (
            Query((QTY,), (AttributeRef("Item Ship Year"), AttributeRef("Item Ship Year"))),
            "attributes",
            "asked for twice",
        ),
        (Query((QTY,), limit=100_001), "limit", "between 0 and 100,000"),
        (Query((QTY,), limit=-1), "limit", "between 0 and 100,000"),
        (Query((QTY,), offset=-1), "offset", "must not be negative"),
        (Query((QTY,), filter=Condition("Item Ship Year", "like", ("1%",))), "filters[0]", "like"),
        (Query((QTY,), filter=Condition("Item Ship Year", "between", (1,))), "filters[0]", "2"),
        (Query((QTY,), filter=Condition("Item Ship Year", "in", ())), "filters[0]", "at least"),
        (Query((QTY,), filter=Condition("Item Ship Year", "is_null", (1,))), "filters[0]", "0"),
        (Query((QTY,), filter=Condition("Item Ship Year", "=", (1, 2))), "filters[0]", "got 2"),
        (
            Query((QTY,), filter=Condition("Item Ship Year", "=", ([1],))),
            "filters[0]",
            "strings, numbers, booleans or null",
        ),
    ],
)
def test_refusals_name_the_field_and_the_closest_names(
    cube: CubeSpec, query: Query, field: str, says: str
) -> None:
    error = refused(cube, query)
    assert error.field == field
    assert says in error.message


@pytest.mark.parametrize(
    "ref",
    [
        AttributeRef("Item Ship Year", dimension="Nope"),
        AttributeRef("Item Ship Year", relationships_path=(RECEIPT,)),
    ],
)
def test_a_known_name_with_the_wrong_dimension_or_path_says_what_exists(
    cube: CubeSpec, ref: AttributeRef
) -> None:
    """Not "unreachable from no fact": the name exists, the qualification is wrong."""
    error = refused(cube, Query((QTY,), (ref,)))
    assert error.field == "attributes[0]"
    assert error.message.startswith(f"attribute {ref} matches nothing with that dimension or path")
    assert f'"Item Ship Year" via [{SHIP}] in Item Ship Date Dimension' in error.message


def test_every_calculation_of_the_model_is_refused_naming_it(cube: CubeSpec) -> None:
    for name in cube.calculations:
        error = refused(cube, Query((name,)))
        assert error.field == "metrics" and f'"{name}"' in error.message


def test_calculations_inline_other_calculations_and_refuse_cycles() -> None:
    from dataclasses import replace

    from aggsched.planning.cube import CubeCalculation, CubeMetric
    from planning.query_star import CUBE

    def calcs(**exprs: str) -> CubeSpec:
        return replace(
            CUBE, calculations={n: CubeCalculation(n, n.upper(), e) for n, e in exprs.items()}
        )

    cube = calcs(a="[Measures].[b] * 2", b="[Measures].[q_sum] - [Measures].[q count]")
    (out,) = resolve(cube, Query(("a",))).metrics
    assert out.calc == ("*", ("-", ("ref", "q_sum"), ("ref", "q_count")), ("num", "2"))
    assert set(resolve(cube, Query(("A",))).bases) == {"q_sum", "q_count"}  # by label too
    cycle = calcs(a="[Measures].[b] + 1", b="[Measures].[c]", c="[Measures].[a] / 2")
    error = refused(cycle, Query(("b",)))
    assert error.field == "metrics[0]" and error.message == "calculation cycle: b -> c -> a -> b"
    missing = calcs(a="[Measures].[q_sum] / [Measures].[nope]")
    assert 'unknown metric "nope"' in refused(missing, Query(("a",))).message
    broken = replace(
        CUBE,
        metrics={
            **CUBE.metrics,
            "bad": CubeMetric("bad", "Bad", "sum", "sales", "X", problem="no"),
        },
        calculations={"a": CubeCalculation("a", "A", "[Measures].[bad] + 1")},
    )
    assert refused(broken, Query(("a",))).message == "no"
    assert refused(broken, Query(("bad",))).message == "no"
