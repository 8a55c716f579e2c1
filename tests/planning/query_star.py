"""A tiny hand-made star for query tests (test helper): a sales fact, a stores dimension
that some sales miss, NULL quantities and days; a metric per calculation method, two
semi-additive ones and three calculations; DuckDB loaders and hand-written SQL.

Import as ``from planning.query_star import ...`` (``tests/`` is on ``sys.path``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import duckdb

from aggsched.planning import navigate, sqlgen
from aggsched.planning.cube import (
    CubeAttribute,
    CubeCalculation,
    CubeJoin,
    CubeMetric,
    CubeSpec,
    grain_spec,
)
from aggsched.planning.lattice import Candidate
from aggsched.planning.spec import Incremental, Relation
from aggsched.sml import FACT_ALIAS

SALES = Relation("sales", "wh", table="SALES", schema="S", columns=("DAY", "STORE", "QTY"))
STORES = Relation(
    "stores", "wh", table="STORES", schema="S", columns=("STORE_ID", "CITY", "REG", "REG_NAME")
)
TARGET = sqlgen.Target("duckdb", {"wh": sqlgen.Location(None, "S")})
STORE_JOIN = CubeJoin("st", "stores", FACT_ALIAS, ("STORE",), ("STORE_ID",), "sales_store")


def _attr(
    name: str, alias: str, column: str, path: tuple[str, ...] = (), name_column: str | None = None
) -> CubeAttribute:
    joins = (STORE_JOIN,) if alias == "st" else ()
    return CubeAttribute(
        "sales", name, name, name, name, path, alias, (column,), name_column, joins
    )


ATTRS = {
    "Day": _attr("Day", FACT_ALIAS, "DAY"),
    "Store": _attr("Store", FACT_ALIAS, "STORE"),
    "City": _attr("City", "st", "CITY", ("sales_store",)),
    "Region": _attr("Region", "st", "REG", ("sales_store",), "REG_NAME"),  # key and name
}
COLUMN = {
    "Day": "f.DAY",
    "Store": "f.STORE",
    "City": "st.CITY",
    "Region": "st.REG_NAME",
}  # the value shown
# metric name -> (calculation method, DuckDB's own aggregate over f.QTY, for hand SQL)
METHODS = {
    "q_sum": ("sum", "SUM(f.QTY)"),
    "q_count": ("count non-null", "COUNT(f.QTY)"),
    "q_min": ("minimum", "MIN(f.QTY)"),
    "q_max": ("maximum", "MAX(f.QTY)"),
    "q_avg": ("average", "AVG(f.QTY)"),
    "q_var_pop": ("var_pop", "VAR_POP(f.QTY)"),
    "q_var_samp": ("var_samp", "VAR_SAMP(f.QTY)"),
    "q_std_pop": ("stddev_pop", "STDDEV_POP(f.QTY)"),
    "q_std_samp": ("stddev_samp", "STDDEV_SAMP(f.QTY)"),
    "q_distinct": ("count distinct", "COUNT(DISTINCT f.QTY)"),
    "q_median": ("percentile", "MEDIAN(f.QTY)"),
    "q_approx": ("estimated count distinct", "APPROX_COUNT_DISTINCT(f.QTY)"),
}
EXACT = ["q_distinct", "q_median", "q_approx"]  # only from an aggregate of exactly the grain
DERIVABLE = [m for m in METHODS if m not in EXACT]


def make_cube(incremental: Incremental | None = None) -> CubeSpec:
    metrics = {
        name: CubeMetric(name, name.replace("_", " "), method, "sales", "QTY")
        for name, (method, _) in METHODS.items()
    }
    metrics["q_last"] = CubeMetric("q_last", "Last", "sum", "sales", "QTY", ("last", "Day", ()))
    metrics["q_first"] = CubeMetric("q_first", "First", "sum", "sales", "QTY", ("first", "Day", ()))
    return CubeSpec(
        name="hand",
        relations={"sales": SALES, "stores": STORES},
        attributes=tuple(ATTRS.values()),
        metrics=metrics,
        calculations={
            "avg_ratio": CubeCalculation(
                "avg_ratio", "Ratio", "[Measures].[q_sum] / [Measures].[q_count]"
            ),
            "spread": CubeCalculation(
                "spread", "Spread", "([Measures].[q_max] - [Measures].[q_min]) * 2 + 1"
            ),
            "per_zero": CubeCalculation(
                "per_zero",
                "Per zero",
                "[Measures].[q_sum] / ([Measures].[q_count] - [Measures].[q_count])",
            ),
        },
        relationships={},
        incremental={"sales": incremental} if incremental else {},
    )


CUBE = make_cube(Incremental("DAY", 0, bucket="2", kind="number"))


@dataclass(frozen=True)
class Key:
    table: str
    schema: str = "S"


# --- the warehouse ----------------------------------------------------------------------


def load(db: duckdb.DuckDBPyConnection, sales: list[tuple], stores: list[tuple]) -> None:
    db.execute("CREATE OR REPLACE SCHEMA S")
    db.execute('CREATE TABLE S."SALES" ("DAY" INTEGER, "STORE" INTEGER, "QTY" DOUBLE)')
    db.execute(
        'CREATE TABLE S."STORES" ("STORE_ID" INTEGER, "CITY" VARCHAR, "REG" VARCHAR, '
        '"REG_NAME" VARCHAR GENERATED ALWAYS AS (UPPER("REG")))'
    )
    if sales:
        db.executemany('INSERT INTO S."SALES" VALUES (?, ?, ?)', sales)
    if stores:
        db.executemany(
            'INSERT INTO S."STORES" ("STORE_ID", "CITY", "REG") VALUES (?, ?, ?)', stores
        )


def build(
    db: duckdb.DuckDBPyConnection,
    name: str,
    attrs: list[str],
    metrics: list[str],
    cube: CubeSpec = CUBE,
) -> Candidate[Key]:
    """An aggregate table as the build engine makes it (`base_select`) and its candidate."""
    spec = grain_spec(cube, name, "sales", [(a, ATTRS[a].path) for a in attrs], metrics)
    select = sqlgen.base_select(spec, TARGET)
    db.execute(f'CREATE OR REPLACE TABLE S."{name}" AS {sqlgen.render(select, "duckdb")}')
    (rows,) = db.execute(f'SELECT COUNT(*) FROM S."{name}"').fetchone()  # type: ignore[misc]
    return Candidate(Key(name), spec, rows)


def run(db: duckdb.DuckDBPyConnection, plan: navigate.Plan[Key]) -> list[tuple]:
    return db.execute(plan.sql("duckdb")).fetchall()


def hand_sql(attrs: list[str], metrics: list[str], where: str = "") -> str:
    """The same query written by hand with DuckDB's aggregate functions."""
    grain = [COLUMN[a] for a in attrs]
    items = [*grain, *(METHODS[m][1] for m in metrics)]
    sql = (
        f'SELECT {", ".join(items)} FROM S."SALES" f '
        'LEFT JOIN S."STORES" st ON f.STORE = st.STORE_ID'
    )
    if where:
        sql += f" WHERE {where}"
    if grain:
        sql += f" GROUP BY {', '.join(grain)}"
    return sql


def _sort_key(row: tuple) -> tuple:
    return tuple((v is None, str(type(v)), v if v is not None else 0) for v in row)


def same(a: list[tuple], b: list[tuple]) -> bool:
    if len(a) != len(b):
        return False
    for x, y in zip(sorted(a, key=_sort_key), sorted(b, key=_sort_key), strict=True):
        for u, v in zip(x, y, strict=True):
            if isinstance(u, float) or isinstance(v, float):
                if u is None or v is None:
                    if u is not v:
                        return False
                elif not math.isclose(u, v, rel_tol=1e-9, abs_tol=1e-6):
                    return False
            elif u != v:
                return False
    return True


STORES_ROWS = [
    (1, "Oslo", "North"),
    (2, "Bergen", "North"),
    (3, "Rome", "South"),
    (4, None, "South"),
]
SALES_ROWS = [
    (1, 1, 3.0), (1, 2, 5.0), (1, 3, None), (2, 1, 4.0), (2, 3, 7.5), (2, 9, 1.0),
    (3, 2, None), (3, 4, 2.0), (4, 1, 3.0), (4, 1, 3.0), (5, 3, -1.0), (None, 2, 6.0),
]  # fmt: skip
