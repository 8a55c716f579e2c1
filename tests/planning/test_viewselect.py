"""The numeric core of the advisor: budgeted view selection and its guarantees.

Every algorithm is compared with a brute-force optimum written here from the definition
(each subset that fits the budgets, each query at the rows of its cheapest picked view),
on hand-made problems and on random small ones (Hypothesis).
"""

from __future__ import annotations

import itertools
import math

from hypothesis import given, settings, target
from hypothesis import strategies as st

from aggsched.planning.viewselect import GUARANTEE, NODE_LIMIT, Problem, Selection, solve

EPS = 1e-9


def benefit(p: Problem, chosen) -> float:
    """Weighted cost removed by `chosen`, straight from the definition."""
    total = 0.0
    for g, (w, s) in enumerate(zip(p.weights, p.start, strict=True)):
        best = min([s] + [p.rows[i] for i in chosen if g in p.covers[i]])
        total += w * (s - best)
    return total


def fits(p: Problem, chosen) -> bool:
    rows_ok = p.max_rows is None or sum(p.rows[i] for i in chosen) <= p.max_rows * (1 + 1e-9)
    return rows_ok and (p.max_count is None or len(chosen) <= p.max_count)


def optimum(p: Problem) -> float:
    n = len(p.rows)
    subsets = itertools.chain.from_iterable(
        itertools.combinations(range(n), k) for k in range(n + 1)
    )
    return max(benefit(p, s) for s in subsets if fits(p, s))


@st.composite
def problems(draw, rows_budget=True, count_budget=True, min_gain=False):
    """Random small problems: <= 8 query groups, <= 10 candidates, random budgets."""
    groups = draw(st.integers(1, 8))
    weights = draw(
        st.lists(st.sampled_from([0.0, 0.1, 1.0, 3.0, 10.0]), min_size=groups, max_size=groups)
    )
    start = draw(
        st.lists(st.sampled_from([100.0, 1_000.0, 10_000.0]), min_size=groups, max_size=groups)
    )
    n = draw(st.integers(1, 10))
    rows = draw(st.lists(st.floats(0, 4).map(lambda e: 10**e), min_size=n, max_size=n))
    covers = draw(st.lists(st.frozensets(st.integers(0, groups - 1)), min_size=n, max_size=n))
    # a tight row budget: exactly what some of the candidates take, or a share of all
    subset = draw(st.lists(st.integers(0, n - 1), unique=True))
    tight = st.sampled_from([sum(rows[i] for i in subset)]) | st.floats(0, 1.2).map(
        lambda f: f * sum(rows)
    )
    max_rows = draw(tight if rows_budget else st.none())
    max_count = draw(st.integers(0, n) if count_budget else st.none())
    return Problem(
        weights=weights,
        start=start,
        rows=rows,
        covers=covers,
        max_rows=max_rows,
        max_count=max_count,
        min_gain=draw(st.floats(0, 500)) if min_gain else 0.0,
    )


def naive_greedy(p: Problem, key) -> list[int]:
    """The greedy without laziness: every score recomputed each round (the reference)."""
    cost = list(p.start)

    def gain(i: int) -> float:
        rows = p.rows[i]
        groups = sorted(set(p.covers[i]))
        return sum(p.weights[g] * (cost[g] - rows) for g in groups if cost[g] > rows)

    chosen: list[int] = []
    left = set(range(len(p.rows)))
    while left and (p.max_count is None or len(chosen) < p.max_count):
        _, i = max((key(i, gain(i)), -i) for i in left)
        left.discard(-i)
        if gain(-i) > 0 and fits(p, [*chosen, -i]):
            chosen.append(-i)
            for g in p.covers[-i]:
                cost[g] = min(cost[g], p.rows[-i])
    return chosen


# ---------------------------------------------------------------- hand-checked


def trap() -> Problem:
    """Both budgets bind (7 picks, 7 rows). Seven unit views worth 1 each are the optimum;
    four tiny dense ones fool the benefit-per-row greedy, one big one the benefit greedy."""
    units = [(1.0, 1.0)] * 7
    tiny = [(0.001, 0.01)] * 4
    big = [(4.0, 1.1)]
    views = units + tiny + big
    return Problem(
        weights=[1.0] * len(views),
        start=[rows + value for rows, value in views],
        rows=[rows for rows, _ in views],
        covers=[[k] for k in range(len(views))],
        max_rows=7.0,
        max_count=7,
    )


