"""The aggregate lattice: which built aggregate can a target be rolled up from.

A source serves a target when both summarise the same fact relation the same way
(same incremental partition), the source's grain includes every target attribute through
the same join path, it stores every partial the target needs — compared by what the
partial is (method and column), not by the metric's name — and all of the target's
metrics roll up. Among the sources that qualify the smallest by row count wins.

A multi-fact aggregate holds one slice per fact; each slice serves like a single-fact
aggregate of its own (see `Source.part`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from aggsched.planning.partials import is_derivable, partial_columns
from aggsched.planning.spec import DefinitionSpec

K = TypeVar("K")


@dataclass(frozen=True)
class Candidate(Generic[K]):
    """A built aggregate that could serve as a source: its key, spec and row count."""

    key: K
    spec: DefinitionSpec
    rows: int


@dataclass(frozen=True)
class Source(Generic[K]):
    """The slice of a candidate that serves a target: component `part` of its spec (0 for
    a single-fact aggregate)."""

    candidate: Candidate[K]
    part: int = 0

    @property
    def key(self) -> K:
        return self.candidate.key

    @property
    def spec(self) -> DefinitionSpec:
        """The whole source's spec (its table's layout)."""
        return self.candidate.spec

    @property
    def component(self) -> DefinitionSpec:
        """The single-fact spec of the slice that serves."""
        return self.candidate.spec.components()[self.part]


def can_derive(target: DefinitionSpec, source: DefinitionSpec, *, query: bool = False) -> bool:
    """Whether single-fact `target` can be computed from single-fact `source`'s rows.

    Builds (`query` False) need the same incremental partition and roll-up-able metrics.
    A query reads across partitions, so any partition will do, and it may read distinct
    counts and percentiles from an aggregate of exactly its grain.
    """
    if target.fact.identity != source.fact.identity:
        return False
    if not query and target.incremental != source.incremental:
        return False
    target_attrs = {a.identity for a in target.attributes}
    source_attrs = {a.identity for a in source.attributes}
    if not target_attrs <= source_attrs:
        return False
    exact = query and target_attrs == source_attrs and source.incremental is None
    if not exact and not all(is_derivable(m.method) for m in target.metrics):
        return False
    return set(partial_columns(target)) <= set(partial_columns(source))


def serving_parts(
    target: DefinitionSpec, source: DefinitionSpec, *, query: bool = False
) -> list[int]:
    """Indexes of the components of `source` that can serve single-fact `target`."""
    return [
        i for i, part in enumerate(source.components()) if can_derive(target, part, query=query)
    ]


def choose_source(
    target: DefinitionSpec, candidates: Iterable[Candidate[K]], *, query: bool = False
) -> Source[K] | None:
    """The smallest slice single-fact `target` can be rolled up from, or None (base)."""
    usable = [
        Source(c, part) for c in candidates for part in serving_parts(target, c.spec, query=query)
    ]
    return min(
        usable, key=lambda s: (s.candidate.rows, len(s.spec.attributes), s.part), default=None
    )


def choose_sources(
    target: DefinitionSpec, candidates: Iterable[Candidate[K]]
) -> list[Source[K] | None]:
    """One source (or None) per component of `target`, in component order."""
    pool = list(candidates)
    return [choose_source(part, pool) for part in target.components()]


def build_order(specs: Sequence[DefinitionSpec]) -> list[int]:
    """Indexes of `specs` in build order: finer grains first, so they can serve coarser ones.

    Aggregates that cannot be derived (distinct counts, percentiles) go first too: they
    scan the base tables anyway and may serve as sources for coarser derivable ones.
    """
    return sorted(range(len(specs)), key=lambda i: (-len(specs[i].attributes), specs[i].name))


def possible_sources(specs: Sequence[DefinitionSpec], order: Sequence[int]) -> list[set[int]]:
    """For each spec (by index), the specs built before it in `order` that could serve one
    of its components — what it must wait for when several aggregates are built at once.

    Built one after another, an aggregate picks the smallest source among everything built
    before it (`choose_sources`); built in parallel it must not start before those
    candidates are finished, or it would read the base tables where a serial build rolls
    up. The sets only name earlier steps, so waiting on them never deadlocks.
    """
    waits: list[set[int]] = [set() for _ in specs]
    for pos, i in enumerate(order):
        parts = specs[i].components()
        for j in order[:pos]:
            if any(serving_parts(part, specs[j]) for part in parts):
                waits[i].add(j)
    return waits
