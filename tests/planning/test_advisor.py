"""The advisor's pure half: grains, candidates from demand, and advice under budgets.

Hand-checked examples use the lattice of Harinarayan, Rajaraman and Ullman's paper (views
a..h); random lattices (Hypothesis) compare `advise` with a brute-force optimum computed
here from the grains themselves.
"""

from __future__ import annotations

import itertools
import math
import os
import random
import subprocess
import sys

import pytest
from hypothesis import given, settings, target
from hypothesis import strategies as st

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

EPS = 1e-9
SUM = ("price", "sum")
COUNT = ("price", "count")
DISTINCT = ("customer", "count_distinct")


def grain(attrs: str, partials=(SUM,), exact=(), fact="F") -> Grain:
    return Grain(fact, frozenset(attrs), frozenset(partials), frozenset(exact))


# ---------------------------------------------------------------- grains


def test_a_grain_answers_coarser_queries_with_the_partials_they_need():
    agg = grain("abc", (SUM, COUNT))
    assert agg.answers(grain("abc"))
    assert agg.answers(grain("a", (COUNT,)))
    assert agg.answers(grain("", (SUM, COUNT)))
    assert not agg.answers(grain("abd"))  # d is not in the aggregate
    assert not agg.answers(grain("a", (("price", "max"),)))  # partial not stored
    assert not agg.answers(grain("a", fact="G"))  # another fact


def test_exact_partials_are_answered_only_at_exactly_the_same_attributes():
    agg = grain("ab", (SUM,), (DISTINCT,))
    assert agg.answers(grain("ab", (SUM,), (DISTINCT,)))
    assert agg.answers(grain("ab", (), (DISTINCT,)))
    assert not agg.answers(grain("a", (), (DISTINCT,)))  # a distinct count does not roll up
    assert agg.answers(grain("a", (SUM,)))  # its rollup partials still do
    assert not grain("ab", (SUM,)).answers(grain("ab", (), (DISTINCT,)))


def test_grain_takes_any_iterable_and_rejects_a_partial_both_rollup_and_exact():
    g = Grain("F", ["a", "b"], {SUM}, ())
    assert g.attributes == frozenset("ab") and g == grain("ab")
    with pytest.raises(ValueError, match="both rollup and exact"):
        Grain("F", (), {DISTINCT}, {DISTINCT})


def test_merge_unions_and_refuses_other_facts():
    merged = grain("ab", (SUM,)).merge(grain("bc", (COUNT,), (DISTINCT,)))
    assert merged == grain("abc", (SUM, COUNT), (DISTINCT,))
    with pytest.raises(ValueError, match="different facts"):
        grain("a").merge(grain("a", fact="G"))


def test_sort_key_does_not_depend_on_construction_order():
    assert Grain("F", ["b", "a"], [COUNT, SUM]).sort_key == Grain("F", "ab", [SUM, COUNT]).sort_key


ATTRS = st.frozensets(st.sampled_from("abcd"))
PARTIALS = st.frozensets(st.sampled_from([SUM, COUNT, ("qty", "sum")]))
EXACT = st.frozensets(st.sampled_from([DISTINCT, ("qty", "median")]), max_size=1)
GRAINS = st.builds(Grain, st.sampled_from(["F", "G"]), ATTRS, PARTIALS, EXACT)


@settings(max_examples=300, deadline=None)
@given(GRAINS, GRAINS, GRAINS)
def test_a_merge_answers_everything_its_parts_answer(a, b, query):
    """...except a query needing an exact partial when the merge has more attributes."""
    if a.fact != b.fact:
        return
    merged = a.merge(b)
    assert merged == b.merge(a) and merged.merge(a) == merged
    for part in (a, b):
        if part.answers(query):
            assert merged.answers(query) or (
                query.exact_partials and merged.attributes != query.attributes
            )
        if not part.exact_partials or part.attributes == merged.attributes:
            assert merged.answers(part)


@settings(max_examples=200, deadline=None)
@given(GRAINS, GRAINS, GRAINS)
def test_answers_is_transitive(a, b, c):
    """What answers an aggregate's grain answers what that aggregate answers."""
    if a.answers(b) and b.answers(c):
        assert a.answers(c)


