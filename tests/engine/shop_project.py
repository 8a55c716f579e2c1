"""A small SML project written the way public tutorials write them, for a Snowflake
warehouse, with its data in any warehouse (test helper).

It uses what real-world repositories use and TPC-H does not: map columns (key/value text
columns with ``parent_column`` children), Snowflake-only SQL in computed columns
(``QUARTER``, ``DAYOFWEEK``, ``IFF``), and a SQL dataset reading a database-qualified table
(``TUTORIAL_DATA.SHOP.stores``). ``load_shop`` writes the data, plus a ``sales_truth``
table holding by hand what each map key and date part must yield, so tests compare the
built aggregates with hand SQL that shares nothing with the SQL generator.

Import as ``from engine.shop_project import ...`` (``tests/`` is on ``sys.path``).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import yaml

from aggsched.warehouse import open_warehouse

CONNECTION = "Connection - Shop"
MODEL = "Shop Sales"

# sale_id, store_id, sale_date, amount, props, dims, tags
_D = dt.date
SALES: list[tuple[Any, ...]] = [
    (1, 1, _D(2024, 1, 15), "120.00", "color:red,size:S", "weight:1.50,height:2", ";tier=gold;x=1"),
    (
        2,
        1,
        _D(2024, 2, 20),
        "80.00",
        "size:M,color:blue",
        "height:3,weight:2.25",
        ";x=2;tier=silver",
    ),
    (3, 2, _D(2024, 4, 3), "200.00", "color:red", "weight:0.75", ";tier=gold"),
    (4, 2, _D(2024, 7, 9), "50.00", None, None, None),
    (5, 3, _D(2024, 10, 30), "99.99", "colour:green,size:L", "weightx:9", ";tiers=none"),
    (6, 3, _D(2024, 12, 24), "300.00", "xcolor:bad,color:blue", "weight:10.00", ";a=1;tier=bronze"),
    (7, 1, _D(2024, 5, 5), "10.00", "color:,size:S", "", ""),
    (8, 4, _D(2024, 3, 31), "15.50", "color:red,size:XL", "weight:3", ";tier=gold"),
]
# what each sale's map keys hold, written by hand: sale_id -> (color, weight, tier)
TRUTH: dict[int, tuple[str | None, str | None, str | None]] = {
    1: ("red", "1.50", "gold"),
    2: ("blue", "2.25", "silver"),
    3: ("red", "0.75", "gold"),
    4: (None, None, None),
    5: (None, None, None),  # "colour", "weightx", "tiers" are other keys
    6: ("blue", "10.00", "bronze"),  # "xcolor" is another key
    7: ("", None, None),  # "color:" is present and empty
    8: ("red", "3", "gold"),
}
STORES = [(1, "North"), (2, "South"), (3, "East")]  # store 4 has no row: a LEFT JOIN keeps it


def _lit(value: object) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, dt.date):
        return f"DATE '{value.isoformat()}'"
    if isinstance(value, int):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def load_shop(url: str, schema: str) -> None:
    """`sales`, `stores` and `sales_truth` (quarter, Sunday-0 weekday, map values) in
    `schema` of the warehouse at `url`."""
    truth = [
        (sid, (day.month - 1) // 3 + 1, day.isoweekday() % 7, *TRUTH[sid])
        for sid, _, day, *_ in SALES
    ]
    with open_warehouse(url) as wh:
        wh.ensure_schema(schema)
        wh.execute(
            f'CREATE TABLE "{schema}".sales (sale_id INTEGER, store_id INTEGER, sale_date DATE, '
            "amount DECIMAL(10, 2), props VARCHAR(200), dims VARCHAR(200), tags VARCHAR(200))"
        )
        wh.execute(f'CREATE TABLE "{schema}".stores (store_id INTEGER, store_name VARCHAR(50))')
        wh.execute(
            f'CREATE TABLE "{schema}".sales_truth (sale_id INTEGER, quarter INTEGER, '
            "weekday INTEGER, color VARCHAR(20), weight DECIMAL(10, 2), tier VARCHAR(20))"
        )
        # decimals are written as text: cast, as Spark does not store text in a DECIMAL
        decimals = {"sales": {3}, "stores": set(), "sales_truth": {4}}
        for table, rows in (("sales", SALES), ("stores", STORES), ("sales_truth", truth)):
            values = ", ".join(
                "(" + ", ".join(
                    f"CAST({_lit(v)} AS DECIMAL(10, 2))" if i in decimals[table] else _lit(v)
                    for i, v in enumerate(row)
                ) + ")"
                for row in rows
            )  # fmt: skip
            wh.execute(f'INSERT INTO "{schema}".{table} VALUES {values}')


def _dimension(name: str, dataset: str, key: str, name_column: str | None = None) -> dict:
    attribute: dict[str, Any] = {
        "unique_name": name,
        "label": name,
        "dataset": dataset,
        "key_columns": [key],
    }
    if name_column:
        attribute["name_column"] = name_column
    return {
        "unique_name": name,
        "object_type": "dimension",
        "label": name,
        "type": "standard",
        "is_degenerate": dataset == "sales",
        "hierarchies": [
            {"unique_name": f"{name} Hierarchy", "label": name, "levels": [{"unique_name": name}]}
        ],
        "level_attributes": [attribute],
    }


def _metric(name: str, method: str, column: str) -> dict:
    return {
        "unique_name": name,
        "object_type": "metric",
        "label": name,
        "calculation_method": method,
        "dataset": "sales",
        "column": column,
    }


SALES_COLUMNS: list[dict[str, Any]] = [
    {"name": "sale_id", "data_type": "long"},
    {"name": "store_id", "data_type": "long"},
    {"name": "sale_date", "data_type": "date"},
    {"name": "amount", "data_type": "decimal(10,2)"},
    {
        "name": "props",
        "map": {
            "field_terminator": ",",
            "key_terminator": ":",
            "key_type": "string",
            "value_type": "string",
        },
    },
    {"name": "color", "data_type": "string", "parent_column": "props"},
    {"name": "size", "data_type": "string", "parent_column": "props"},
    {
        "name": "dims",
        "map": {
            "field_terminator": ",",
            "key_terminator": ":",
            "key_type": "string",
            "value_type": "decimal(10,2)",
        },
    },
    {"name": "weight", "data_type": "decimal(10,2)", "parent_column": "dims"},
    {
        "name": "tags",
        "map": {
            "field_terminator": ";",
            "key_terminator": "=",
            "key_type": "string",
            "value_type": "string",
            "is_prefixed": True,
        },
    },
    {"name": "tier", "data_type": "string", "parent_column": "tags"},
    {"name": "sale_quarter", "data_type": "int", "sql": "QUARTER(sale_date)"},
    {"name": "sale_weekday", "data_type": "int", "sql": "DAYOFWEEK(sale_date)"},
    {"name": "amount_band", "data_type": "string", "sql": "IFF(amount >= 100, 'large', 'small')"},
]

AGGREGATES: list[dict[str, Any]] = [
    {
        "unique_name": "by_color_tier",
        "label": "Sales by colour and tier",
        "metrics": ["total_amount", "total_weight", "sale_count"],
        "attributes": [
            {"name": "Color", "dimension": "Color"},
            {"name": "Tier", "dimension": "Tier"},
        ],
    },
    {
        "unique_name": "by_quarter_band",
        "label": "Sales by quarter, weekday and amount band",
        "metrics": ["total_amount"],
        "attributes": [
            {"name": "Quarter", "dimension": "Quarter"},
            {"name": "Weekday", "dimension": "Weekday"},
            {"name": "Band", "dimension": "Band"},
        ],
    },
    {
        "unique_name": "by_store",
        "label": "Sales by store",
        "metrics": ["total_amount", "total_weight"],
        "attributes": [{"name": "Store", "dimension": "Store"}],
    },
]


def write_shop(
    target: Path,
    *,
    as_connection: str = "Snowflake",
    sales_columns: list[dict[str, Any]] | None = None,
    aggregates: list[dict[str, Any]] | None = None,
    extra_metrics: dict[str, tuple[str, str]] | None = None,
    extra_dimensions: dict[str, str] | None = None,
) -> Path:
    """The SML repository (one file per object, as the tutorials lay them out), with
    `extra_metrics` (name -> (method, column of sales)) and `extra_dimensions` (degenerate:
    name -> column of sales)."""
    metrics = {
        "total_amount": ("sum", "amount"),
        "total_weight": ("sum", "weight"),
        "sale_count": ("count non-null", "sale_id"),
        **(extra_metrics or {}),
    }
    dimensions = {
        "Color": "color",
        "Tier": "tier",
        "Quarter": "sale_quarter",
        "Weekday": "sale_weekday",
        "Band": "amount_band",
        **(extra_dimensions or {}),
    }
    docs: dict[str, dict[str, Any]] = {
        "catalog.yml": {
            "unique_name": "shop",
            "object_type": "catalog",
            "label": "Shop",
            "version": 1.0,
        },
        "connections/shop.yml": {
            "unique_name": CONNECTION,
            "object_type": "connection",
            "label": "Shop",
            "as_connection": as_connection,
            "database": "TUTORIAL_DATA",
            "schema": "SHOP",
        },
        "datasets/sales.yml": {
            "unique_name": "sales",
            "object_type": "dataset",
            "label": "Sales",
            "connection_id": CONNECTION,
            "table": "sales",
            "columns": sales_columns or SALES_COLUMNS,
        },
        "datasets/stores.yml": {
            "unique_name": "stores",
            "object_type": "dataset",
            "label": "Stores",
            "connection_id": CONNECTION,
            "sql": "SELECT store_id, store_name FROM TUTORIAL_DATA.SHOP.stores",
            "columns": [
                {"name": "store_id", "data_type": "long"},
                {"name": "store_name", "data_type": "string"},
            ],
        },
        "dimensions/store.yml": _dimension("Store", "stores", "store_id", "store_name"),
        **{f"dimensions/{n.lower()}.yml": _dimension(n, "sales", c) for n, c in dimensions.items()},
        **{f"metrics/{n}.yml": _metric(n, *m) for n, m in metrics.items()},
        "models/shop_sales.yml": {
            "unique_name": MODEL,
            "object_type": "model",
            "label": MODEL,
            "dimensions": list(dimensions),
            "metrics": [{"unique_name": m} for m in metrics],
            "relationships": [
                {
                    "unique_name": "sales_store",
                    "from": {"dataset": "sales", "join_columns": ["store_id"]},
                    "to": {"dimension": "Store", "level": "Store"},
                }
            ],
            "aggregates": AGGREGATES if aggregates is None else aggregates,
        },
    }
    for name, doc in docs.items():
        path = target / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return target


HAND_SQL = {
    "by_color_tier": """
