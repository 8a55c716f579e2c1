"""Demand-defined aggregates: which aggregates to build for the queries users actually run.

The query log is the demand. Each logged query needs a `Grain` (its fact, the attributes it
groups or filters by, the partials its metrics need) and has a weight (how often it ran
times what it cost from the base tables). This module is the pure half of the advisor:

1. `generate_candidates`: candidate grains from demand (each query grain, merges of the
   heaviest ones along the lattice), before the engine estimates their rows.
2. `advise`: the choice among the sized candidates under the budgets (total rows,
   aggregates per cube, minimum benefit per pick), the existing aggregates counting as
   already chosen. A query costs the rows of the smallest chosen or existing aggregate that
   answers it, else its fact's rows (Harinarayan, Rajaraman and Ullman 1996); the choice
   itself, and which guarantee holds for which input, is `viewselect`'s.

One call is one cube (its facts may differ). Candidates and queries are put in a canonical
order (rows, fewest attributes, then the sorted `repr` of their parts) before anything is
chosen, and ties go to the earlier one, so the same demand gives the same advice whatever
order it arrives in and whatever the hash seed.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

from aggsched.planning.viewselect import Problem, Solution, solve


def _frozen(values: Iterable[Hashable]) -> frozenset[Hashable]:
    return values if isinstance(values, frozenset) else frozenset(values)


def _sorted_reprs(values: Iterable[Hashable]) -> tuple[str, ...]:
    return tuple(sorted(repr(v) for v in values))


@dataclass(frozen=True)
class Grain:
    """What a query needs or an aggregate stores: a fact, attributes, partials.

    `fact` is whatever makes two grains comparable (for aggsched: the fact relation's
    identity and its incremental partition); attributes are `(name, relationships path)`
    identities; partials are hashable keys such as `(metric, partial)`. `exact_partials`
    are the ones that do not roll up (distinct counts, percentiles): an aggregate answers
    them only at exactly its own attributes.
    """

    fact: Hashable
    attributes: frozenset[Hashable] = frozenset()
    partials: frozenset[Hashable] = frozenset()
    exact_partials: frozenset[Hashable] = frozenset()

    def __post_init__(self) -> None:
        for name in ("attributes", "partials", "exact_partials"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))
        if both := self.partials & self.exact_partials:
            raise ValueError(f"partials {sorted(map(repr, both))} are both rollup and exact")

    def answers(self, query: Grain) -> bool:
        """True when an aggregate of this grain can answer `query` (same rule as navigation)."""
        if self.fact != query.fact or not query.attributes <= self.attributes:
            return False
        if not query.partials <= self.partials:
            return False
        if not query.exact_partials:
            return True
        return self.attributes == query.attributes and query.exact_partials <= self.exact_partials

    def merge(self, other: Grain) -> Grain:
        """The grain of one aggregate that stores both: unions of attributes and partials."""
        if self.fact != other.fact:
            raise ValueError(
                f"cannot merge grains of different facts {self.fact!r}, {other.fact!r}"
            )
        return Grain(
            self.fact,
            self.attributes | other.attributes,
            self.partials | other.partials,
            self.exact_partials | other.exact_partials,
        )

    @cached_property
    def sort_key(self) -> tuple:
        """A total order that does not depend on hash seeds (frozenset order does)."""
        parts = (self.attributes, self.partials, self.exact_partials)
        return (repr(self.fact), *(_sorted_reprs(p) for p in parts))


def _check_number(what: str, value: float, *, positive: bool = False) -> None:
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        kind = "a positive" if positive else "a non-negative"
        raise ValueError(f"{what} must be {kind} finite number, got {value!r}")


@dataclass(frozen=True)
class Query:
    """One logged query (or several with one grain): its id, grain and weight."""

    id: Hashable
    grain: Grain
    weight: float

    def __post_init__(self) -> None:
        _check_number(f"weight of query {self.id!r}", self.weight)


@dataclass(frozen=True)
class Candidate:
    """A grain with its estimated rows; `existing` is the id of an aggregate already built."""

    grain: Grain
    rows: float
    existing: Hashable | None = None

    def __post_init__(self) -> None:
        _check_number(f"rows of candidate {self.grain.sort_key}", self.rows, positive=True)


@dataclass(frozen=True)
class Budget:
    """Limits on what the advisor may hold per cube; None means no limit."""

    max_rows: float | None = None
    max_per_cube: int | None = 20
    min_benefit: float = 0.0

    def __post_init__(self) -> None:
        if self.max_rows is not None:
            _check_number("max_rows", self.max_rows)
        if self.max_per_cube is not None and (
            isinstance(self.max_per_cube, bool)
            or not isinstance(self.max_per_cube, int)
            or self.max_per_cube < 0
        ):
            raise ValueError(
                f"max_per_cube must be a non-negative integer, got {self.max_per_cube!r}"
            )
        _check_number("min_benefit", self.min_benefit)


@dataclass(frozen=True)
class Pick:
    """A chosen candidate, its benefit after the picks before it, and why it was chosen.

    `justified_by`: ids of the queries whose cost it lowered when it was picked;
    `serves`: ids of the queries it is the cheapest answer for once everything is picked.
    """

    candidate: Candidate
    benefit: float
    justified_by: tuple[Hashable, ...]
    serves: tuple[Hashable, ...]


@dataclass(frozen=True)
class Advice:
    """The picks in pick order, the workload cost before and after, and how it was chosen.

    Costs are weighted rows: `base_cost` with no aggregate, `cost_before` with the existing
    ones, `cost_after` with the picks too (`benefit` = before - after). `guarantee` is a
    proven lower bound on benefit / optimum for this input (1.0 = optimal), the larger of
    the method's a-priori bound and the a-posteriori certificate `optimum_bound` (a proven
    upper bound on the best benefit any choice within the budgets could have).
    """

    picks: tuple[Pick, ...]
    benefit: float
    base_cost: float
    cost_before: float
    cost_after: float
    method: str
    guarantee: float
    optimum_bound: float


# ---------------------------------------------------------------- candidate generation


def generate_candidates(
    queries: Sequence[Query],
    existing: Iterable[Grain] = (),
    *,
    top: int = 8,
    max_merges: int = 64,
) -> list[Grain]:
    """New candidate grains for the logged queries, in canonical order.

    Each distinct query grain, plus merges along the lattice: per fact, the `top` grains
    with the most weight and every union of two or more of them, fewest parts first (then
    the most weight answered), at most `max_merges` per fact. So the count is at most the
    distinct query grains plus, per fact, min(max_merges, 2**top - top - 1). Grains equal
    to an existing aggregate's are left out (the engine passes those as existing).
    """
    if not 0 <= top <= 12:
        raise ValueError(f"top must be between 0 and 12, got {top}")
    if max_merges < 0:
        raise ValueError(f"max_merges must be non-negative, got {max_merges}")
    weights = _grain_weights(queries)
    found = set(weights)
    for fact in sorted({g.fact for g in weights}, key=repr):
        found.update(_merges(weights, fact, top, max_merges, found))
    return sorted(found - set(existing), key=lambda g: g.sort_key)


def _grain_weights(queries: Sequence[Query]) -> dict[Grain, float]:
    """Total weight per grain; exact sums, so ties do not depend on the log's order."""
    weights: dict[Grain, list[float]] = {}
    for q in queries:
        weights.setdefault(q.grain, []).append(q.weight)
    return {g: math.fsum(ws) for g, ws in weights.items()}