# ---------------------------------------------------------------- candidates


def log(*grains_and_weights) -> list[Query]:
    return [Query(k, g, w) for k, (g, w) in enumerate(grains_and_weights)]


def test_candidates_are_the_query_grains_plus_merges_of_the_heaviest():
    a, b, c = grain("a"), grain("b", (COUNT,)), grain("c")
    queries = log((a, 5.0), (b, 3.0), (a, 1.0), (c, 1.0))
    found = generate_candidates(queries)
    assert set(found) == {
        a,
        b,
        c,
        a.merge(b),
        a.merge(c),
        b.merge(c),
        a.merge(b).merge(c),
    }
    assert found == sorted(found, key=lambda g: g.sort_key)
    assert len(found) == len(set(found))


def test_merges_are_bounded_and_the_most_answering_pairs_come_first():
    a, b, c = grain("a"), grain("b"), grain("c")
    queries = log((a, 5.0), (b, 3.0), (c, 1.0))
    # pairs first, by weight answered: ab (8) then ac (6); bc (4) and abc are cut
    assert set(generate_candidates(queries, max_merges=2)) == {a, b, c, grain("ab"), grain("ac")}
    # only the two heaviest grains merge
    assert set(generate_candidates(queries, top=2)) == {a, b, c, grain("ab")}
    assert set(generate_candidates(queries, top=0)) == {a, b, c}


def test_candidate_count_stays_within_the_documented_bound():
    rng = random.Random(7)
    grains = [grain("".join(rng.sample("abcdefgh", rng.randint(0, 4)))) for _ in range(30)]
    queries = log(*((g, rng.random()) for g in grains))
    distinct = len(set(grains))
    for top, max_merges in ((4, 100), (8, 20), (8, 500)):
        found = generate_candidates(queries, top=top, max_merges=max_merges)
        assert len(found) <= distinct + min(max_merges, 2**top - top - 1)


def test_merges_stay_within_a_fact_and_skip_existing_grains():
    a, b, g_a = grain("a"), grain("b"), grain("a", fact="G")
    queries = log((a, 1.0), (b, 1.0), (g_a, 1.0))
    found = generate_candidates(queries, existing=[grain("ab")])
    assert set(found) == {a, b, g_a}


def test_candidates_do_not_depend_on_log_order():
    rng = random.Random(3)
    grains = [grain("".join(rng.sample("abcdef", rng.randint(0, 3)))) for _ in range(20)]
    queries = log(*((g, float(k % 4 + 1)) for k, g in enumerate(grains)))
    shuffled = list(queries)
    rng.shuffle(shuffled)
    assert generate_candidates(queries) == generate_candidates(shuffled)


def test_candidate_generation_checks_its_bounds():
    with pytest.raises(ValueError, match="top"):
        generate_candidates([], top=13)
    with pytest.raises(ValueError, match="max_merges"):
        generate_candidates([], max_merges=-1)


# ---------------------------------------------------------------- advice, by hand

# HRU 1996, figure: a(100) over b(50), c(75); b over d(20), e(30); c over e, f(40);
# d and e over g(1); e and f over h(10). As attribute sets: a = pqst, b = pqs, c = pqt,
# d = ps, e = pq, f = qt, g = p, h = q. The fact is a (100 rows); one query per view.
HRU = {"a": 100, "b": 50, "c": 75, "d": 20, "e": 30, "f": 40, "g": 1, "h": 10}
HRU_ATTRS = {
    "a": "pqst",
    "b": "pqs",
    "c": "pqt",
    "d": "ps",
    "e": "pq",
    "f": "qt",
    "g": "p",
    "h": "q",
}
HRU_GRAIN = {v: grain(attrs) for v, attrs in HRU_ATTRS.items()}
HRU_QUERIES = [Query(v, HRU_GRAIN[v], 1.0) for v in HRU]
HRU_CANDIDATES = [Candidate(HRU_GRAIN[v], rows) for v, rows in HRU.items() if v != "a"]
FACTS = {"F": 100}


def names(advice) -> list[str]:
    by_grain = {g: v for v, g in HRU_GRAIN.items()}
    return [by_grain[p.candidate.grain] for p in advice.picks]


