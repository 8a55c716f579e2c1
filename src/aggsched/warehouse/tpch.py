"""Real TPC-H data (and the DateCustom calendar) in any ``Warehouse``.

Tests, the demo and the benchmarks build aggregates of the TPC-H SML model over real
data. The SML was written for Snowflake, so tables and columns are UPPERCASE
(``"TPCH_SF1"."LINEITEM"."L_ORDERKEY"``); they are created quoted so PostgreSQL keeps them
uppercase. The SML connections name ``SNOWFLAKE_SAMPLE_DATA.TPCH_SF1`` and
``DEMO.PUBLIC``; our warehouses drop the database part and use the schemas ``TPCH_SF1``
and ``PUBLIC``.

Parquet files come from the ``tpchgen-cli`` executable (PyPI package of the same name)
and are cached per scale factor, because generating is the slow part. Spark reads them
where they are: its TPC-H tables are external Parquet tables over the cached files.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
from sqlglot import exp

from aggsched.warehouse import sqlbuild
from aggsched.warehouse.base import Warehouse
from aggsched.warehouse.spark import SparkWarehouse  # pyspark itself is imported on use

TPCH_SCHEMA = "TPCH_SF1"
DATECUSTOM_SCHEMA = "PUBLIC"
DATECUSTOM_TABLE = "DATECUSTOM"
#: Load order: small dimension tables first.
TPCH_TABLES = ("REGION", "NATION", "SUPPLIER", "CUSTOMER", "PART", "PARTSUPP", "ORDERS", "LINEITEM")


class TpchError(RuntimeError):
    """Generating or loading TPC-H data failed (message says which file or step)."""


# ---------------------------------------------------------------------- generation
def default_cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """``$AGGSCHED_CACHE_DIR`` or ``./.aggsched/cache`` (git-ignored in the repo)."""
    env = os.environ if env is None else env
    return Path(env.get("AGGSCHED_CACHE_DIR") or Path.cwd() / ".aggsched" / "cache")


def tpchgen_executable() -> Path:
    """The ``tpchgen-cli`` installed next to this Python (the venv), else on PATH."""
    beside = Path(sys.executable).parent / "tpchgen-cli"
    if beside.exists():
        return beside
    found = shutil.which("tpchgen-cli")
    if found is None:
        raise TpchError(f"tpchgen-cli not found next to {sys.executable} nor on PATH")
    return Path(found)


def parquet_file(parquet_dir: Path, table: str) -> Path:
    """Where ``tpchgen-cli parquet`` writes ``table`` (lowercase file name)."""
    return Path(parquet_dir) / f"{table.lower()}.parquet"


def _complete(directory: Path) -> bool:
    return all(parquet_file(directory, t).is_file() for t in TPCH_TABLES)


def generate_tpch(scale: float, cache_dir: Path) -> Path:
    """Parquet files of all 8 TPC-H tables at ``scale``, in ``cache_dir/tpch-sf<scale>``.

    Generated once; later calls return the cached directory. Generation writes into a
    temporary directory renamed into place, so concurrent test runs never see half a set.
    """
    if not scale > 0:
        raise TpchError(f"TPC-H scale factor must be positive, got {scale!r}")
    target = Path(cache_dir) / f"tpch-sf{scale:g}"
    if _complete(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        _run_tpchgen(scale, staging)
        try:
            staging.rename(target)
        except OSError:
            if not _complete(target):  # a concurrent run did not win the race either
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _run_tpchgen(scale: float, out_dir: Path) -> None:
    cmd = [str(tpchgen_executable()), "parquet", "-s", f"{scale:g}", "-o", str(out_dir), "-q"]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise TpchError(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr.strip()}")
    missing = [t for t in TPCH_TABLES if not parquet_file(out_dir, t).is_file()]
    if missing:
        raise TpchError(f"tpchgen-cli did not write {', '.join(missing)} into {out_dir}")


# ---------------------------------------------------------------------- loading
def parquet_columns(path: Path) -> list[tuple[str, str]]:
    """``(column, DuckDB type)`` pairs of a Parquet file."""
    with duckdb.connect() as con:
        rows = con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [str(path)]).fetchall()
    return [(str(r[0]), str(r[1])) for r in rows]


def _read_parquet(path: Path, columns: Sequence[str]) -> exp.Select:
    """SELECT "c" AS "C", ... FROM read_parquet('path'): the uppercase SML spelling."""
    projections = [exp.alias_(exp.column(c, quoted=True), c.upper(), quoted=True) for c in columns]
    source = exp.func("read_parquet", exp.Literal.string(str(Path(path).resolve())))
    return exp.select(*projections).from_(source)


def load_tpch(warehouse: Warehouse, parquet_dir: Path, schema: str = TPCH_SCHEMA) -> dict[str, int]:
    """(Re)create the 8 TPC-H tables in ``schema`` from ``parquet_dir``; row counts.

    Each table is replaced inside a transaction, so a failed load leaves the old table.
    DuckDB reads the Parquet itself; Spark registers the files as external tables (the
    Spark server must see ``parquet_dir``); other engines get CSV through ``load_csv``.
    """
    files = {t: parquet_file(parquet_dir, t) for t in TPCH_TABLES}
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        raise TpchError(f"TPC-H Parquet files missing: {', '.join(missing)}")
    warehouse.ensure_schema(schema)
    counts = {}
    if isinstance(warehouse, SparkWarehouse):
        for table, path in files.items():
            warehouse.register_parquet(schema, table, str(path.resolve()))
            counts[table] = warehouse.row_count(schema, table)
        return counts
    with tempfile.TemporaryDirectory(prefix="aggsched-tpch-") as scratch:
        for table, path in files.items():
            columns = parquet_columns(path)
            with warehouse.transaction():
                warehouse.drop_table(schema, table)
                if warehouse.dialect == "duckdb":
                    _create_from_parquet(warehouse, schema, table, path, columns)
                else:
                    _copy_from_parquet(warehouse, schema, table, path, columns, Path(scratch))
            counts[table] = warehouse.row_count(schema, table)
    return counts


def _create_from_parquet(
    warehouse: Warehouse, schema: str, table: str, path: Path, columns: list[tuple[str, str]]
) -> None:
    select = _read_parquet(path, [c for c, _ in columns])
    create = exp.Create(kind="TABLE", this=sqlbuild.table(schema, table), expression=select)
    warehouse.execute(warehouse.render(create))


def _copy_from_parquet(
    warehouse: Warehouse,
    schema: str,
    table: str,
    path: Path,
    columns: list[tuple[str, str]],
    scratch: Path,
) -> None:
    upper = [(c.upper(), t) for c, t in columns]
    warehouse.create_table(schema, table, upper)
    csv_path = scratch / f"{table}.csv"
    copy = sqlbuild.copy_to_csv(_read_parquet(path, [c for c, _ in columns]), str(csv_path))
    with duckdb.connect() as con:  # private in-memory DuckDB converts Parquet to CSV
        con.execute(copy.sql(dialect="duckdb"))
    warehouse.load_csv(schema, table, [c for c, _ in upper], csv_path)
    csv_path.unlink()


# ---------------------------------------------------------------------- DateCustom
DATECUSTOM_COLUMNS: tuple[tuple[str, str], ...] = (
    ("PK_DATE", "TIMESTAMP"),
    ("DATEKEY", "BIGINT"),
    ("DATE_NAME", "VARCHAR"),
    ("DAY_OF_WEEK", "BIGINT"),
    ("DAY_OF_WEEK_NAME", "VARCHAR"),
    ("DAY_OF_YEAR", "BIGINT"),
    ("DAY_OF_YEAR_NAME", "VARCHAR"),
    ("HALF_YEAR", "TIMESTAMP"),
    ("HALF_YEAR_NAME", "VARCHAR"),
    ("MONTH", "TIMESTAMP"),
    ("MONTH_NAME", "VARCHAR"),
    ("MONTH_OF_YEAR", "BIGINT"),
    ("MONTH_OF_YEAR_NAME", "VARCHAR"),
    ("QUARTER", "TIMESTAMP"),
    ("QUARTER_NAME", "VARCHAR"),
    ("QUARTER_OF_YEAR", "BIGINT"),
    ("QUARTER_OF_YEAR_NAME", "VARCHAR"),
    ("WEEK", "TIMESTAMP"),
    ("WEEK_NAME", "VARCHAR"),
    ("WEEK_OF_YEAR", "BIGINT"),
    ("WEEK_OF_YEAR_NAME", "VARCHAR"),
    ("YEAR", "TIMESTAMP"),
    ("YEAR_NAME", "VARCHAR"),
)
# Fixed English names: strftime/calendar names depend on the process locale.
_DAY_NAMES = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
_MONTH_NAMES = (
    "January", "February", "March", "April", "May", "June", "July",
    "August", "September", "October", "November", "December",
)  # fmt: skip


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day)


def day_of_week(day: date) -> int:
    """1 = Sunday ... 7 = Saturday (SQL Server DATEPART(weekday) and Quartz numbering)."""
    return day.isoweekday() % 7 + 1


def week_of_year(day: date) -> int:
    """Week number where week 1 holds January 1st and weeks start on Sunday."""
    jan1 = date(day.year, 1, 1)
    return (day.timetuple().tm_yday + day_of_week(jan1) - 2) // 7 + 1


def datecustom_row(day: date) -> tuple[Any, ...]:
    """One DATECUSTOM row, columns in ``DATECUSTOM_COLUMNS`` order.

    Period columns (HALF_YEAR, MONTH, QUARTER, WEEK, YEAR) hold the period's first day at
    midnight; a week is clipped to January 1st so it never spans two years.
    """
    y, m = day.year, day.month
    dow, doy, week = day_of_week(day), day.timetuple().tm_yday, week_of_year(day)
    half, quarter = (m - 1) // 6 + 1, (m - 1) // 3 + 1
    week_start = max(date(y, 1, 1), day - timedelta(days=dow - 1))
    day_name, month_name = _DAY_NAMES[dow - 1], _MONTH_NAMES[m - 1]
    return (
        _midnight(day),
        y * 10000 + m * 100 + day.day,
        f"{day_name}, {month_name} {day.day:02d}, {y}",
        dow,
        day_name,
        doy,
        f"Day {doy}",
        datetime(y, 6 * (half - 1) + 1, 1),
        f"H{half} {y}",
        datetime(y, m, 1),
        f"{month_name} {y}",
        m,
        month_name,
        datetime(y, 3 * (quarter - 1) + 1, 1),
        f"Q{quarter} {y}",
        quarter,
        f"Q{quarter}",
        _midnight(week_start),
        f"Week {week}, {y}",
        week,
        f"Week {week}",
        datetime(y, 1, 1),
        str(y),
    )


def datecustom_rows(start: date, days: int) -> list[tuple[Any, ...]]:
    """``days`` consecutive DATECUSTOM rows from ``start``."""
    if days < 1:
        raise ValueError(f"DateCustom needs at least one day, got days={days}")
    return [datecustom_row(start + timedelta(days=i)) for i in range(days)]


def load_datecustom(
    warehouse: Warehouse,
    schema: str = DATECUSTOM_SCHEMA,
    start: date = date(1990, 1, 1),
    days: int = 3650,
) -> int:
    """(Re)create ``schema.DATECUSTOM`` with one row per day; returns the row count."""
    rows = datecustom_rows(start, days)
    warehouse.ensure_schema(schema)
    with tempfile.TemporaryDirectory(prefix="aggsched-datecustom-") as scratch:
        csv_path = Path(scratch) / "datecustom.csv"
        with csv_path.open("w", newline="", encoding="utf-8") as out:
            csv.writer(out).writerows(rows)
        with _atomically(warehouse):
            warehouse.drop_table(schema, DATECUSTOM_TABLE)
            warehouse.create_table(schema, DATECUSTOM_TABLE, DATECUSTOM_COLUMNS)
            names = [c for c, _ in DATECUSTOM_COLUMNS]
            warehouse.load_csv(schema, DATECUSTOM_TABLE, names, csv_path)
    return warehouse.row_count(schema, DATECUSTOM_TABLE)


@contextmanager
def _atomically(warehouse: Warehouse) -> Iterator[None]:
    """A transaction where the engine has them; on Spark the steps run one by one (a
    failed load is repeated by loading again)."""
    if not warehouse.supports_transactions:
        yield
        return
    with warehouse.transaction():
        yield
