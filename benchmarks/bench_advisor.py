"""The advisor's selection against the brute-force optimum and the plain HRU greedy.

Lattice part (the TPC-H workload part comes with the engine side of the advisor):

1. On N seeded random small lattices (at most 10 candidates, random sizes, weights and
   budgets) the brute-force optimum is computed from the definitions (every subset of the
   candidates that fits the budgets); printed are the mean and minimum benefit / optimum of
   `advise`, of partial enumeration alone (seeds <= 2, benefit-per-row greedy, no branch
   and bound), and of the plain HRU benefit-per-row greedy (the baseline). Target:
   `advise` never below 1 - 1/e.
2. The run time of `advise` on a realistic log (200 queries over 15-40 grains of a
   TPC-H-like fact, skewed), against the plain HRU greedy on the same problem.
"""

from __future__ import annotations

import itertools
import random
import statistics
import time
from collections.abc import Sequence

from aggsched.planning.advisor import (
    Budget,
    Candidate,
    Demand,
    Grain,
    Query,
    advise,
    generate_candidates,
)
from aggsched.planning.viewselect import GUARANTEE, Selection

SEED = 20260713
N_LATTICES = 400
REALISTIC_RUNS = 10
FACT = "lineitem"
FACT_ROWS = 6_001_215.0  # TPC-H SF1 lineitem
CARDINALITY = {  # distinct values of TPC-H-like attributes at SF1
    "region": 5,
    "nation": 25,
    "year": 7,
    "quarter": 28,
    "month": 84,
    "mfgr": 5,
    "brand": 25,
    "type": 150,
    "container": 40,
    "shipmode": 7,
    "returnflag": 3,
    "linestatus": 2,
    "priority": 5,
    "segment": 5,
    "supplier_nation": 25,
}
METRICS = ("quantity", "price", "discount", "tax")


def estimated_rows(grain: Grain) -> float:
    """Rows of the grain's aggregate: the product of its attributes' cardinalities, capped."""
    rows = 1.0
    for attr in grain.attributes:
        rows *= CARDINALITY[attr]
    return min(rows, FACT_ROWS)


def random_grain(rng: random.Random, attributes: Sequence[str], most: int) -> Grain:
    attrs = rng.sample(list(attributes), rng.randint(0, most))
    partials = {(m, "sum") for m in rng.sample(METRICS, rng.randint(1, 2))}
    exact = {("customers", "count_distinct")} if rng.random() < 0.1 else set()
    return Grain(FACT, frozenset(attrs), frozenset(partials), frozenset(exact))


def skewed_log(rng: random.Random, grains: Sequence[Grain], n: int) -> list[Query]:
    """n queries over the grains, Zipf-like: a few grains are most of the traffic."""
    weights = [1 / (rank + 1) ** 1.2 for rank in range(len(grains))]
    picked = rng.choices(grains, weights=weights, k=n)
    return [Query(k, g, rng.uniform(0.5, 2.0)) for k, g in enumerate(picked)]


def small_lattice(rng: random.Random) -> tuple[list[Query], list[Candidate], Budget]:
    attributes = rng.sample(sorted(CARDINALITY), rng.randint(3, 5))
    grains = list(dict.fromkeys(random_grain(rng, attributes, 3) for _ in range(rng.randint(3, 8))))
    queries = skewed_log(rng, grains, rng.randint(5, 30))
    found = generate_candidates(queries, top=4)
    rng.shuffle(found)
    candidates = [Candidate(g, estimated_rows(g) * rng.uniform(0.5, 1.5)) for g in found[:10]]
    if rng.random() < 0.5:  # a tight row budget: exactly what some candidates take
        max_rows = sum(c.rows for c in rng.sample(candidates, rng.randint(1, len(candidates))))
    else:
        max_rows = rng.uniform(0.02, 0.5) * sum(c.rows for c in candidates)
    max_per_cube = rng.choice([None, *range(1, len(candidates) + 1)])
    budget = Budget(max_rows=max_rows, max_per_cube=max_per_cube)
    return queries, candidates, budget