SELECT t.color, t.tier, SUM(s.amount), SUM(t.weight), COUNT(s.sale_id)
FROM "{schema}".sales s JOIN "{schema}".sales_truth t ON s.sale_id = t.sale_id
GROUP BY 1, 2""",
    "by_quarter_band": """
SELECT t.quarter, t.weekday, CASE WHEN s.amount >= 100 THEN 'large' ELSE 'small' END,
  SUM(s.amount)
FROM "{schema}".sales s JOIN "{schema}".sales_truth t ON s.sale_id = t.sale_id
GROUP BY 1, 2, 3""",
    "by_store": """
SELECT st.store_id, st.store_name, SUM(s.amount), SUM(t.weight)
FROM "{schema}".sales s JOIN "{schema}".sales_truth t ON s.sale_id = t.sale_id
LEFT JOIN "{schema}".stores st ON s.store_id = st.store_id
GROUP BY 1, 2""",
}
OUR_COLUMNS = {
    "by_color_tier": [
        "color__key",
        "tier__key",
        "total_amount__sum",
        "total_weight__sum",
        "sale_count__count",
    ],
    "by_quarter_band": ["quarter__key", "weekday__key", "band__key", "total_amount__sum"],
    "by_store": ["store__key", "store__name", "total_amount__sum", "total_weight__sum"],
}
