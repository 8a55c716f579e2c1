"""The model's SQL in the stored spec and in generated SQL: source dialects, transpiling,
qualified names, and fingerprints that do not move for fields added later."""

from __future__ import annotations

from dataclasses import replace

import pytest

from aggsched.planning import sqlgen
from aggsched.planning.spec import ComputedColumn, DefinitionSpec, Metric, Relation

SALES = Relation(
    dataset="sales",
    connection="shop",
    table="sales",
    database="TUTORIAL_DATA",
    schema="SHOP",
    columns=("amount", "sale_date"),
    computed={
        "q": ComputedColumn("QUARTER(sale_date)"),
        "t": ComputedColumn("TO_CHAR(sale_date, 'YYYY')"),
    },
)
SPEC = DefinitionSpec(
    name="a", fact_alias="fact", fact=SALES, metrics=(Metric("m", "sum", "fact", "amount"),)
)


@pytest.mark.parametrize(
    ("as_connection", "dialect"),
    [
        ("Snowflake", "snowflake"),
        ("snowflake_prod", "snowflake"),
        ("PostgreSQL warehouse", "postgres"),
        ("Databricks SQL", "databricks"),
        ("BigQuery", "bigquery"),
        ("DuckDB", "duckdb"),
        ("Connection - TPCDS", None),
        (None, None),
    ],
)
def test_platform_named_by_as_connection(as_connection: str | None, dialect: str | None) -> None:
    assert sqlgen.platform_dialect(as_connection) == dialect


def test_dialect_names_as_sml_or_sqlglot_spell_them() -> None:
    assert sqlgen.dialect_name("Postgresql") == "postgres"
    assert sqlgen.dialect_name("DatabricksSQL") == "databricks"
    assert sqlgen.dialect_name("snowflake") == "snowflake"
    with pytest.raises(ValueError, match=r"unknown SQL dialect 'oracle9'.*snowflake"):
        sqlgen.dialect_name("oracle9")


def test_fields_added_later_leave_stored_specs_and_fingerprints_alone() -> None:
    stored = SPEC.to_dict()
    assert "sql_dialect" not in stored["fact"] and "file" not in stored["fact"]
    assert all("map" not in c for c in stored["fact"]["computed"].values())
    located = replace(SPEC, fact=replace(SALES, sql_dialect="snowflake", file="datasets/s.yml"))
    assert located.fingerprint() == SPEC.fingerprint()
    assert DefinitionSpec.from_json(located.to_json()) == located
    other_sql = replace(SPEC, fact=replace(SALES, computed={"q": ComputedColumn("1")}))
    assert other_sql.fingerprint() != SPEC.fingerprint()


def test_sql_is_transpiled_from_its_platform_and_untranslatable_sql_is_named() -> None:
    snowflake = replace(SALES, sql_dialect="snowflake", file="datasets/sales.yml")
    quarter = sqlgen.column_expr("fact", snowflake, "q", "postgres")
    assert (
        sqlgen.render(quarter, "postgres")
        == '(CAST(EXTRACT(QUARTER FROM "fact"."sale_date") AS INT))'
    )
    assert sqlgen.render(sqlgen.column_expr("fact", snowflake, "q", "duckdb"), "duckdb") == (
        '(QUARTER("fact"."sale_date"))'
    )
    with pytest.raises(sqlgen.SqlGenerationError) as caught:
        sqlgen.column_expr("fact", snowflake, "t", "duckdb")
    message = str(caught.value)
    assert "column 't' of dataset 'sales' (datasets/sales.yml)" in message
    assert "written for snowflake, has no duckdb translation" in message


