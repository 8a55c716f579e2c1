"""Broken copies of the TPC-H repository: every error found, located, and explained."""

from __future__ import annotations

from pathlib import Path

import pytest

from aggsched.sml import LoadResult, SmlError, SmlLoadError, load_path, load_repository, read_source
from sml.helpers import MODEL_FILE, add_aggregates, attr, copy_repo, replace_in


@pytest.fixture
def repo(sml_tpch: Path, tmp_path: Path) -> Path:
    return copy_repo(sml_tpch, tmp_path / "repo")


def line_of(path: Path, text: str) -> int:
    """1-based line of the first line containing ``text``."""
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if text in line:
            return number
    raise AssertionError(f"{text!r} not in {path}")


def messages(result: LoadResult) -> list[str]:
    return [str(e) for e in result.errors]


def test_error_str_format() -> None:
    err = SmlError("models/Retail TPCH.yml", "aggregates[0].metrics[1]", 42, 'unknown metric "x"')
    assert str(err) == 'models/Retail TPCH.yml:42: aggregates[0].metrics[1]: unknown metric "x"'
    assert str(SmlError("a.yml", "", None, "bad")) == "a.yml: bad"
    assert str(SmlError("a.yml", "", 3, "bad", column=7)) == "a.yml:3:7: bad"


def test_dangling_metric_dataset(repo: Path) -> None:
    replace_in(repo, "metrics/m_l_tax_sum.yml", "dataset: lineitem", "dataset: lineitems")
    result = load_path(repo, env={})
    line = line_of(repo / "metrics/m_l_tax_sum.yml", "dataset: lineitems")
    assert line == 7
    assert messages(result) == [
        f'metrics/m_l_tax_sum.yml:{line}: dataset: unknown dataset "lineitems"'
    ]
    assert result.repository is None
    with pytest.raises(SmlLoadError, match="lineitems"):
        result.unwrap()


def test_dangling_relationship_level(repo: Path) -> None:
    replace_in(repo, "dimensions/Location - TPCH.yml", "      level: Region", "      level: Regio")
    result = load_path(repo, env={})
    (error,) = result.errors
    assert error.file == "dimensions/Location - TPCH.yml"
    assert error.yaml_path == "relationships[0].to.level"
    assert error.line == line_of(repo / error.file, "level: Regio")
    assert 'unknown level "Regio"' in error.message


def test_unknown_metric_in_aggregate_has_exact_location(repo: Path) -> None:
    start = add_aggregates(
        repo, [{"unique_name": "a", "label": "a", "metrics": ["m_l_tax_sum", "m_nope"]}]
    )
    result = load_path(repo, env={})
    # aggregates: / - unique_name / label / metrics: / - m_l_tax_sum / - m_nope
    assert [str(e) for e in result.aggregate_errors] == [
        f'{MODEL_FILE}:{start + 5}: aggregates[0].metrics[1]: unknown metric "m_nope"'
    ]
    # a bad aggregate is not a broken model: the rest publishes, this one is invalid
    assert result.ok and result.errors == []
    (bad,) = result.models["Retail TPCH"].invalid
    assert bad.unique_name == "a" and "m_nope" in bad.reason


def test_yaml_syntax_error_in_needed_file(repo: Path) -> None:
    replace_in(repo, "datasets/orders.yml", "  - name: O_CUSTKEY", "  - name: [O_CUSTKEY")
    result = load_path(repo, env={})
    syntax = [e for e in result.errors if "YAML syntax error" in e.message]
    assert len(syntax) == 1
    assert syntax[0].file == "datasets/orders.yml" and syntax[0].line is not None
    assert syntax[0].column is not None
    # the references to the dataset it defines fail too, and say so
    assert any('unknown dataset "orders"' in e.message for e in result.errors)


def test_unknown_calculation_method(repo: Path) -> None:
    replace_in(
        repo, "metrics/m_l_tax_sum.yml", "calculation_method: sum", "calculation_method: avg"
    )
    result = load_path(repo, env={})
    (error,) = result.errors
    assert (error.file, error.yaml_path, error.line) == (
        "metrics/m_l_tax_sum.yml",
        "calculation_method",
        5,
    )
    assert 'unknown calculation_method "avg"' in error.message and "var_samp" in error.message


