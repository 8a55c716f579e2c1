"""`planning.cube`: the queryable form of a published model.

Pure and fast: the public TPC-H SML model and the hand-made cube of test_query_navigate,
no warehouse.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from aggsched.planning.cube import CubeSpec, SpecError, cube_spec, grain_spec
from aggsched.planning.partials import is_derivable
from aggsched.sml import FACT_ALIAS, load_path
from planning.query_star import ATTRS, CUBE, make_cube


@pytest.fixture(scope="module")
def tpch(sml_tpch: Path) -> CubeSpec:
    (model,) = load_path(sml_tpch, env={}).models.values()
    return cube_spec(model)


def test_a_cube_reads_back_whole_from_its_json(tpch: CubeSpec) -> None:
    """Semi-additive levels, calculations, relationships and incremental partitioning
    survive the round trip (the stored cube is what queries are answered from)."""
    for cube in (CUBE, make_cube(), tpch):
        again = CubeSpec.from_json(cube.to_json())
        assert again == cube
        assert again.to_json() == cube.to_json()
    assert CubeSpec.from_json(CUBE.to_json()).metrics["q_last"].semi == ("last", "Day", ())


def test_every_attribute_is_reached_by_joins_in_dependency_order(tpch: CubeSpec) -> None:
    for attr in tpch.attributes:
        assert attr.key_columns
        seen = {FACT_ALIAS}
        for join in attr.joins:
            assert join.left_alias in seen, attr.describe()
            assert join.dataset in tpch.relations
            assert len(join.left_columns) == len(join.right_columns) > 0
            seen.add(join.alias)
        assert attr.alias in seen  # the attribute's columns come from a joined relation
        if attr.path:
            assert tpch.relationships[attr.path[0]].dataset == attr.fact


def test_attributes_of_a_fact_and_their_shared_joins(tpch: CubeSpec) -> None:
    facts = {a.fact for a in tpch.attributes}
    assert facts == {"lineitem", "orders", "supplier", "customer", "partsupp"}
    for fact in facts:
        assert all(a.fact == fact for a in tpch.attributes_of(fact))
    assert tpch.attributes_of("no such fact") == []
    lineitem = {a.name: a for a in tpch.attributes_of("lineitem")}
    region, country = lineitem["Supplier Region"], lineitem["Supplier Country"]
    joins = tpch.joins([region, country, region])
    # shared joins once each, every join after the one it starts from
    assert [j.alias for j in joins] == list(dict.fromkeys(j.alias for j in region.joins))
    aliases = [FACT_ALIAS, *(j.alias for j in joins)]
    assert all(aliases.index(j.left_alias) < aliases.index(j.alias) for j in joins)


def test_grain_spec_names_what_is_missing() -> None:
    spec = grain_spec(CUBE, "g", "sales", [("City", ("sales_store",))], ["q_sum"])
    assert [a.identity for a in spec.attributes] == [("City", ("sales_store",))]
    assert [j.alias for j in spec.joins] == ["st"]
    with pytest.raises(SpecError, match=r'attribute "City" via \[\] is not in the model'):
        grain_spec(CUBE, "g", "sales", [("City", ())], ["q_sum"])
    with pytest.raises(SpecError, match='metric "nope" of dataset "sales" is not in the model'):
        grain_spec(CUBE, "g", "sales", [], ["nope"])
    with pytest.raises(SpecError, match='metric "q_sum" of dataset "other"'):
        grain_spec(CUBE, "g", "other", [], ["q_sum"])


@pytest.mark.parametrize("metric", sorted(CUBE.metrics))
def test_grain_spec_partitions_only_roll_up_able_metrics(metric: str) -> None:
    """An incremental fact's aggregate is partitioned unless it holds a distinct count or
    a percentile, which cannot be rolled up across partitions."""
    spec = grain_spec(CUBE, "g", "sales", [(n, ATTRS[n].path) for n in ("Day",)], [metric])
    derivable = is_derivable(CUBE.metrics[metric].method)
    assert (spec.incremental is not None) is derivable
    assert spec.incremental in (None, CUBE.incremental["sales"])
