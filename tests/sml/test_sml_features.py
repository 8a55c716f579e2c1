"""Less common SML features: nested role plays, query datasets, incremental, properties."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from aggsched.sml import load_path, system_aggregates
from sml.helpers import MODEL_FILE, add_aggregates, attr, copy_repo, replace_in


@pytest.fixture
def repo(sml_tpch: Path, tmp_path: Path) -> Path:
    return copy_repo(sml_tpch, tmp_path / "repo")


def test_nested_role_plays_compose(repo: Path) -> None:
    replace_in(
        repo,
        MODEL_FILE,
        "  - unique_name: orders_Customer_-_TPCH\n",
        "  - unique_name: orders_Customer_-_TPCH\n    role_play: Buyer {0}\n",
    )
    add_aggregates(
        repo,
        [
            {
                "unique_name": "a",
                "label": "a",
                "metrics": ["m_order_revenue"],
                "attributes": [attr("Buyer Customer Region", "Buyer Customer Location - TPCH")],
            }
        ],
    )
    result = load_path(repo, env={})
    assert result.errors == []
    (spec,) = result.models["Retail TPCH"].aggregates
    (region,) = spec.attributes
    assert (region.attribute, region.dimension) == ("Region", "Location - TPCH")
    assert region.relationships_path == (
        "orders_Customer_-_TPCH",
        "Customer-TPCH_Location-TPCH_Customer",
    )


def test_query_dataset_with_dialects_and_incremental(repo: Path) -> None:
    replace_in(
        repo,
        "datasets/region.yml",
        "table: REGION",
        "sql: SELECT * FROM REGION\n"
        "dialects:\n"
        "  - dialect: Postgresql\n"
        "    sql: SELECT * FROM region\n"
        "incremental:\n"
        "  column: R_REGIONKEY\n"
        "  grace_period: 12h\n"
        "immutable: true",
    )
    repository = load_path(repo, env={}).unwrap()
    region = repository.datasets["region"]
    assert region.is_query and region.table is None
    assert region.sql_for("postgresql") == "SELECT * FROM region"
    assert region.sql_for("BigQuery") == "SELECT * FROM REGION"
    assert region.incremental is not None
    assert region.incremental.column == "R_REGIONKEY"
    assert region.incremental.grace_period == timedelta(hours=12)
    assert region.immutable is True


def test_bad_incremental_and_dataset_shape(repo: Path) -> None:
    replace_in(
        repo,
        "datasets/region.yml",
        "table: REGION",
        "table: REGION\nincremental:\n  column: R_NOPE\n  grace_period: soon",
    )
    replace_in(repo, "datasets/nation.yml", "table: NATION", "")
    errors = {(e.file, e.yaml_path): e.message for e in load_path(repo, env={}).errors}
    assert (
        "invalid grace_period 'soon'" in errors[("datasets/region.yml", "incremental.grace_period")]
    )
    assert errors[("datasets/nation.yml", "")] == 'a dataset needs "table" or "sql"'


def test_allow_aggregates_false_skips_system_aggregate(repo: Path) -> None:
    text = (repo / MODEL_FILE).read_text()
    (repo / MODEL_FILE).write_text(
        text + "\ndataset_properties:\n  orders:\n    allow_aggregates: false\n"
    )
    result = load_path(repo, env={})
    resolved = result.models["Retail TPCH"]
    facts = {f.name: f.allow_aggregates for f in resolved.fact_datasets}
    assert facts["orders"] is False and facts["lineitem"] is True
    names = {s.unique_name for s in system_aggregates(resolved)}
    assert "system_orders_all" not in names and "system_lineitem_all" in names


def test_other_object_types_are_kept_not_errors(repo: Path) -> None:
    (repo / "composite.yml").write_text(
        "unique_name: Combo\nobject_type: composite_model\nlabel: Combo\nmodels: [Retail TPCH]\n"
    )
    (repo / "rls.yml").write_text("unique_name: rls\nobject_type: row_security\n")
    result = load_path(repo, env={})
    assert result.errors == [] and result.warnings == []
    others = result.unwrap().others
    assert [(o.object_type, o.unique_name) for o in others] == [
        ("composite_model", "Combo"),
        ("row_security", "rls"),
    ]