def benefit_of(chosen: Sequence[Candidate], queries: Sequence[Query]) -> float:
    """Weighted rows saved by `chosen`, straight from the definitions (no advisor code)."""
    saved = 0.0
    for q in queries:
        best = min([FACT_ROWS] + [c.rows for c in chosen if c.grain.answers(q.grain)])
        saved += q.weight * (FACT_ROWS - best)
    return saved


def optimum(queries: Sequence[Query], candidates: Sequence[Candidate], budget: Budget) -> float:
    best = 0.0
    most = len(candidates) if budget.max_per_cube is None else budget.max_per_cube
    for size in range(most + 1):
        for subset in itertools.combinations(candidates, size):
            if budget.max_rows is None or sum(c.rows for c in subset) <= budget.max_rows:
                best = max(best, benefit_of(subset, queries))
    return best


def lattice_ratios() -> None:
    rng = random.Random(SEED)
    ratios: dict[str, list[float]] = {"advise": [], "enumeration only": [], "plain HRU": []}
    methods: dict[str, int] = {}
    for _ in range(N_LATTICES):
        queries, candidates, budget = small_lattice(rng)
        best = optimum(queries, candidates, budget)
        if best == 0:  # nothing to gain: no ratio
            continue
        advice = advise(queries, candidates, {FACT: FACT_ROWS}, budget)
        kind = advice.method.split(" (")[0]
        methods[kind] = methods.get(kind, 0) + 1
        demand = Demand(queries, candidates, {FACT: FACT_ROWS}, budget)
        selection = Selection(demand.problem)
        picks = {
            "advise": [p.candidate for p in advice.picks],
            "enumeration only": [demand.new[i] for i in selection.enumerate(2)],
            "plain HRU": [demand.new[i] for i in selection.greedy()],
        }
        for name, chosen in picks.items():
            ratios[name].append(benefit_of(chosen, queries) / best)
    count = len(ratios["advise"])
    print(f"{count} random small lattices (<= 10 candidates), benefit / brute-force optimum:")
    for name, values in ratios.items():
        below = sum(v < GUARANTEE - 1e-9 for v in values)
        print(
            f"  {name:<17} mean {statistics.fmean(values):.4f}  min {min(values):.4f}  "
            f"below 1-1/e: {below}"
        )
    print(f"  methods advise ran: {dict(sorted(methods.items()))}")


def realistic() -> None:
    rng = random.Random(SEED + 1)
    grains = list(dict.fromkeys(random_grain(rng, sorted(CARDINALITY), 4) for _ in range(60)))[:40]
    rows_by_n = []
    for n_grains in (15, 25, 40):
        queries = skewed_log(rng, grains[:n_grains], 200)
        found = generate_candidates(queries)
        candidates = [Candidate(g, estimated_rows(g)) for g in found]
        budget = Budget(max_rows=0.01 * FACT_ROWS, max_per_cube=20)
        ours, advice = _timed(
            lambda q=queries, c=candidates, b=budget: advise(q, c, {FACT: FACT_ROWS}, b)
        )
        selection = Selection(Demand(queries, candidates, {FACT: FACT_ROWS}, budget).problem)
        theirs, hru = _timed(lambda s=selection: s.greedy())
        rows_by_n.append(
            (n_grains, len(candidates), selection.n, advice, ours, theirs, selection.value(hru))
        )
    print("realistic logs: 200 queries, max_rows 1% of the fact, max_per_cube 20")
    for n_grains, n_cand, n_elig, advice, ours, theirs, hru_value in rows_by_n:
        print(
            f"  {n_grains} grains, {n_cand} candidates ({n_elig} eligible): advise "
            f"{ours * 1000:.1f} ms [{advice.method}; proven >= {advice.guarantee:.4f} of "
            f"optimum], plain HRU {theirs * 1000:.2f} ms; "
            f"{len(advice.picks)} picks, benefit advise/HRU {advice.benefit / hru_value:.3f}, "
            f"cost after/before {advice.cost_after / advice.cost_before:.4f}"
        )


def _timed(run):
    """Median wall time of REALISTIC_RUNS runs, and the last result."""
    times = []
    for _ in range(REALISTIC_RUNS):
        started = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def main() -> None:
    lattice_ratios()
    realistic()


if __name__ == "__main__":
    main()
