"""A published TPC-H project with user-defined aggregates, ready to build (test helper).

Import as ``from engine.tpch_project import ...`` (``tests/`` is on ``sys.path``).
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import yaml

from aggsched.engine.publish import PublishResult, publish_path
from aggsched.store import Store, catalog
from sml.helpers import add_aggregates, attr, copy_repo, replace_in

DATE = "Date Dimension"
LOCATION = "Location - TPCH"
SHIP = "lineitem_Date_Dimension_ItemShip"

EXTRA_METRICS = {
    "m_l_quantity_avg": ("average", "lineitem", "L_QUANTITY"),
    "m_l_discount_std": ("stddev_samp", "lineitem", "L_DISCOUNT"),
    "m_l_partkey_distinct": ("count distinct", "lineitem", "L_PARTKEY"),
    "m_l_price_max": ("maximum", "lineitem", "L_EXTENDEDPRICE"),
}

AGGREGATES: list[dict[str, Any]] = [
    {
        "unique_name": "li_ship_month_supplier_region",
        "label": "Lineitem by ship month and supplier region",
        "metrics": ["m_Revenue_sum", "m_l_quantity_sum", "m_l_quantity_avg", "m_l_discount_std"],
        "attributes": [
            attr("Month", DATE, SHIP),
            attr("Year", DATE, SHIP),
            attr("Supplier Region", LOCATION),
        ],
    },
    {
        "unique_name": "li_ship_year",
        "label": "Lineitem by ship year",
        "metrics": ["m_Revenue_sum", "m_l_quantity_avg", "m_l_discount_std"],
        "attributes": [attr("Year", DATE, SHIP)],
    },
    {
        "unique_name": "li_parts_by_order_year",
        "label": "Distinct parts by order year",
        "metrics": ["m_l_partkey_distinct", "m_l_price_max"],
        "attributes": [attr("Order Year", DATE)],
    },
    {
        "unique_name": "orders_customer_region",
        "label": "Orders by customer region",
        "metrics": ["m_order_revenue", "m_o_orderkey_count"],
        "attributes": [attr("Customer Region", LOCATION), attr("Customer Country", LOCATION)],
    },
    {
        "unique_name": "customers_by_region",
        "label": "Customers by region",
        "metrics": ["m_c_custkey_count"],
        "attributes": [attr("Region", LOCATION, "customer_Customer_-_TPCH")],
    },
]


def make_repo(source: Path, target: Path, aggregates: list[dict[str, Any]] | None = None) -> Path:
    """A copy of the TPC-H SML repo with extra metrics and the given aggregates."""
    repo = copy_repo(source, target)
    for name, (method, dataset, column) in EXTRA_METRICS.items():
        doc = {
            "unique_name": name,
            "object_type": "metric",
            "label": name,
            "calculation_method": method,
            "dataset": dataset,
            "column": column,
        }
        (repo / "metrics" / f"{name}.yml").write_text(yaml.safe_dump(doc), encoding="utf-8")
    listing = "".join(f"  - unique_name: {n}\n    folder: Extra\n" for n in EXTRA_METRICS)
    replace_in(repo, "models/Retail TPCH.yml", "metrics:\n", "metrics:\n" + listing)
    add_aggregates(repo, AGGREGATES if aggregates is None else aggregates)
    return repo


def map_connections(store: Store, url: str, aggregate_schema: str, org: str = "default") -> None:
    """Both SML connections of the model -> one warehouse (their tables' schemas kept)."""
    with store.session() as s:
        for name in ("Connection - TPCH", "Connection - DateCustom"):
            catalog.upsert_connection(s, org, name, url, aggregate_schema=aggregate_schema)


def publish_tpch(store: Store, repo: Path, url: str, schema: str | None = None) -> PublishResult:
    map_connections(store, url, schema or f"as_agg_{uuid.uuid4().hex[:8]}")
    return publish_path(store, repo)


# ~1,500 customers x a per-row cost: seconds of work a cancel, a timeout or a SIGTERM must cut
SLOW_CUSTOMER_DUCKDB = (
    'SELECT c.* FROM "TPCH_SF1"."CUSTOMER" c, range(200000) t '
    'WHERE hash(t.range + c."C_CUSTKEY") % 1000000007 <> 5 OR t.range = 0'
)
SLOW_CUSTOMER_POSTGRES = (
    'SELECT c.* FROM "TPCH_SF1"."CUSTOMER" c WHERE pg_sleep({delay}) IS NOT NULL'
)
# Spark (the DatabricksSQL variant): ~1,500 x 400,000 rows, tens of seconds on 2 cores
SLOW_CUSTOMER_SPARK = (
    "SELECT c.* FROM `TPCH_SF1`.`CUSTOMER` c CROSS JOIN range(400000) t "
    "WHERE hash(t.id, c.C_CUSTKEY) % 1000000007 <> 5 OR t.id = 0"
)


def slow_repo(source: Path, target: Path, pg_delay_per_row: float = 0.02) -> Path:
    """The TPC-H repo with one customer aggregate whose dataset SQL is slow on purpose
    (DuckDB: a large cross join; PostgreSQL, through its dialect variant: a sleep per row;
    Spark, through its DatabricksSQL variant: a larger cross join)."""
    only = [a for a in AGGREGATES if a["unique_name"] == "customers_by_region"]
    repo = make_repo(source, target, only)
    postgres = SLOW_CUSTOMER_POSTGRES.format(delay=pg_delay_per_row)
    replace_in(
        repo, "datasets/customer.yml", "table: CUSTOMER",
        f"sql: '{SLOW_CUSTOMER_DUCKDB}'\ndialects:\n  - dialect: Postgresql\n    sql: '{postgres}'"
        f"\n  - dialect: DatabricksSQL\n    sql: '{SLOW_CUSTOMER_SPARK}'",
    )  # fmt: skip
    return repo
