"""SML map columns (`map` + `parent_column`): read as the SML reference says, and every
mistake refused at load with the file and the line, never left to fail at build."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from aggsched.planning.aggregates import definition_spec
from aggsched.planning.spec import DefinitionSpec, MapValue
from aggsched.sml import load_path
from aggsched.sml.objects import sql_type
from engine.shop_project import SALES_COLUMNS, write_shop

SALES = "datasets/sales.yml"


def line_of(path: Path, text: str, after: str | None = None) -> int:
    lines = path.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if after in line) if after else 0
    return next(i for i in range(start, len(lines)) if text in lines[i]) + 1


def with_columns(*changes: tuple[str, dict[str, Any] | None]) -> list[dict[str, Any]]:
    """SALES_COLUMNS with columns replaced (None: removed) or added, by name."""
    columns = {c["name"]: dict(c) for c in SALES_COLUMNS}
    for name, column in changes:
        if column is None:
            columns.pop(name)
        else:
            columns[name] = column
    return list(columns.values())


def test_map_columns_load_and_resolve(tmp_path: Path) -> None:
    result = load_path(write_shop(tmp_path / "shop"), env={})
    assert result.errors == [] and result.warnings == []
    sales = result.unwrap().datasets["sales"]
    props, color = sales.column("props"), sales.column("color")
    assert props.map is not None and (props.map.field_terminator, props.map.key_terminator) == (
        ",",
        ":",
    )
    assert not props.is_computed  # the text column itself is physical
    assert color.parent_column == "props" and color.is_computed
    assert sales.column("tags").map.is_prefixed is True
    by_color = next(
        a for a in result.models["Shop Sales"].aggregates if a.unique_name == "by_color_tier"
    )
    spec = definition_spec(by_color)
    weight = spec.fact.computed["weight"].map
    assert weight == MapValue("dims", "weight", ",", ":", "DECIMAL(10, 2)", False)
    assert {"props", "dims", "tags"} <= set(spec.fact.columns)  # the build reads the text
    assert DefinitionSpec.from_json(spec.to_json()) == spec  # stored and read back whole


@pytest.mark.parametrize(
    ("changes", "needle", "message"),
    [
        (
            [("color", {"name": "color", "data_type": "string", "parent_column": "propz"})],
            "parent_column: propz",
            'columns[5].parent_column: unknown parent_column "propz" in this dataset '
            "(its map columns: dims, props, tags)",
        ),
        (
            [("color", {"name": "color", "data_type": "string", "parent_column": "amount"})],
            "parent_column: amount",
            'columns[5].parent_column: parent_column "amount" is not a map column',
        ),
        (
            [
                (
                    "props",
                    {
                        "name": "props",
                        "map": {
                            "field_terminator": ",",
                            "key_type": "string",
                            "value_type": "string",
                        },
                    },
                )
            ],
            "map:",
            'columns[4].map: missing required field "key_terminator"',
        ),
        (
            [
                (
                    "dims",
                    {
                        "name": "dims",
                        "map": {
                            "field_terminator": ",",
                            "key_terminator": ":",
                            "key_type": "string",
                            "value_type": "varchar2",
                        },
                    },
                )
            ],
            "value_type: varchar2",
            'columns[7].map.value_type: unknown value_type "varchar2"',
        ),
        (
            [
                (
                    "dims",
                    {
                        "name": "dims",
                        "map": {
                            "field_terminator": ",",
                            "key_terminator": ",",
                            "key_type": "string",
                            "value_type": "int",
                        },
                    },
                )
            ],
            "key_terminator: ','",
            "columns[7].map.key_terminator: key_terminator must differ from field_terminator",
        ),
        (
            [("size", {"name": "size", "parent_column": "props", "sql": "UPPER(props)"})],
            "parent_column: props",
            "a map value column (parent_column) cannot have sql",
        ),
    ],
    ids=[
        "unknown-parent",
        "parent-not-a-map",
        "missing-terminator",
        "unknown-type",
        "same-terminators",
        "value-with-sql",
    ],
)
def test_map_mistakes_are_refused_with_file_and_line(
    tmp_path: Path, changes: list, needle: str, message: str
) -> None:
    repo = write_shop(tmp_path / "shop", sales_columns=with_columns(*changes))
    result = load_path(repo, env={})
    assert result.repository is None
    errors = [e for e in result.errors if e.file == SALES]
    assert errors, result.errors
    error = errors[0]
    name = changes[0][0]
    assert error.line == line_of(repo / SALES, needle, after=f"name: {name}"), str(error)
    assert message in str(error)
    assert str(error).startswith(f"{SALES}:{error.line}: ")


def test_sml_data_types_map_to_sql_types() -> None:
    assert sql_type("long") == "BIGINT" and sql_type("String") == "VARCHAR"
    assert sql_type("decimal(10, 2)") == "DECIMAL(10, 2)" and sql_type("number(38,0)")
    assert sql_type("decimal") == "DECIMAL(38, 0)"  # scale 0, as Hive and Snowflake
    assert sql_type("datetime") == "TIMESTAMP"
    assert sql_type("decimal(40,2)") is None and sql_type("decimal(5,6)") is None
    assert sql_type("varchar2") is None