def _merges(
    weights: Mapping[Grain, float], fact: Hashable, top: int, limit: int, known: set[Grain]
) -> list[Grain]:
    """Unions of the fact's `top` heaviest grains, smallest merges first, at most `limit`."""
    grains = [g for g in weights if g.fact == fact]
    grains.sort(key=lambda g: (-weights[g], g.sort_key))
    seeds = grains[:top]
    chosen: list[Grain] = []
    seen = set(known)
    for parts in range(2, len(seeds) + 1):
        level = {_union(c) for c in itertools.combinations(seeds, parts)} - seen
        answered = {u: math.fsum(w for g, w in weights.items() if u.answers(g)) for u in level}
        for union in sorted(level, key=lambda u: (-answered[u], u.sort_key)):
            if len(chosen) == limit:
                return chosen
            chosen.append(union)
        seen |= level
    return chosen


def _union(grains: Sequence[Grain]) -> Grain:
    merged = grains[0]
    for g in grains[1:]:
        merged = merged.merge(g)
    return merged


# ---------------------------------------------------------------- selection


def advise(
    queries: Sequence[Query],
    candidates: Sequence[Candidate],
    fact_rows: Mapping[Hashable, float],
    budget: Budget | None = None,
) -> Advice:
    """Choose new aggregates for the demand under the budget.

    `candidates` are the sized new grains plus the existing aggregates (`existing` set);
    `fact_rows` gives each queried fact's rows, the cost of a query no aggregate answers.
    """
    demand = Demand(queries, candidates, fact_rows, budget or Budget())
    return demand.advice(solve(demand.problem))