def test_ambiguous_role_played_attribute_lists_candidates(repo: Path) -> None:
    add_aggregates(
        repo,
        [
            {
                "unique_name": "a",
                "label": "a",
                "metrics": ["m_l_tax_sum"],
                "attributes": [attr("Year", "Date Dimension")],
            }
        ],
    )
    result = load_path(repo, env={})
    (error,) = result.aggregate_errors
    assert error.yaml_path == "aggregates[0].attributes[0].name"
    assert "ambiguous" in error.message and "4 paths" in error.message
    for rel in (
        "lineitem_Date_Dimension_ItemReceipt",
        "lineitem_Date_Dimension_ItemShip",
        "lineitem_Date_Dimension_ItemCommit",
        "lineitem_Orders__-_TPCH, Orders-TPCH_DateDimension_Order",
    ):
        assert f"[{rel}]" in error.message
    # three of the four paths go straight from the fact: no single suggestion
    assert "straight from the fact" not in error.message


def test_ambiguous_region_through_customer_and_supplier(repo: Path) -> None:
    add_aggregates(
        repo,
        [
            {
                "unique_name": "a",
                "label": "a",
                "metrics": ["m_order_revenue"],
                "attributes": [attr("Region", "Location - TPCH")],
            }
        ],
    )
    (error,) = load_path(repo, env={}).aggregate_errors
    assert '"Customer Region"' in error.message and '"Supplier Region"' in error.message


def test_unreachable_and_unknown_attributes(repo: Path) -> None:
    add_aggregates(
        repo,
        [
            {
                "unique_name": "a",
                "label": "a",
                "metrics": ["m_ps_supplycost_sum"],
                "attributes": [
                    attr("Year", "Date Dimension"),
                    attr("Nope", "Parts - TPCH"),
                    attr("X", "No Such Dimension"),
                ],
            }
        ],
    )
    errors = load_path(repo, env={}).aggregate_errors
    assert [e.yaml_path for e in errors] == [
        "aggregates[0].attributes[0].name",
        "aggregates[0].attributes[1].name",
        "aggregates[0].attributes[2].dimension",
    ]
    assert 'not reachable from dataset "partsupp"' in errors[0].message
    assert 'unknown attribute "Nope"' in errors[1].message
    assert 'unknown dimension "No Such Dimension"' in errors[2].message


def test_two_errors_in_two_files(repo: Path) -> None:
    replace_in(repo, "metrics/m_order_revenue.yml", "column: O_TOTALPRICE", "column: O_PRICE")
    replace_in(
        repo, "datasets/region.yml", "connection_id: Connection - TPCH", "connection_id: Conn"
    )
    result = load_path(repo, env={})
    assert sorted(messages(result)) == [
        'datasets/region.yml:11: connection_id: unknown connection "Conn"',
        'metrics/m_order_revenue.yml:6: column: unknown column "O_PRICE" in dataset "orders"',
    ]


def test_type_errors(repo: Path) -> None:
    add_aggregates(repo, [{"unique_name": "a", "label": "a", "metrics": 5}])
    replace_in(repo, "dimensions/Return Flag.yml", "is_degenerate: true", "is_degenerate: maybe")
    errors = load_path(repo, env={}).errors
    found = {(e.file, e.yaml_path): e.message for e in errors}
    assert found[(MODEL_FILE, "aggregates[0].metrics")] == "expected a list, got a number"
    assert found[("dimensions/Return Flag.yml", "is_degenerate")].startswith("expected true")


def test_duplicate_unique_names(repo: Path) -> None:
    copy = (repo / "metrics/m_l_tax_sum.yml").read_text()
    (repo / "metrics/copy.yml").write_text(copy)
    (error,) = load_path(repo, env={}).errors
    assert error.file == "metrics/m_l_tax_sum.yml"  # sorted: copy.yml is read first
    assert 'duplicate metric "m_l_tax_sum" (also in metrics/copy.yml)' in error.message


def test_calculation_cycle(repo: Path) -> None:
    calc = repo / "calculations/Order Revenue Previous Year.yml"
    calc.write_text(calc.read_text().replace("m_order_revenue", "YoY Order Revenue Change"))
    add_aggregates(
        repo, [{"unique_name": "a", "label": "a", "metrics": ["YoY Order Revenue Change"]}]
    )
    (error,) = load_path(repo, env={}).aggregate_errors
    assert error.yaml_path == "aggregates[0].metrics[0]"
    assert "calculation cycle" in error.message


