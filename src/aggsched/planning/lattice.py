"""The aggregate lattice: which built aggregate can a target be rolled up from.

A source serves a target when both summarise the same fact relation the same way
(same incremental partition), the source's grain includes every target attribute through
the same join path, it stores every partial the target needs, and all of the target's
metrics roll up. Among the sources that qualify the smallest by row count wins.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from aggsched.planning.partials import is_derivable, metric_partials
from aggsched.planning.spec import DefinitionSpec

K = TypeVar("K")


@dataclass(frozen=True)
class Candidate(Generic[K]):
    """A built aggregate that could serve as a source: its key, spec and row count."""

    key: K
    spec: DefinitionSpec
    rows: int


def can_derive(target: DefinitionSpec, source: DefinitionSpec) -> bool:
    if target.fact.identity != source.fact.identity or target.incremental != source.incremental:
        return False
    for metric in target.metrics:  # a metric over a computed column: same SQL in both
        if target.fact.computed.get(metric.column) != source.fact.computed.get(metric.column):
            return False
    if not all(is_derivable(m.method) for m in target.metrics):
        return False
    source_attrs = {a.identity for a in source.attributes}
    if not all(a.identity in source_attrs for a in target.attributes):
        return False
    source_partials = set(metric_partials(source))
    return all(mp in source_partials for mp in metric_partials(target))


def choose_source(
    target: DefinitionSpec, candidates: Iterable[Candidate[K]]
) -> Candidate[K] | None:
    """The smallest candidate the target can be rolled up from, or None (build from base)."""
    usable = [c for c in candidates if can_derive(target, c.spec)]
    return min(usable, key=lambda c: (c.rows, len(c.spec.attributes)), default=None)


def build_order(specs: Sequence[DefinitionSpec]) -> list[int]:
    """Indexes of `specs` in build order: finer grains first, so they can serve coarser ones.

    Aggregates that cannot be derived (distinct counts, percentiles) go first too: they
    scan the base tables anyway and may serve as sources for coarser derivable ones.
    """
    return sorted(range(len(specs)), key=lambda i: (-len(specs[i].attributes), specs[i].name))