@dataclass
class _Group:
    """The queries of one grain: summed weight, ids in input order, and base cost."""

    grain: Grain
    weight: float
    base: float
    ids: list[Hashable] = field(default_factory=list)


class Demand:
    """The advisor's input as a view-selection `Problem`, and the way back to grains.

    `new[i]` is the problem's candidate i; `groups[g]` its query group g.
    """

    def __init__(
        self,
        queries: Sequence[Query],
        candidates: Sequence[Candidate],
        fact_rows: Mapping[Hashable, float],
        budget: Budget,
    ) -> None:
        self.groups = _groups(queries, fact_rows)
        existing = [c for c in candidates if c.existing is not None]
        self.new = _new_candidates(candidates)
        self.problem = Problem(
            weights=[g.weight for g in self.groups],
            start=[_cost(g, existing) for g in self.groups],
            rows=[c.rows for c in self.new],
            covers=[self._covers(c) for c in self.new],
            max_rows=_left(budget.max_rows, math.fsum(c.rows for c in existing)),
            max_count=_left(budget.max_per_cube, len(existing)),
            min_gain=budget.min_benefit,
        )

    def _covers(self, candidate: Candidate) -> list[int]:
        return [k for k, g in enumerate(self.groups) if candidate.grain.answers(g.grain)]

    def advice(self, solution: Solution) -> Advice:
        """The solution's steps as picks of candidates with query ids, and the costs."""
        picks = tuple(
            Pick(self.new[s.candidate], s.gain, self._ids(s.lowered), self._ids(s.serves))
            for s in solution.steps
        )
        before = sum(g.weight * c for g, c in zip(self.groups, self.problem.start, strict=True))
        return Advice(
            picks=picks,
            benefit=solution.value,
            base_cost=sum(g.weight * g.base for g in self.groups),
            cost_before=before,
            cost_after=before - solution.value,
            method=solution.method,
            guarantee=solution.guarantee,
            optimum_bound=solution.optimum_bound,
        )

    def _ids(self, groups: Iterable[int]) -> tuple[Hashable, ...]:
        return tuple(qid for g in groups for qid in self.groups[g].ids)


def _groups(queries: Sequence[Query], fact_rows: Mapping[Hashable, float]) -> list[_Group]:
    """Queries grouped by grain, in canonical grain order; base cost = the fact's rows."""
    groups: dict[Grain, _Group] = {}
    for q in queries:
        if q.grain not in groups:
            groups[q.grain] = _Group(q.grain, 0.0, _fact_rows(q, fact_rows))
        groups[q.grain].ids.append(q.id)
    for grain, weight in _grain_weights(queries).items():
        groups[grain].weight = weight
    return sorted(groups.values(), key=lambda g: g.grain.sort_key)


def _fact_rows(query: Query, fact_rows: Mapping[Hashable, float]) -> float:
    if query.grain.fact not in fact_rows:
        raise ValueError(f"no row count for fact {query.grain.fact!r} (query {query.id!r})")
    rows = fact_rows[query.grain.fact]
    _check_number(f"rows of fact {query.grain.fact!r}", rows)
    return rows


def _new_candidates(candidates: Sequence[Candidate]) -> list[Candidate]:
    """The proposed candidates in canonical order; a grain given twice (or equal to an
    existing aggregate's) is an error."""
    seen = {c.grain for c in candidates if c.existing is not None}
    new = []
    for c in candidates:
        if c.existing is None:
            if c.grain in seen:
                raise ValueError(f"candidate grain {c.grain.sort_key} is given twice")
            seen.add(c.grain)
            new.append(c)
    return sorted(new, key=lambda c: (c.rows, len(c.grain.attributes), c.grain.sort_key))


def _cost(group: _Group, existing: Sequence[Candidate]) -> float:
    """The group's cost with the existing aggregates: the smallest that answers it."""
    return min([group.base] + [c.rows for c in existing if c.grain.answers(group.grain)])


def _left(limit: float | None, used: float) -> float | None:
    """What a budget leaves for new picks once the existing aggregates are counted."""
    return None if limit is None else max(limit - used, 0)