def test_plain_greedies_fall_below_the_bound_where_both_budgets_bind():
    p = trap()
    selection = Selection(p)
    assert selection.count_binds and selection.rows_binds
    by_ratio = selection.greedy(key="ratio")
    by_benefit = selection.greedy(key="benefit")
    assert sorted(by_ratio) == [0, 1, 2, 7, 8, 9, 10]  # the tiny four, then three units
    assert math.isclose(selection.value(by_ratio), 3.04)
    assert sorted(by_benefit) == [0, 1, 2, 11]  # the big one eats four rows
    assert math.isclose(selection.value(by_benefit), 4.1)
    assert max(selection.value(by_ratio), selection.value(by_benefit)) < GUARANTEE * 7

    solution = solve(p)
    assert sorted(s.candidate for s in solution.steps) == list(range(7))
    assert math.isclose(solution.value, 7.0)
    assert solution.guarantee == 1.0
    assert "branch and bound (complete)" in solution.method


def test_partial_enumeration_beats_the_space_trap():
    """Rows only: a 1-row view worth 2 (ratio 2) crowds out a 100-row view worth 100."""
    p = Problem(
        weights=[1.0, 1.0], start=[3.0, 200.0], rows=[1.0, 100.0], covers=[[0], [1]], max_rows=100.0
    )
    selection = Selection(p)
    assert not selection.count_binds and selection.rows_binds
    assert selection.greedy(key="ratio") == [0]
    assert selection.enumerate(1) == [1]
    solution = solve(p)
    assert [s.candidate for s in solution.steps] == [1]
    assert solution.value == 100.0
    assert "partial enumeration (seeds <= 3, ratio greedy)" in solution.method


def test_dominated_and_useless_candidates_are_not_eligible():
    p = Problem(
        weights=[1.0, 1.0, 0.0],
        start=[100.0, 100.0, 100.0],
        rows=[10.0, 20.0, 10.0, 150.0, 5.0, 10.0],
        # 1 is dominated by 0 (bigger, answers less); 2 equals 0 (the first stays);
        # 3 is larger than what it would replace; 4 only answers a weightless group;
        # 5 answers nothing
        covers=[[0, 1], [0], [0, 1], [0, 1], [2], []],
    )
    assert Selection(p).active == [0]


def test_steps_report_gains_lowered_and_served_groups():
    p = Problem(
        weights=[1.0, 1.0, 2.0], start=[100.0] * 3, rows=[50.0, 10.0], covers=[[0, 1, 2], [2]]
    )
    steps = solve(p).steps
    assert [(s.candidate, s.gain) for s in steps] == [(0, 200.0), (1, 80.0)]
    assert steps[0].lowered == (0, 1, 2) and steps[0].serves == (0, 1)
    assert steps[1].lowered == (2,) and steps[1].serves == (2,)


def test_minimum_gain_cuts_the_greedy_order():
    p = Problem(weights=[1.0, 1.0], start=[100.0, 100.0], rows=[50.0, 90.0], covers=[[0, 1], [1]])
    assert [s.candidate for s in solve(p).steps] == [0]  # 1 adds nothing after 0
    p2 = Problem(
        weights=[1.0, 1.0],
        start=[100.0, 100.0],
        rows=[50.0, 90.0],
        covers=[[0], [1]],
        min_gain=10.0,
    )
    assert [(s.candidate, s.gain) for s in solve(p2).steps] == [(0, 50.0), (1, 10.0)]
    p3 = Problem(
        weights=[1.0, 1.0],
        start=[100.0, 100.0],
        rows=[50.0, 90.0],
        covers=[[0], [1]],
        min_gain=10.5,
    )
    assert [s.candidate for s in solve(p3).steps] == [0]


def test_branch_and_bound_reports_an_unfinished_search():
    p = trap()
    chosen, complete = Selection(p).branch_and_bound(limit=3)
    assert not complete and fits(p, chosen)
    chosen, complete = Selection(p).branch_and_bound(limit=NODE_LIMIT)
    assert complete and math.isclose(benefit(p, chosen), 7.0)


