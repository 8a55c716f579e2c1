"""How each SML calculation method is stored in an aggregate and re-aggregated.

Additive partials (sum, count, min, max, sum of squares) can be rolled up from a finer
aggregate; distinct counts and percentiles cannot, so aggregates holding them are built
from the base tables at their own grain only.
"""

from __future__ import annotations

from aggsched.planning import spec

PARTIALS: dict[str, tuple[str, ...]] = {
    spec.SUM: ("sum",),
    spec.COUNT_NON_NULL: ("count",),
    spec.MINIMUM: ("min",),
    spec.MAXIMUM: ("max",),
    spec.AVERAGE: ("sum", "count"),
    spec.VAR_POP: ("count", "sum", "sumsq"),
    spec.VAR_SAMP: ("count", "sum", "sumsq"),
    spec.STDDEV_POP: ("count", "sum", "sumsq"),
    spec.STDDEV_SAMP: ("count", "sum", "sumsq"),
    spec.COUNT_DISTINCT: ("count_distinct",),
    spec.ESTIMATED_COUNT_DISTINCT: ("approx_count_distinct",),
    spec.PERCENTILE: ("median",),
}

# How a stored partial rolls up from a finer aggregate; absent = not derivable.
ROLLUP: dict[str, str] = {"sum": "sum", "count": "sum", "min": "min", "max": "max", "sumsq": "sum"}


def partials_of(method: str) -> tuple[str, ...]:
    try:
        return PARTIALS[method]
    except KeyError:
        raise ValueError(f"unknown calculation_method {method!r}") from None


def is_derivable(method: str) -> bool:
    """True when every partial of the method rolls up from a finer grain."""
    return all(p in ROLLUP for p in partials_of(method))


def metric_partials(definition: spec.DefinitionSpec) -> list[tuple[spec.Metric, str]]:
    """(metric, partial) pairs in column order, each partial once per metric."""
    return [(m, p) for m in definition.metrics for p in partials_of(m.method)]