def test_hru_example_three_views_picks_b_f_d():
    """The paper's example: with k = 3 the greedy picks b (250), f (70), d (60)."""
    advice = advise(HRU_QUERIES, HRU_CANDIDATES, FACTS, Budget(max_per_cube=3))
    assert names(advice) == ["b", "f", "d"]
    assert [p.benefit for p in advice.picks] == [250.0, 70.0, 60.0]
    assert advice.benefit == 380.0
    assert advice.base_cost == advice.cost_before == 800.0
    assert advice.cost_after == 420.0
    b, f, d = advice.picks
    assert set(b.justified_by) == {"b", "d", "e", "g", "h"}
    assert set(f.justified_by) == {"f", "h"}  # h: from b's 50 to f's 40
    assert set(d.justified_by) == {"d", "g"}
    assert set(b.serves) == {"b", "e"} and set(f.serves) == {"f", "h"}
    assert set(d.serves) == {"d", "g"}
    assert advice.guarantee == 1.0  # every set of three is a seed


def test_hru_example_under_a_row_budget_beats_the_plain_greedy():
    """60 rows: plain benefit-per-row greedy takes g, h, d (269); the optimum is d, e, h
    (320: d 80, e 70, g 80, h 90) and partial enumeration finds it."""
    budget = Budget(max_rows=60, max_per_cube=None)
    advice = advise(HRU_QUERIES, HRU_CANDIDATES, FACTS, budget)
    assert sorted(names(advice)) == ["d", "e", "h"]
    assert advice.benefit == 320.0
    assert sum(p.candidate.rows for p in advice.picks) == 60
    demand = Demand(HRU_QUERIES, HRU_CANDIDATES, FACTS, budget)
    plain = Selection(demand.problem).greedy(key="ratio")
    assert [demand.new[i].grain for i in plain] == [HRU_GRAIN[v] for v in "ghd"]
    assert Selection(demand.problem).value(plain) == 269.0


def test_a_tiny_dense_candidate_does_not_crowd_out_a_large_valuable_one():
    small, large = grain("a"), grain("ab")
    queries = [Query(1, small, 0.02), Query(2, large, 1.0)]
    candidates = [Candidate(small, 1.0), Candidate(large, 100.0)]
    # small: 0.02 * 99 = 1.98 for 1 row; large: 0.02 * 99 + 1.0 * 900 for 100 rows
    advice = advise(queries, candidates, {"F": 1000}, Budget(max_rows=100))
    assert [p.candidate.grain for p in advice.picks] == [large]


# ---------------------------------------------------------------- budgets


def test_nothing_fits():
    advice = advise(HRU_QUERIES, HRU_CANDIDATES, FACTS, Budget(max_rows=0.5))
    assert advice.picks == () and advice.benefit == 0
    assert advice.cost_after == advice.cost_before == 800.0
    assert advice.method == "nothing to pick" and advice.guarantee == 1.0
    assert advise(HRU_QUERIES, HRU_CANDIDATES, FACTS, Budget(max_per_cube=0)).picks == ()
    assert advise(HRU_QUERIES, [], FACTS).picks == ()
    assert advise([], HRU_CANDIDATES, FACTS).picks == ()


def test_max_per_cube_limits_the_picks_to_the_best():
    for k in range(1, 8):
        advice = advise(HRU_QUERIES, HRU_CANDIDATES, FACTS, Budget(max_per_cube=k))
        assert len(advice.picks) == k
    assert names(advise(HRU_QUERIES, HRU_CANDIDATES, FACTS, Budget(max_per_cube=1))) == ["b"]


def test_default_budget_allows_twenty_per_cube():
    queries = [Query(k, grain(chr(97 + k)), 1.0) for k in range(25)]
    candidates = [Candidate(q.grain, 1.0) for q in queries]
    assert len(advise(queries, candidates, FACTS).picks) == 20