def test_the_warehouse_variant_is_read_in_the_warehouse_dialect() -> None:
    """A `Postgresql` variant is PostgreSQL SQL whatever the platform: not transpiled."""
    column = ComputedColumn("IFF(amount > 1, 1, 0)", {"Postgresql": "amount::int % 7"})
    rel = replace(SALES, sql_dialect="snowflake", computed={"x": column})
    assert sqlgen.render(sqlgen.column_expr("f", rel, "x", "postgres"), "postgres") == (
        '(CAST("f"."amount" AS INT) % 7)'
    )
    assert "CASE WHEN" in sqlgen.render(sqlgen.column_expr("f", rel, "x", "duckdb"), "duckdb")


@pytest.mark.parametrize(
    ("location", "sql", "expected"),
    [
        # the connection's database: dropped unless mapped; its schema: the mapped one
        (sqlgen.Location(None, "s1"), "SELECT * FROM TUTORIAL_DATA.SHOP.t", 'FROM "s1"."t"'),
        (sqlgen.Location("db2", "s1"), "SELECT * FROM tutorial_data.shop.t", 'FROM "db2"."s1"."t"'),
        (
            sqlgen.Location("db2", None),
            "SELECT * FROM TUTORIAL_DATA.SHOP.t",
            'FROM "db2"."SHOP"."t"',
        ),
        (
            sqlgen.Location(None, "s1"),
            "SELECT * FROM SHOP.t JOIN OTHER.u ON 1 = 1",
            'FROM "s1"."t" JOIN "OTHER"."u"',
        ),
        # another database is the model's explicit choice: left as written
        (
            sqlgen.Location(None, "s1"),
            "SELECT * FROM ELSEWHERE.SHOP.t",
            'FROM "ELSEWHERE"."SHOP"."t"',
        ),
        # a CTE or an unqualified table: nothing to map
        (sqlgen.Location(None, "s1"), "WITH c AS (SELECT 1 AS x) SELECT * FROM c", 'FROM "c"'),
    ],
)
def test_qualified_names_in_dataset_sql_follow_the_mapping(
    location: sqlgen.Location, sql: str, expected: str
) -> None:
    rel = replace(SALES, table=None, sql=sql, sql_dialect="snowflake")
    target = sqlgen.Target("postgres", {"shop": location})
    rendered = sqlgen.render(sqlgen.relation_source(rel, "d", target), "postgres")
    assert expected in rendered, rendered


def test_blame_points_at_the_model_sql_a_warehouse_error_names() -> None:
    rel = replace(
        SALES,
        file="datasets/sales.yml",
        computed={"u": ComputedColumn("MY_UDF(amount) + 1"), "v": ComputedColumn("amount * 2")},
    )
    spec = replace(SPEC, fact=rel)
    target = sqlgen.Target("postgres")
    pg = "function my_udf(numeric) does not exist\nLINE 1: ..."
    assert sqlgen.blame(spec, target, pg).startswith(
        "the SQL of column 'u' of dataset 'sales' (datasets/sales.yml): "
    )
    duck = "Catalog Error: Scalar Function with name my_udf does not exist!"
    assert "column 'u'" in sqlgen.blame(spec, sqlgen.Target("duckdb"), duck)
    missing = "column fact.sale_date does not exist"
    assert "column 'sale_date' of dataset 'sales'" in sqlgen.blame(spec, target, missing)
    duck_missing = 'Binder Error: Table "fact" does not have a column named "sale_date"'
    assert "column 'sale_date'" in sqlgen.blame(spec, sqlgen.Target("duckdb"), duck_missing)
    spark = sqlgen.Target("spark")
    spark_udf = "[UNRESOLVED_ROUTINE] Cannot resolve routine `MY_UDF` on search path [...]"
    assert "column 'u'" in sqlgen.blame(spec, spark, spark_udf)
    spark_missing = (
        "[UNRESOLVED_COLUMN.WITH_SUGGESTION] A column, variable, or function parameter with "
        "name `fact`.`sale_date` cannot be resolved. Did you mean one of the following?"
    )
    assert "column 'sale_date' of dataset 'sales'" in sqlgen.blame(spec, spark, spark_missing)
    assert sqlgen.blame(spec, target, "division by zero") is None
