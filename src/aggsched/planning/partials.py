"""How each SML calculation method is stored in an aggregate and re-aggregated.

Additive partials (sum, count, min, max, sum of squares) can be rolled up from a finer
aggregate; distinct counts and percentiles cannot, so aggregates holding them are built
from the base tables at their own grain only.
"""

from __future__ import annotations

from aggsched.planning import spec
from aggsched.sml import CalculationMethod as M

PARTIALS: dict[str, tuple[str, ...]] = {
    M.SUM: ("sum",),
    M.COUNT_NON_NULL: ("count",),
    M.MINIMUM: ("min",),
    M.MAXIMUM: ("max",),
    M.AVERAGE: ("sum", "count"),
    M.VAR_POP: ("count", "sum", "sumsq"),
    M.VAR_SAMP: ("count", "sum", "sumsq"),
    M.STDDEV_POP: ("count", "sum", "sumsq"),
    M.STDDEV_SAMP: ("count", "sum", "sumsq"),
    M.COUNT_DISTINCT: ("count_distinct",),
    M.ESTIMATED_COUNT_DISTINCT: ("approx_count_distinct",),
    M.PERCENTILE: ("median",),
}

# How a stored partial rolls up from a finer aggregate; absent = not derivable.
ROLLUP: dict[str, str] = {"sum": "sum", "count": "sum", "min": "min", "max": "max", "sumsq": "sum"}


def partials_of(method: str) -> tuple[str, ...]:
    try:
        return PARTIALS[method]
    except KeyError:
        raise ValueError(f"unknown calculation_method {method!r}") from None


def is_derivable(method: str) -> bool:
    """True when the method's value at a coarser grain follows from a finer one's partials
    (the SML layer's rule; every partial of such a method is in `ROLLUP`)."""
    partials_of(method)  # unknown methods are an error here too
    return M(method).derivable


def metric_partials(definition: spec.DefinitionSpec) -> list[tuple[spec.Metric, str]]:
    """(metric, partial) pairs in column order, each partial once per metric."""
    return [(m, p) for m in definition.metrics for p in partials_of(m.method)]


PartialKey = tuple[str, str, str, str]


def partial_key(definition: spec.DefinitionSpec, metric: spec.Metric, partial: str) -> PartialKey:
    """What a stored partial is, whatever the metric is called: the partial, and the
    column it aggregates (with the column's SQL when it is computed). Two metrics with
    other names over the same column store the same partial (`sum` of a sum metric and
    of an average), so either one's column can serve the other."""
    relation = definition.fact if metric.alias == definition.fact_alias else None
    computed = relation.computed.get(metric.column) if relation else None
    sql = ""
    if computed is not None:
        sql = repr((computed.sql, sorted(computed.dialect_sql.items())))
    return (partial, metric.alias, metric.column, sql)


def partial_columns(definition: spec.DefinitionSpec) -> dict[PartialKey, spec.Metric]:
    """Each partial `definition` stores -> the (first) metric whose column holds it."""
    found: dict[PartialKey, spec.Metric] = {}
    for metric, partial in metric_partials(definition):
        found.setdefault(partial_key(definition, metric, partial), metric)
    return found