def test_min_benefit_drops_picks_worth_less():
    budget = Budget(max_per_cube=3, min_benefit=60)
    assert names(advise(HRU_QUERIES, HRU_CANDIDATES, FACTS, budget)) == ["b", "f", "d"]
    budget = Budget(max_per_cube=3, min_benefit=60.5)
    advice = advise(HRU_QUERIES, HRU_CANDIDATES, FACTS, budget)
    assert all(p.benefit >= 60.5 for p in advice.picks)
    assert names(advice)[:2] == ["b", "f"] and len(advice.picks) == 2
    assert advise(HRU_QUERIES, HRU_CANDIDATES, FACTS, Budget(min_benefit=1e6)).picks == ()


def test_existing_aggregates_count_as_chosen_and_use_the_budgets():
    existing_b = Candidate(HRU_GRAIN["b"], 50, existing="agg-b")
    others = [c for c in HRU_CANDIDATES if c.grain != HRU_GRAIN["b"]]
    advice = advise(HRU_QUERIES, [existing_b, *others], FACTS, Budget(max_per_cube=3))
    # b exists: the base cost is 800, b already saves 250
    assert advice.base_cost == 800.0 and advice.cost_before == 550.0
    assert names(advice) == ["f", "d"]  # two slots left; the same picks as after b above
    assert advice.benefit == 130.0

    # the existing aggregates' rows use the row budget: 50 of 60 leaves 10 (h or g)
    advice = advise(
        HRU_QUERIES, [existing_b, *others], FACTS, Budget(max_rows=60, max_per_cube=None)
    )
    assert sum(p.candidate.rows for p in advice.picks) <= 10

    # existing aggregates already over the budgets: no pick, no error
    for budget in (Budget(max_rows=40), Budget(max_per_cube=1)):
        assert advise(HRU_QUERIES, [existing_b, *others], FACTS, budget).picks == ()


def test_a_candidate_no_better_than_an_existing_aggregate_is_never_picked():
    existing = Candidate(grain("ab"), 10, existing=1)
    bigger = Candidate(grain("abc"), 50)
    queries = [Query(1, grain("a"), 5.0), Query(2, grain("b"), 5.0)]
    advice = advise(queries, [existing, bigger], {"F": 1000})
    assert advice.picks == () and advice.cost_before == 100.0


def test_exact_partials_need_their_own_grain():
    distinct = grain("a", (), (DISTINCT,))
    queries = [Query(1, distinct, 1.0)]
    finer = Candidate(grain("ab", (), (DISTINCT,)), 5.0)
    same = Candidate(distinct, 8.0)
    advice = advise(queries, [finer, same], {"F": 1000})
    assert [p.candidate for p in advice.picks] == [same]


# ---------------------------------------------------------------- determinism


def test_same_demand_same_advice_whatever_the_order():
    budget = Budget(max_rows=60, max_per_cube=2)
    first = advise(HRU_QUERIES, HRU_CANDIDATES, FACTS, budget)
    assert advise(HRU_QUERIES, HRU_CANDIDATES, FACTS, budget) == first
    rng = random.Random(11)
    for _ in range(10):
        queries, candidates = list(HRU_QUERIES), list(HRU_CANDIDATES)
        rng.shuffle(queries)
        rng.shuffle(candidates)
        again = advise(queries, candidates, FACTS, budget)
        assert [p.candidate for p in again.picks] == [p.candidate for p in first.picks]
        assert [p.benefit for p in again.picks] == [p.benefit for p in first.picks]
        assert [set(p.justified_by) for p in again.picks] == [
            set(p.justified_by) for p in first.picks
        ]


HASH_SEED_SCRIPT = """
import random
from aggsched.planning.advisor import Budget, Candidate, Grain, Query, advise, generate_candidates
rng = random.Random(5)
queries = [
    Query(k, Grain("F", rng.sample("abcdefg", rng.randint(0, 3)), {("m", "sum")}), 1.0)
    for k in range(60)
]
candidates = [Candidate(g, 1.0 + len(g.attributes) ** 3) for g in generate_candidates(queries)]
advice = advise(queries, candidates, {"F": 1000.0}, Budget(max_rows=60, max_per_cube=5))
print([(sorted(p.candidate.grain.attributes), p.benefit, p.justified_by) for p in advice.picks])
"""


