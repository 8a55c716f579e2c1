"""Budgeted view selection on a lattice: the numeric core of the aggregate advisor.

Cost model (Harinarayan, Rajaraman and Ullman, "Implementing data cubes efficiently",
1996): a query costs the rows of the smallest selected view that answers it, else what it
costs now (its fact's rows, or an existing aggregate's). A `Problem` says, per candidate,
its rows and which query groups it answers; the benefit f(S) of a set is the weighted cost
it removes. f is monotone and submodular (a weighted facility-location function), which is
what every guarantee below rests on. Budgets: total rows, number of views, and a minimum
benefit per pick.

Notation: n = eligible candidates (those that lower some cost, fit the rows alone and are
not dominated by another that is no larger and lowers every cost they do; dropping
dominated ones never changes the optimum); m = the most candidates that fit both budgets at
once. `solve` looks at which budgets can bind and runs:

- all eligible candidates fit both budgets: all of them. Optimal.
- only the rows can bind: partial enumeration (Sviridenko 2004): every feasible seed of at
  most d candidates, completed by the HRU benefit-per-row greedy (a candidate that no
  longer fits is skipped, the next one is tried); the best completion wins. d is the
  largest of 3, 2, 1 whose seeds number at most `MAX_COMPLETIONS`: d = 3 up to n = 22, 2
  up to n = 62, then 1. d = 3: 1 - 1/e (Sviridenko); d = 2: 1 - 1/e (Kulik, Schwartz and
  Shachnai, "A refined analysis of submodular greedy", 2021); d = 1 (the empty seed is
  the plain greedy, the best single candidate is a seed): (1 - 1/e) / 2 (Khuller, Moss and
  Naor 1999), and the a-posteriori certificate below.
- only the count can bind: the same enumeration completed by the benefit greedy. Its empty
  seed is the plain greedy under a cardinality limit: 1 - 1/e at any n (Nemhauser, Wolsey
  and Fisher 1978).
- both can bind: no simple greedy has a constant bound then (cheap, dense candidates use
  up the count; the plain HRU greedy's ratio can be near 0). The enumeration runs with
  three greedy orders (benefit per row, benefit, benefit per share of the tighter budget;
  d = 3 up to n = 15, 2 up to n = 35, then 1) and its best result starts a branch and
  bound over the feasible sets (bound: the gains given the current set, relaxed to the
  best `count` of them and to a fractional knapsack of the rows). If the search ends
  within `NODE_LIMIT` nodes, as it always does for n <= 14 (2**14 sets), the result is
  optimal; otherwise no a-priori bound holds, only the certificate below.
- in every case, d >= m makes every feasible set a seed: optimal.

Besides that a-priori bound, every solution is certified a posteriori: for any set S,
f(OPT) <= f(S) + the same relaxation of the gains given S, so the value divided by the
least such bound over the prefixes of the solution is a proven lower bound on
benefit / optimum for this very problem. `Solution.guarantee` is the larger of the two.

Both guarantees are for a minimum benefit of 0. A positive minimum only removes picks: no
candidate is added, or used in a seed, while its benefit at that point is below it, and a
solution is finally listed in greedy order (largest benefit first, each counted after the
picks before it) and cut where a benefit falls below the minimum. Ties go to the lower
candidate index everywhere, so the caller's order decides them.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

GUARANTEE = 1 - 1 / math.e
MAX_COMPLETIONS = 2_000
NODE_LIMIT = 20_000
ROUNDING = 1e-9  # the row budget is met to this relative rounding (sums of floats)

Key = Literal["ratio", "benefit", "balanced"]


@dataclass(frozen=True)
class Problem:
    """Candidate i, if picked, caps the cost of each query group in `covers[i]` at `rows[i]`.

    `weights` and `start` are per query group (weight, and cost before any pick);
    `max_rows` and `max_count` are what the picks may use (None: no limit); the rows are
    met to a relative `ROUNDING`, so that a set summing to exactly `max_rows` fits.
    """

    weights: Sequence[float]
    start: Sequence[float]
    rows: Sequence[float]
    covers: Sequence[Iterable[int]]
    max_rows: float | None = None
    max_count: int | None = None
    min_gain: float = 0.0

    def __post_init__(self) -> None:
        if len(self.weights) != len(self.start) or len(self.rows) != len(self.covers):
            raise ValueError("weights/start and rows/covers must have equal lengths")


@dataclass(frozen=True)
class Step:
    """One pick in greedy order: its gain after the picks before it, the groups whose cost
    it lowered then, and the groups it is the cheapest answer for at the end."""

    candidate: int
    gain: float
    lowered: tuple[int, ...]
    serves: tuple[int, ...]


@dataclass(frozen=True)
class Solution:
    """The picks in greedy order, their total gain, how they were found, and the proven
    lower bound on value / optimum (`guarantee`) with the upper bound on the optimum."""

    steps: tuple[Step, ...]
    value: float
    method: str
    guarantee: float
    optimum_bound: float


def solve(problem: Problem) -> Solution:
    """Choose views for the problem under its budgets (see the module docstring)."""
    selection = Selection(problem)
    chosen, method, bound = selection.auto()
    return selection.solution(chosen, method, bound)


class Selection:
    """A problem with its eligible candidates and the algorithms that solve it.

    Public so that tests and the benchmark can run each algorithm on the same problem.
    Indices are the problem's candidate indices; only `active` ones are ever picked.
    """

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        self.room = math.inf if problem.max_rows is None else problem.max_rows * (1 + ROUNDING)
        self.rows = list(problem.rows)
        self.pairs = [self._pairs(i) for i in range(len(self.rows))]
        fits = [i for i in range(len(self.rows)) if self.pairs[i] and self._fits_alone(i)]
        self.active = [i for i in fits if not self._dominated(i, fits)]
        self.gain0 = {i: self.gain(i, problem.start) for i in self.active}

    def _pairs(self, i: int) -> list[tuple[int, float]]:
        """(group, weight) of every group candidate i could make cheaper."""
        p = self.problem
        groups = sorted(set(p.covers[i]))
        return [(g, p.weights[g]) for g in groups if p.weights[g] > 0 and p.start[g] > p.rows[i]]

    def _fits_alone(self, i: int) -> bool:
        return self.rows[i] <= self.room

    def _dominated(self, i: int, among: Sequence[int]) -> bool:
        """Is another candidate no larger that lowers every cost i does? Swapping i for it
        never loses; among equals (same rows, same groups) the lowest index stays."""
        mine = {g for g, _ in self.pairs[i]}
        for j in among:
            if j == i or self.rows[j] > self.rows[i]:
                continue
            theirs = {g for g, _ in self.pairs[j]}
            if mine <= theirs and (self.rows[j] < self.rows[i] or theirs != mine or j < i):
                return True
        return False

    # -- budgets

    @property
    def n(self) -> int:
        return len(self.active)

    @cached_property
    def fit_by_rows(self) -> int:
        """The most active candidates that fit the rows (smallest first)."""
        fit, used = 0, 0.0
        for rows in sorted(self.rows[i] for i in self.active):
            if used + rows > self.room:
                break
            fit, used = fit + 1, used + rows
        return fit

    @cached_property
    def max_picks(self) -> int:
        """m: the most active candidates that fit both budgets at once."""
        count = self.problem.max_count
        return self.fit_by_rows if count is None else min(self.fit_by_rows, count)

    @cached_property
    def count_binds(self) -> bool:
        """Does some set that fits the rows have too many candidates?"""
        return self.problem.max_count is not None and self.fit_by_rows > self.problem.max_count

    @cached_property
    def rows_binds(self) -> bool:
        """Does some set that fits the count have too many rows?"""
        most = self.n if self.problem.max_count is None else self.problem.max_count
        largest = sorted((self.rows[i] for i in self.active), reverse=True)[:most]
        return sum(largest) > self.room

    # -- evaluation

    def gain(self, i: int, cost: Sequence[float]) -> float:
        """Weighted cost that candidate i removes from the state `cost`."""
        rows = self.rows[i]
        return sum(w * (cost[g] - rows) for g, w in self.pairs[i] if cost[g] > rows)

    def _apply(self, i: int, cost: list[float]) -> list[tuple[int, float]]:
        """Pick candidate i in `cost`; return the changed (group, old cost) for undo."""
        rows = self.rows[i]
        changed = [(g, cost[g]) for g, _ in self.pairs[i] if cost[g] > rows]
        for g, _ in changed:
            cost[g] = rows
        return changed

    def _state(self, chosen: Iterable[int]) -> list[float]:
        cost = list(self.problem.start)
        for i in chosen:
            self._apply(i, cost)
        return cost

    def value(self, chosen: Iterable[int]) -> float:
        """f(chosen): the weighted cost removed."""
        cost = self._state(chosen)
        p = self.problem
        return sum(w * (s - c) for w, s, c in zip(p.weights, p.start, cost, strict=True))

    def feasible(self, chosen: Sequence[int]) -> bool:
        p = self.problem
        rows_ok = sum(self.rows[i] for i in chosen) <= self.room
        return rows_ok and (p.max_count is None or len(chosen) <= p.max_count)

    def _worth(self, gain: float) -> bool:
        return gain > 0 and gain >= self.problem.min_gain

    # -- algorithms

    def auto(self) -> tuple[list[int], str, float]:
        """Pick the algorithm by which budgets can bind; see the module docstring."""
        if self.max_picks == 0:
            return [], "nothing to pick", 1.0
        if self.feasible(self.active):
            return list(self.active), "all eligible", 1.0
        if not self.count_binds:
            return self._enumerated(("ratio",), GUARANTEE)
        if not self.rows_binds:
            return self._enumerated(("benefit",), GUARANTEE)
        seed, name, bound = self._enumerated(("ratio", "benefit", "balanced"), 0.0)
        if bound == 1.0:  # every feasible set was a seed
            return seed, name, bound
        chosen, complete = self.branch_and_bound(seed)
        if complete:
            return chosen, "branch and bound (complete)", 1.0
        return chosen, f"{name}, then branch and bound (stopped at {NODE_LIMIT} nodes)", bound

    def _enumerated(self, keys: tuple[Key, ...], bound: float) -> tuple[list[int], str, float]:
        depth = self.depth_for(len(keys))
        if depth >= self.max_picks:
            bound = 1.0
        elif depth == 1 and keys == ("ratio",):
            bound = GUARANTEE / 2
        name = f"partial enumeration (seeds <= {depth}, {'/'.join(keys)} greedy)"
        return self.enumerate(depth, keys), name, bound

    def depth_for(self, keys: int) -> int:
        """The largest seed size <= 3 whose completions number at most MAX_COMPLETIONS."""
        for depth in (3, 2):
            if keys * _subsets(self.n, depth) <= MAX_COMPLETIONS:
                return depth
        return 1

    def greedy(self, seed: Sequence[int] = (), key: Key = "ratio") -> list[int]:
        """Complete `seed` greedily by `key`, lazily (a gain can only shrink as picks grow).

        A candidate that no longer fits the rows is skipped for good, as in Sviridenko's
        algorithm; one whose gain is zero or below the minimum benefit likewise.
        """
        chosen, cost = list(seed), self._state(seed)
        rows_left = self._rows_left(chosen)
        score = self._scorer(key)
        heap = [(-score(i, self.gain0[i]), i) for i in self.active if i not in chosen]
        heapq.heapify(heap)
        count = self.problem.max_count
        while heap and (count is None or len(chosen) < count):
            _, i = heapq.heappop(heap)
            gain = self.gain(i, cost)
            if self.rows[i] > rows_left or not self._worth(gain):
                continue
            entry = (-score(i, gain), i)
            if heap and entry > heap[0]:
                heapq.heappush(heap, entry)
                continue
            chosen.append(i)
            self._apply(i, cost)
            rows_left -= self.rows[i]
        return chosen

    def enumerate(self, depth: int, keys: Sequence[Key] = ("ratio",)) -> list[int]:
        """Best greedy completion (by each key) of every feasible seed of <= depth picks."""
        best: list[int] = []
        best_value = 0.0
        for seed in self._seeds(depth):
            for key in keys:
                chosen = self.greedy(seed, key)
                value = self.value(chosen)
                if value > best_value:
                    best, best_value = chosen, value
        return best

    def _seeds(self, depth: int) -> Iterable[list[int]]:
        """Feasible seeds whose every pick adds a benefit worth having, given those before.

        A seed with a pick that adds nothing cannot be the start of a minimal optimum (a
        pick of an optimum adds something given any subset of the rest), so it is skipped.
        """
        for size in range(min(depth, self.max_picks) + 1):
            for seed in itertools.combinations(self.active, size):
                if self.feasible(seed) and self._worthwhile(seed):
                    yield list(seed)

    def _worthwhile(self, seed: Sequence[int]) -> bool:
        cost = list(self.problem.start)
        for i in seed:
            if not self._worth(self.gain(i, cost)):
                return False
            self._apply(i, cost)
        return True

    def branch_and_bound(
        self, incumbent: Sequence[int] = (), limit: int = NODE_LIMIT
    ) -> tuple[list[int], bool]:
        """The optimum by depth-first branch and bound from `incumbent`, and whether the
        search ended within `limit` nodes (if not: the best set found, not proven optimal).

        Each set is reached once (candidates added in one fixed order: largest first gain
        first); a node is cut when its value plus the relaxed gains cannot beat the best,
        and the search ends as soon as the best reaches the a-posteriori bound on the
        optimum (to rounding).
        """
        order = sorted(self.active, key=lambda i: (-self.gain0[i], i))
        best = (self.value(incumbent), list(incumbent))
        ceiling = self.optimum_bound(incumbent) * (1 - 1e-12)
        cost = list(self.problem.start)
        count = self.problem.max_count
        nodes = 0

        def visit(first: int, chosen: list[int], value: float, rows_left: float) -> bool:
            """Search below `chosen`; False once the search must stop (done or out of nodes)."""
            nonlocal best, nodes
            nodes += 1
            if value > best[0]:
                best = (value, list(chosen))
            if nodes > limit or best[0] >= ceiling:
                return False
            slots = None if count is None else count - len(chosen)
            options = self._options(order[first:], cost, rows_left, least=self.problem.min_gain)
            if slots == 0 or value + _relaxation(options, slots, rows_left) <= best[0]:
                return True
            for gain, _, pos in options:
                i = order[first + pos]
                undo = self._apply(i, cost)
                chosen.append(i)
                going = visit(first + pos + 1, chosen, value + gain, rows_left - self.rows[i])
                chosen.pop()
                for g, old in undo:
                    cost[g] = old
                if not going:
                    return False
            return True

        visit(0, [], 0.0, self.room)
        return best[1], nodes <= limit

    def _options(
        self, candidates: Sequence[int], cost: Sequence[float], rows_left: float, *, least: float
    ) -> list[tuple[float, float, int]]:
        """(gain, rows, position) of the candidates that fit and gain more than 0 and at
        least `least` now."""
        options = []
        for pos, i in enumerate(candidates):
            if self.rows[i] <= rows_left and (gain := self.gain(i, cost)) > 0 and gain >= least:
                options.append((gain, self.rows[i], pos))
        return options

    def upper_bound(self, chosen: Sequence[int] = ()) -> float:
        """A proven upper bound on the optimum: f(S) plus the relaxed gains given S.

        By submodularity f(OPT) <= f(S) + the sum of the gains, given S, of OPT's other
        picks, which fit the whole budgets; the relaxation bounds that sum. The minimum
        benefit is ignored: this bounds the optimum without it.
        """
        cost = self._state(chosen)
        others = [i for i in self.active if i not in chosen]
        options = self._options(others, cost, self.room, least=0.0)
        return self.value(chosen) + _relaxation(options, self.problem.max_count, self.room)

    def optimum_bound(self, chosen: Iterable[int]) -> float:
        """The least `upper_bound` over the prefixes of `chosen` in greedy order."""
        order = [s.candidate for s in self.sequence(chosen)]
        return min(self.upper_bound(order[:k]) for k in range(len(order) + 1))

    def _rows_left(self, chosen: Sequence[int]) -> float:
        return self.room - sum(self.rows[i] for i in chosen)

    def _scorer(self, key: Key) -> Callable[[int, float], float]:
        """Greedy order: gain per row (HRU), gain, or gain per share of the tighter budget."""
        if key == "benefit":
            return lambda i, gain: gain
        if key == "ratio":
            return lambda i, gain: gain / self.rows[i]
        rows_total = self.problem.max_rows or math.inf
        count_total = self.problem.max_count or math.inf
        return lambda i, gain: gain / max(self.rows[i] / rows_total, 1 / count_total)

    # -- result

    def solution(self, chosen: Iterable[int], method: str, bound: float) -> Solution:
        """`chosen` in greedy order, cut at the minimum benefit, and certified."""
        steps = self.sequence(chosen)
        order = [s.candidate for s in steps]
        value = sum(s.gain for s in steps)
        optimum = self.optimum_bound(order)
        certified = 1.0 if optimum <= 0 else min(1.0, value / optimum)
        return Solution(steps, value, method, max(bound, certified), optimum)

    def sequence(self, chosen: Iterable[int]) -> tuple[Step, ...]:
        """Greedy order of `chosen` (largest gain first, ties to the lower index), cut where
        a gain falls below the minimum; what each pick lowered and finally serves."""
        left = set(chosen)
        picks: list[tuple[int, float, tuple[int, ...]]] = []
        cost = list(self.problem.start)
        while left:
            gain, i = max((self.gain(i, cost), -i) for i in left)
            if not self._worth(gain):
                break
            left.discard(-i)
            changed = self._apply(-i, cost)
            picks.append((-i, gain, tuple(sorted(g for g, _ in changed))))
        serving = self._serving([i for i, _, _ in picks], cost)
        return tuple(
            Step(i, gain, lowered, tuple(g for g, s in enumerate(serving) if s == i))
            for i, gain, lowered in picks
        )

    def _serving(self, order: Sequence[int], cost: Sequence[float]) -> list[int | None]:
        """Per group, the first pick whose rows are its final cost, if a pick lowered it."""
        serving: list[int | None] = [None] * len(cost)
        for i in order:
            for g, _ in self.pairs[i]:
                if serving[g] is None and cost[g] == self.rows[i]:
                    serving[g] = i
        return serving


def _relaxation(
    options: Sequence[tuple[float, float, int]], count: int | None, rows: float
) -> float:
    """Upper bound on what at most `count` of `options` (gain, rows, _) within `rows` add:
    the lesser of the `count` largest gains and the fractional knapsack of the rows."""
    gains = sorted((o[0] for o in options), reverse=True)
    best_count = sum(gains if count is None else gains[:count])
    if math.isinf(rows):
        return best_count
    filled, room = 0.0, rows
    for gain, size, _ in sorted(options, key=lambda o: o[0] / o[1], reverse=True):
        if size > room:
            return min(best_count, filled + gain * room / size)
        filled, room = filled + gain, room - size
    return min(best_count, filled)


def _subsets(n: int, most: int) -> int:
    """How many subsets of n things have at most `most` elements."""
    return sum(math.comb(n, j) for j in range(min(n, most) + 1))
