"""Real-world model SQL on real DuckDB, PostgreSQL and Spark: map columns, SQL written for
Snowflake transpiled to the warehouse, database-qualified names in dataset SQL following
the connection mapping, and build errors that point at the SML.

Every built table is compared with hand SQL over a table of hand-written expected values.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from aggsched.engine.builds import BatchRunner, build_now, preview_batch
from aggsched.engine.publish import publish_path
from aggsched.planning.plan import BatchType
from aggsched.store import Store, aggregates, catalog, queue
from aggsched.store.models import BatchStatus, InstanceStatus
from aggsched.warehouse import open_warehouse
from engine.shop_project import (
    CONNECTION,
    HAND_SQL,
    MODEL,
    OUR_COLUMNS,
    SALES_COLUMNS,
    load_shop,
    write_shop,
)
from engine.test_engine_builds import WAREHOUSES, active_of, normalize


@pytest.fixture(params=WAREHOUSES)
def warehouse_url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue(f"tpch_{request.param}")


@pytest.fixture
def store(tmp_path: Path):
    store = Store.open(f"sqlite:///{tmp_path / 'meta.db'}")
    yield store
    store.dispose()


@pytest.fixture
def shop(warehouse_url: str) -> str:
    """A fresh schema with the shop's data: the model's connection says `SHOP`."""
    schema = f"shop_{uuid.uuid4().hex[:8]}"
    load_shop(warehouse_url, schema)
    return schema


def publish_shop(store: Store, repo: Path, url: str, shop: str, **mapping: str | None):
    with store.session() as s:
        catalog.upsert_connection(
            s, "default", CONNECTION, url, aggregate_schema=f"{shop}_agg", schema_override=shop,
            **mapping,  # type: ignore[arg-type]
        )  # fmt: skip
    return publish_path(store, repo)


def build(store: Store, batch_id: uuid.UUID):
    runner = BatchRunner(store, heartbeat_seconds=0.2)
    with store.session() as s:
        assert queue.claim_batch(s, batch_id, runner.worker_id) is not None
    return runner.run(batch_id)


def test_map_columns_snowflake_sql_and_qualified_names_build_right_values(
    store, tmp_path, warehouse_url, shop
):
    result = publish_shop(store, write_shop(tmp_path / "shop"), warehouse_url, shop)
    report = build(store, result.queued_batches[0])
    assert report.status is BatchStatus.DONE, report.message
    active = active_of(store, result.cubes[MODEL])
    with open_warehouse(warehouse_url) as wh:
        for name, hand in HAND_SQL.items():
            table = active[name].table_name
            cols = ", ".join(f'"{c}"' for c in OUR_COLUMNS[name])
            ours = wh.fetch_all(f'SELECT {cols} FROM "{shop}_agg"."{table}"')
            expected = wh.fetch_all(hand.format(schema=shop))
            assert normalize(ours) == normalize(expected), name
            assert len(ours) > 2, name  # several groups: a wrong extraction would show
    steps = {s.name: s for s in report.steps}
    # the SQL dataset read "TUTORIAL_DATA.SHOP.stores": the database went (not mapped) and
    # the schema became the mapped one
    assert f'"{shop}"."stores"' in steps["by_store"].sql.replace("`", '"')  # Spark: `x`
    assert "TUTORIAL_DATA" not in steps["by_store"].sql
    # Snowflake's IFF was transpiled; QUARTER reads as the warehouse can run it
    assert "IFF" not in steps["by_quarter_band"].sql.upper()


def test_qualified_names_follow_a_mapped_database(store, tmp_path, warehouse_url, shop):
    with open_warehouse(warehouse_url) as wh:
        # Spark's level above the schema is the catalog (its "database" is the schema)
        (database,) = wh.fetch_one(
            "SELECT current_catalog()" if wh.dialect == "spark" else "SELECT current_database()"
        )
    only_store = [{"unique_name": "by_store", "metrics": ["total_amount"],
                   "attributes": [{"name": "Store", "dimension": "Store"}]}]  # fmt: skip
    repo = write_shop(tmp_path / "shop", aggregates=only_store)
    result = publish_shop(store, repo, warehouse_url, shop, database_override=database)
    report = build(store, result.queued_batches[0])
    assert report.status is BatchStatus.DONE, report.message
    (sql,) = [step.sql for step in report.steps if step.name == "by_store"]
    sql = sql.replace("`", '"')  # Spark's quotes as the others'
    assert f'"{database}"."{shop}"."stores"' in sql, sql
    assert f'"{database}"."{shop}"."sales"' in sql, sql  # table datasets: as before


# not on Spark: Spark 4 has a ZEROIFNULL of its own
@pytest.mark.parametrize("warehouse_url", ["duckdb", "postgres"], indirect=True)
def test_unknown_platform_reads_sql_as_the_connection_mapping_says(
    store, tmp_path, warehouse_url, shop
):
    """`ZEROIFNULL` is Snowflake's: with no platform known it reaches the warehouse as is
    and fails, naming the SML column; with `--sql-dialect snowflake` it is transpiled."""
    columns = [*SALES_COLUMNS, {"name": "safe_amount", "data_type": "decimal(10,2)",
                                "sql": "ZEROIFNULL(amount)"}]  # fmt: skip
    aggregate = [{"unique_name": "safe_by_store", "metrics": ["safe_total"],
                  "attributes": [{"name": "Store", "dimension": "Store"}]}]  # fmt: skip
    repo = write_shop(
        tmp_path / "shop", as_connection="Shop warehouse", sales_columns=columns,
        aggregates=aggregate, extra_metrics={"safe_total": ("sum", "safe_amount")},
    )  # fmt: skip
    result = publish_shop(store, repo, warehouse_url, shop)
    failed = build(store, result.queued_batches[0])
    assert failed.status is BatchStatus.FAILED
    step = next(s for s in failed.steps if s.name == "safe_by_store")
    assert step.status is InstanceStatus.FAILED
    assert "zeroifnull" in step.error.lower()
    assert "column 'safe_amount' of dataset 'sales' (datasets/sales.yml)" in step.error

    with store.session() as s:
        mapping = catalog.get_connection(s, "default", CONNECTION)
        catalog.upsert_connection(
            s, "default", CONNECTION, mapping.url, aggregate_schema=mapping.aggregate_schema,
            schema_override=shop, sql_dialect="Snowflake",
        )  # fmt: skip
        assert catalog.get_connection(s, "default", CONNECTION).sql_dialect == "snowflake"
    cube = result.cubes[MODEL]
    plan = preview_batch(store, "default", cube, BatchType.MATERIALIZE_PENDING)
    assert "ZEROIFNULL" not in next(p.sql for p in plan if p.name == "safe_by_store").upper()
    report = build_now(store, BatchRunner(store, heartbeat_seconds=0.2), "default", cube,
                       BatchType.MATERIALIZE_PENDING)  # fmt: skip
    assert report.status is BatchStatus.DONE, report.message
    table = active_of(store, cube)["safe_by_store"].table_name
    with open_warehouse(warehouse_url) as wh:
        ours = wh.fetch_all(f'SELECT store__key, safe_total__sum FROM "{shop}_agg"."{table}"')
        hand = wh.fetch_all(
            f'SELECT st.store_id, SUM(COALESCE(s.amount, 0)) FROM "{shop}".sales s '
            f'LEFT JOIN "{shop}".stores st ON s.store_id = st.store_id GROUP BY 1'
        )
    assert normalize(ours) == normalize(hand)


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        # sqlglot knows these have no translation for the warehouse: refused before it runs
        ("TO_CHAR(sale_date, 'YYYY') || TRY_TO_NUMBER(props)", "has no"),
        # unknown to sqlglot: the warehouse refuses, the message names the SML column
        ("MY_SNOWFLAKE_UDF(sale_id)", "my_snowflake_udf"),
    ],
)
def test_sql_without_translation_fails_naming_file_dataset_and_column(
    store, tmp_path, warehouse_url, shop, sql, expected
):
    columns = [*SALES_COLUMNS, {"name": "odd", "data_type": "string", "sql": sql}]
    aggregate = [{"unique_name": "by_odd", "metrics": ["total_amount"],
                  "attributes": [{"name": "Odd", "dimension": "Odd"}]}]  # fmt: skip
    repo = write_shop(
        tmp_path / "shop", sales_columns=columns, aggregates=aggregate,
        extra_dimensions={"Odd": "odd"},
    )  # fmt: skip
    result = publish_shop(store, repo, warehouse_url, shop)
    plan = preview_batch(store, "default", result.cubes[MODEL], BatchType.MATERIALIZE_PENDING)
    planned = next(p for p in plan if p.name == "by_odd")  # a dry run says it, no traceback
    if expected == "has no":
        assert "column 'odd' of dataset 'sales' (datasets/sales.yml)" in planned.problem
    else:
        assert planned.problem is None and "MY_SNOWFLAKE_UDF" in planned.sql
    report = build(store, result.queued_batches[0])
    step = next(s for s in report.steps if s.name == "by_odd")
    assert step.status is InstanceStatus.FAILED
    assert expected in step.error.lower(), step.error
    assert "column 'odd' of dataset 'sales' (datasets/sales.yml)" in step.error, step.error
    with store.session() as s:
        errors = {i.error for i in aggregates.batch_instances(s, report.batch_id) if i.error}
    assert [e for e in errors if "datasets/sales.yml" in e], errors
    with open_warehouse(warehouse_url) as wh:
        assert not [t for t in wh.list_tables(f"{shop}_agg", "as_agg_") if "by_odd" in t]