def test_advice_does_not_depend_on_the_hash_seed():
    """Frozensets iterate in hash order, which changes per process with PYTHONHASHSEED."""
    outputs = set()
    for seed in ("1", "2", "3"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        run = subprocess.run(
            [sys.executable, "-c", HASH_SEED_SCRIPT], env=env, capture_output=True, text=True
        )
        assert run.returncode == 0, run.stderr
        outputs.add(run.stdout)
    assert len(outputs) == 1 and outputs.pop().startswith("[([")


def test_ties_go_to_the_canonical_first_candidate():
    x, y = grain("x"), grain("y")
    queries = [Query(1, x, 1.0), Query(2, y, 1.0)]
    for candidates in ([Candidate(x, 10), Candidate(y, 10)], [Candidate(y, 10), Candidate(x, 10)]):
        advice = advise(queries, candidates, {"F": 100}, Budget(max_per_cube=1))
        assert [p.candidate.grain for p in advice.picks] == [x]


def test_queries_of_one_grain_are_one_demand():
    a = grain("a")
    queries = [Query(1, a, 1.0), Query(2, a, 2.0), Query(3, grain("b"), 2.5)]
    candidates = [Candidate(a, 10), Candidate(grain("b"), 10)]
    advice = advise(queries, candidates, {"F": 100}, Budget(max_per_cube=1))
    assert [p.candidate.grain for p in advice.picks] == [a]
    assert advice.picks[0].justified_by == (1, 2) and advice.picks[0].benefit == 270.0


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Query(1, grain("a"), -1.0), "weight of query 1"),
        (lambda: Query(1, grain("a"), math.nan), "weight of query 1"),
        (lambda: Candidate(grain("a"), 0), "rows of candidate"),
        (lambda: Candidate(grain("a"), math.inf), "rows of candidate"),
        (lambda: Budget(max_rows=-1), "max_rows"),
        (lambda: Budget(max_per_cube=-1), "max_per_cube"),
        (lambda: Budget(max_per_cube=2.5), "max_per_cube"),
        (lambda: Budget(max_per_cube=True), "max_per_cube"),
        (lambda: Budget(min_benefit=math.nan), "min_benefit"),
    ],
)
def test_bad_values_are_refused_with_what_and_where(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_bad_demand_is_refused_with_what_and_where():
    a = grain("a")
    with pytest.raises(ValueError, match=r"no row count for fact 'F' \(query 7\)"):
        advise([Query(7, a, 1.0)], [Candidate(a, 1)], {})
    with pytest.raises(ValueError, match="rows of fact 'F'"):
        advise([Query(7, a, 1.0)], [Candidate(a, 1)], {"F": -5})
    with pytest.raises(ValueError, match="given twice"):
        advise([Query(7, a, 1.0)], [Candidate(a, 1), Candidate(a, 2)], {"F": 10})
    with pytest.raises(ValueError, match="given twice"):
        advise([Query(7, a, 1.0)], [Candidate(a, 1, existing=3), Candidate(a, 2)], {"F": 10})


# ---------------------------------------------------------------- random lattices


@st.composite
def lattices(draw, count_budget=True):
    """A random small cube: <= 12 queries on <= 2 facts, <= 10 new candidates (from
    `generate_candidates`), maybe existing aggregates, random rows and budgets."""
    facts = {"F": draw(st.floats(1e3, 1e5)), "G": draw(st.floats(1e3, 1e5))}
    query_grains = draw(st.lists(GRAINS, min_size=1, max_size=6))
    weights = st.sampled_from([0.0, 0.1, 1.0, 10.0])
    queries = [
        Query(k, g, draw(weights))
        for k, g in enumerate(
            draw(st.lists(st.sampled_from(query_grains), min_size=1, max_size=12))
        )
    ]
    existing_grains = draw(st.lists(GRAINS, max_size=2, unique=True))
    found = generate_candidates(queries, existing_grains, top=draw(st.integers(0, 4)))
    found = draw(st.permutations(found))[:10]
    rows = st.floats(0, 5).map(lambda e: 10**e)  # sizes over orders of magnitude
    candidates = [Candidate(g, draw(rows)) for g in found]
    existing = [Candidate(g, draw(rows), existing=f"x{k}") for k, g in enumerate(existing_grains)]
    everything = candidates + existing
    # a tight row budget: exactly what some of them take, or a share of all
    some = draw(st.lists(st.sampled_from(everything), unique=True)) if everything else []
    share = st.floats(0, 1.2).map(lambda f: f * sum(c.rows for c in everything))
    max_rows = st.none() | st.just(sum(c.rows for c in some)) | share
    budget = Budget(
        max_rows=draw(max_rows),
        max_per_cube=draw(st.none() | st.integers(0, 8)) if count_budget else None,
    )
    return queries, draw(st.permutations(candidates + existing)), facts, budget


def brute_force(queries, candidates, facts, budget) -> float:
    """The best benefit of any set of new candidates within the budgets (existing ones
    count as chosen and use the budgets), from the grains."""
    existing = [c for c in candidates if c.existing is not None]
    new = [c for c in candidates if c.existing is None]
    before = cost(queries, existing, facts)
    best = 0.0
    for size in range(len(new) + 1):
        for subset in itertools.combinations(new, size):
            if within(budget, existing + list(subset)):
                best = max(best, before - cost(queries, existing + list(subset), facts))
    return best


def cost(queries, chosen, facts) -> float:
    return sum(
        q.weight * min([facts[q.grain.fact]] + [c.rows for c in chosen if c.grain.answers(q.grain)])
        for q in queries
    )


def within(budget: Budget, chosen) -> bool:
    rows = sum(c.rows for c in chosen)
    existing = sum(1 for c in chosen if c.existing is not None)
    existing_rows = sum(c.rows for c in chosen if c.existing is not None)
    limit = None if budget.max_rows is None else max(budget.max_rows, existing_rows)
    rows_ok = limit is None or rows <= limit * (1 + 1e-9)  # met to rounding
    new = len(chosen) - existing
    count_ok = budget.max_per_cube is None or new <= max(budget.max_per_cube - existing, 0)
    return rows_ok and count_ok


@settings(max_examples=250, deadline=None)
@given(st.booleans().flatmap(lambda count: lattices(count_budget=count)))
def test_advice_is_never_below_1_minus_1_over_e_of_the_brute_force_optimum(lattice):
    """With and without a count budget (rows alone: the partial enumeration, no search)."""
    queries, candidates, facts, budget = lattice
    advice = advise(queries, candidates, facts, budget)
    existing = [c for c in candidates if c.existing is not None]
    picked = [p.candidate for p in advice.picks]
    assert all(c.existing is None for c in picked) and len(set(picked)) == len(picked)
    assert within(budget, existing + picked)
    scale = max(1.0, advice.base_cost)
    before, after = cost(queries, existing, facts), cost(queries, existing + picked, facts)
    assert math.isclose(advice.cost_before, before, rel_tol=1e-9, abs_tol=EPS * scale)
    assert math.isclose(advice.cost_after, after, rel_tol=1e-9, abs_tol=1e-6 * scale)
    assert math.isclose(
        advice.benefit, sum(p.benefit for p in advice.picks), rel_tol=1e-9, abs_tol=EPS
    )
    best = brute_force(queries, candidates, facts, budget)
    got = before - after
    assert got <= best + 1e-6 * scale
    if best > 0:  # steer the search toward lattices where the advisor does worst
        target(1 - got / best, label="shortfall")
    assert got >= GUARANTEE * best - 1e-6 * scale
    assert got >= advice.guarantee * best - 1e-6 * scale
    assert advice.optimum_bound >= best - 1e-6 * scale


@settings(max_examples=100, deadline=None)
@given(lattices(), st.randoms(use_true_random=False))
def test_advice_does_not_depend_on_input_order(lattice, rng):
    queries, candidates, facts, budget = lattice
    first = advise(queries, candidates, facts, budget)
    queries, candidates = list(queries), list(candidates)
    rng.shuffle(queries)
    rng.shuffle(candidates)
    again = advise(queries, candidates, facts, budget)
    assert [p.candidate for p in again.picks] == [p.candidate for p in first.picks]
    assert [p.benefit for p in again.picks] == pytest.approx([p.benefit for p in first.picks])
