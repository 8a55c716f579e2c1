"""How many rows would an aggregate have? Estimated in the warehouse, never by building it.

The advisor sizes candidate grains before choosing. A full `GROUP BY` of the fact would
cost as much as building the aggregate, so:

- DuckDB (and Spark) count distinct grain values approximately in one pass
  (HyperLogLog over a hash of the grain columns). Each HyperLogLog costs about as much as
  a scan, so a large fact is first read through a row sample of about
  `APPROX_SAMPLE_ROWS` rows: a grain whose values were each seen `SETTLED_SEEN` times on
  average in the sample is taken as counted (at that frequency a value the sample missed
  is rare), and only the others are counted again over the whole fact;
- other engines (PostgreSQL) read a Bernoulli sample of the fact and count how often each
  grain value occurs in it; the GEE estimator (Charikar, Chaudhuri, Motwani and Narasayya,
  2000) scales that frequency profile to the whole table: `sqrt(1/q) * f1 + sum(fj, j>=2)`,
  where `q` is the sampled fraction and `fj` the number of values seen exactly `j` times.

Pure: SQL and arithmetic; the engine runs them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from sqlglot import exp

from aggsched.planning import sharedscan, sqlgen
from aggsched.planning.spec import DefinitionSpec

APPROX_DIALECTS = ("duckdb", "spark")
SAMPLE_ROWS = 200_000
APPROX_SAMPLE_ROWS = 1_000_000
SETTLED_SEEN = 20


def grain_exprs(spec: DefinitionSpec, target: sqlgen.Target) -> list[exp.Expression]:
    """The grain's values (keys, names, incremental partition) over the base tables."""
    return sqlgen.grain_values(spec, target.dialect)


def approx_distinct_select(spec: DefinitionSpec, target: sqlgen.Target) -> exp.Select:
    """SELECT APPROX_COUNT_DISTINCT(HASH(grain...)) over the fact and its joins (DuckDB's
    and Spark's HASH take any number of values)."""
    values = grain_exprs(spec, target) or [exp.Literal.number(1)]
    hashed = exp.Anonymous(this="HASH", expressions=values)
    select = exp.select(exp.ApproxDistinct(this=hashed), copy=False)
    return sqlgen.joined_from(spec, target, select)


def approx_distinct_many(
    specs: Sequence[DefinitionSpec], target: sqlgen.Target, percent: float = 100.0
) -> exp.Select:
    """One pass over the fact for many grains of it: the rows read, then one
    APPROX_COUNT_DISTINCT column per spec, over the union of their joins (the advisor
    sizes dozens of candidates at once); `percent` < 100 reads a row sample of the fact."""
    union = sharedscan.union_spec(list(specs))
    columns = [exp.alias_(exp.Count(this=exp.Star()), "n", copy=False)]
    for i, spec in enumerate(specs):
        values = grain_exprs(spec, target) or [exp.Literal.number(1)]
        hashed = exp.Anonymous(this="HASH", expressions=values)
        columns.append(exp.alias_(exp.ApproxDistinct(this=hashed), f"c{i}", copy=False))
    return _sampled(sqlgen.joined_from(union, target, exp.select(*columns, copy=False)), percent)


def approx_sample_percent(fact_rows: float) -> float:
    """The share of the fact (percent) the first HyperLogLog pass reads: about
    `APPROX_SAMPLE_ROWS` rows, all of a smaller fact."""
    if fact_rows <= 2 * APPROX_SAMPLE_ROWS:
        return 100.0
    return max(0.01, round(100.0 * APPROX_SAMPLE_ROWS / fact_rows, 4))


def settled(distinct: float, rows_read: float, percent: float) -> bool:
    """Whether a distinct count read from a `percent` sample of `rows_read` rows can stand
    for the whole fact: the whole fact was read, or each value was seen `SETTLED_SEEN`
    times on average (a sample misses a value seen that often with odds of about
    e^-SETTLED_SEEN; skew can still hide rare values, which only makes the estimate
    smaller by those few rows)."""
    return percent >= 100.0 or distinct * SETTLED_SEEN <= rows_read


def _sampled(select: exp.Select, percent: float) -> exp.Select:
    """`select` over a Bernoulli row sample of its fact (`percent` of the rows): a
    TABLESAMPLE on a table, a random filter on a SQL dataset. Row sampling, not block
    sampling: a table stored in date order would show block samples few dates."""
    if percent >= 100.0:
        return select
    source = select.args["from_"].this if "from_" in select.args else select.args["from"].this
    sample = exp.TableSample(method=exp.Var(this="BERNOULLI"), percent=exp.Literal.number(percent))
    if isinstance(source, exp.Table):
        source.set("sample", sample)
        return select
    # a SQL dataset: keep each fact row with probability percent / 100
    keep = exp.LT(this=exp.Rand(), expression=exp.Literal.number(percent / 100))
    return select.where(keep, copy=False)


def sample_percent(fact_rows: float) -> float:
    """The share of the fact to sample (percent): about `SAMPLE_ROWS` rows, at most all."""
    if fact_rows <= SAMPLE_ROWS:
        return 100.0
    return max(0.01, round(100.0 * SAMPLE_ROWS / fact_rows, 4))


def profile_select(spec: DefinitionSpec, target: sqlgen.Target, percent: float) -> exp.Select:
    """The frequency profile of the grain in a `percent` sample of the fact: rows of (how
    many times a value occurs, how many values occur that often)."""
    values = grain_exprs(spec, target)
    inner = exp.select(exp.alias_(exp.Count(this=exp.Star()), "n", copy=False), copy=False)
    inner = _sampled(sqlgen.joined_from(spec, target, inner), percent)
    if values:
        inner = inner.group_by(*(v.copy() for v in values), copy=False)
    counted = exp.alias_(exp.Count(this=exp.Star()), "f", copy=False)
    return (
        exp.select(exp.column("n"), counted, copy=False)
        .from_(exp.alias_(inner.subquery(copy=False), "g", table=True, copy=False), copy=False)
        .group_by(exp.column("n"), copy=False)
    )


def gee(profile: Iterable[tuple[int, int]], percent: float, fact_rows: float) -> float:
    """Distinct values in the whole fact from a sample's frequency profile (GEE), between
    the values seen and the fact's rows (at least 1)."""
    counts = {int(n): int(f) for n, f in profile}
    seen = sum(counts.values())
    if percent >= 100.0:
        return float(max(1, seen))
    scale = math.sqrt(100.0 / percent)
    estimate = scale * counts.get(1, 0) + sum(f for n, f in counts.items() if n >= 2)
    return float(max(1.0, seen, min(estimate, fact_rows)))