def test_problem_lengths_must_agree():
    try:
        Problem(weights=[1.0], start=[], rows=[1.0], covers=[[0]])
    except ValueError as error:
        assert "equal lengths" in str(error)
    else:
        raise AssertionError("mismatched lengths accepted")


# ---------------------------------------------------------------- guarantees, at random


@settings(max_examples=300, deadline=None)
@given(problems(count_budget=False))
def test_partial_enumeration_meets_1_minus_1_over_e_under_a_row_budget(p):
    best = optimum(p)
    selection = Selection(p)
    for depth in (2, 3):
        chosen = selection.enumerate(depth)
        assert fits(p, chosen)
        assert benefit(p, chosen) >= GUARANTEE * best - EPS
    chosen = selection.enumerate(1)  # greedy plus the best single view
    assert benefit(p, chosen) >= GUARANTEE / 2 * best - EPS
    solution = solve(p)
    assert "branch and bound" not in solution.method
    if best > 0:  # steer the search toward problems where the algorithm does worst
        target(1 - solution.value / best, label="shortfall")
    assert solution.value >= GUARANTEE * best - EPS


@settings(max_examples=300, deadline=None)
@given(problems(rows_budget=False))
def test_benefit_greedy_meets_1_minus_1_over_e_under_a_count(p):
    chosen = Selection(p).greedy(key="benefit")
    assert fits(p, chosen)
    best = optimum(p)
    assert benefit(p, chosen) >= GUARANTEE * best - EPS
    solution = solve(p)
    assert "branch and bound" not in solution.method
    if best > 0:  # steer the search toward problems where the algorithm does worst
        target(1 - solution.value / best, label="shortfall")
    assert solution.value >= GUARANTEE * best - EPS


@settings(max_examples=400, deadline=None)
@given(problems())
def test_solve_is_never_below_its_guarantee_nor_1_minus_1_over_e(p):
    best = optimum(p)
    solution = solve(p)
    chosen = [s.candidate for s in solution.steps]
    assert len(set(chosen)) == len(chosen) and fits(p, chosen)
    value = benefit(p, chosen)
    assert math.isclose(value, solution.value, rel_tol=1e-9, abs_tol=EPS)
    assert math.isclose(sum(s.gain for s in solution.steps), value, rel_tol=1e-9, abs_tol=EPS)
    assert value <= best + EPS
    if best > 0:
        target(1 - value / best, label="shortfall")
    assert value >= GUARANTEE * best - EPS
    assert value >= solution.guarantee * best - EPS * max(1.0, best)
    assert solution.optimum_bound >= best - EPS * max(1.0, best)


@settings(max_examples=200, deadline=None)
@given(problems(min_gain=True))
def test_every_pick_is_worth_the_minimum_gain(p):
    steps = solve(p).steps
    assert all(s.gain >= p.min_gain and s.gain > 0 for s in steps)
    assert [s.gain for s in steps] == sorted((s.gain for s in steps), reverse=True)


@settings(max_examples=200, deadline=None)
@given(problems(), st.data())
def test_upper_bound_is_never_below_the_optimum(p, data):
    selection = Selection(p)
    chosen = data.draw(
        st.lists(st.sampled_from(selection.active), unique=True)
        if selection.active
        else st.just([])
    )
    best = optimum(p)
    assert selection.upper_bound(chosen) >= best - EPS * max(1.0, best)


@settings(max_examples=200, deadline=None)
@given(problems())
def test_branch_and_bound_finds_the_optimum(p):
    chosen, complete = Selection(p).branch_and_bound()
    assert complete and fits(p, chosen)
    best = optimum(p)
    assert math.isclose(benefit(p, chosen), best, rel_tol=1e-9, abs_tol=EPS)


@settings(max_examples=300, deadline=None)
@given(problems(), st.sampled_from(["ratio", "benefit"]))
def test_lazy_greedy_picks_what_the_plain_greedy_picks(p, key):
    """Laziness is only speed: the same value after every pick as recomputing all scores
    (the picks themselves may differ only between a candidate and one dominating it)."""
    score = (lambda i, g: g / p.rows[i]) if key == "ratio" else (lambda i, g: g)
    reference = naive_greedy(p, score)
    got = Selection(p).greedy(key=key)
    assert len(got) == len(reference)
    for k in range(len(got)):
        assert math.isclose(benefit(p, got[: k + 1]), benefit(p, reference[: k + 1]), rel_tol=1e-9)
