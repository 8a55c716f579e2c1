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