def test_calculation_without_base_metric(repo: Path) -> None:
    calc = repo / "calculations/YTD Order Revenue.yml"
    calc.write_text(calc.read_text().replace("[Measures].[m_order_revenue]", "[Measures].[zz]"))
    add_aggregates(repo, [{"unique_name": "a", "label": "a", "metrics": ["YTD Order Revenue"]}])
    (error,) = load_path(repo, env={}).aggregate_errors
    assert 'calculation "YTD Order Revenue" references no base metric (unknown: zz)' in str(error)


def test_stray_trailing_tab_still_loads(repo: Path) -> None:
    replace_in(repo, "datasets/nation.yml", "data_type: long\n", "data_type: long\t\n")
    replace_in(repo, MODEL_FILE, "visible: true", "visible: true \t ")
    result = load_path(repo, env={})
    assert result.errors == [] and result.warnings == []
    assert result.unwrap().datasets["nation"].column("N_NATIONKEY").data_type == "long"


def test_unparseable_unrelated_file_is_a_warning(repo: Path) -> None:
    (repo / "metrics/scratch.yml").write_text(
        "unique_name: scratch\nobject_type: metric\n  bad: [\n"
    )
    (repo / "notes.yaml").write_text("just: [unclosed\n")
    result = load_path(repo, env={})
    assert result.errors == []
    assert sorted(w.file for w in result.warnings) == ["metrics/scratch.yml", "notes.yaml"]
    assert all("YAML syntax error" in w.message for w in result.warnings)
    assert result.repository is not None


def test_unresolved_variable_matters_only_where_used(repo: Path) -> None:
    files = read_source(repo)
    del files[".env"]
    result = load_repository(files, env={"date_schema": "PUBLIC"})
    (error,) = result.errors
    assert error.file == "connections/Connection - DateCustom.yml" and error.yaml_path == "database"
    assert "${date_database}" in error.message
    ok = load_repository(files, env={"date_schema": "S", "date_database": "D"})
    assert ok.errors == [] and ok.unwrap().connections["Connection - DateCustom"].database == "D"
    files["connections/unused.yml"] = (
        b"unique_name: u\nobject_type: connection\ndatabase: ${nope}\n"
    )
    unused = load_repository(files, env={"date_schema": "S", "date_database": "D"})
    assert unused.errors == [] and [w.yaml_path for w in unused.warnings] == ["database"]


def test_missing_catalog_and_unknown_object_type(repo: Path) -> None:
    (repo / "catalog.yml").unlink()
    (repo / "extra.yml").write_text("unique_name: x\nobject_type: widget\n")
    result = load_path(repo, env={})
    assert [e.message for e in result.errors] == ["no catalog (catalog.yml) in the repository"]
    assert any('unknown object_type "widget"' in w.message for w in result.warnings)


def test_ambiguous_attribute_suggests_the_path_straight_from_the_fact(repo: Path) -> None:
    """Two paths from orders to the date's Year: one straight from the fact, one through
    the Orders dimension; the message lists both in full and suggests the direct one."""
    replace_in(
        repo, MODEL_FILE, "relationships:\n",
        "relationships:\n  - unique_name: orders_booked_date\n    from:\n      dataset: orders\n"
        "      join_columns:\n        - O_ORDERDATE\n    to:\n      dimension: Date Dimension\n"
        "      level: Day - TPCH\n    role_play: Booked {0}\n",
    )  # fmt: skip
    add_aggregates(
        repo,
        [{"unique_name": "a", "label": "a", "metrics": ["m_order_revenue"],
          "attributes": [attr("Year", "Date Dimension")]}],
    )  # fmt: skip
    (error,) = load_path(repo, env={}).aggregate_errors
    assert "2 paths" in error.message
    assert "relationships_path: [orders_booked_date]" in error.message
    assert "[orders_Orders__-_TPCH, Orders-TPCH_DateDimension_Order]" in error.message
    assert error.message.endswith("straight from the fact: [orders_booked_date]")
