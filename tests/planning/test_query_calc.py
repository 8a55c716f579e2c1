"""`planning.calc`: the arithmetic MDX of calculated metrics.

Pure and fast. The parser is checked against Python's own arithmetic (same precedence and
associativity for `+ - * /` and unary minus) on random expressions; what `/` by zero gives
in SQL is checked where the SQL is made (test_query_navigate).
"""

from __future__ import annotations

import re
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggsched.planning.calc import Calc, calc_refs, parse_calculation
from aggsched.planning.query import QueryError

M = "[Measures].[{}]"


def evaluate(tree: Calc, env: dict[str, Fraction]) -> Fraction | None:
    """The tree's value; None where a division by zero makes it empty (as in SQL)."""
    kind = tree[0]
    if kind == "ref":
        return env[tree[1]]
    if kind == "num":
        return Fraction(tree[1])
    if kind == "neg":
        inner = evaluate(tree[1], env)
        return None if inner is None else -inner
    left, right = evaluate(tree[1], env), evaluate(tree[2], env)
    if left is None or right is None:
        return None
    if kind == "/":
        return None if right == 0 else left / right
    return {"+": left + right, "-": left - right, "*": left * right}[kind]


def test_a_reference_a_number_and_each_operator() -> None:
    a, b = ("ref", "a"), ("ref", "b")
    assert parse_calculation("c", M.format("a")) == a
    assert parse_calculation("c", "42") == ("num", "42")
    assert parse_calculation("c", "1.5e2") == ("num", "1.5e2")
    assert parse_calculation("c", ".5") == ("num", ".5")
    for op in "+-*/":
        assert parse_calculation("c", f"{M.format('a')} {op} {M.format('b')}") == (op, a, b)
    assert parse_calculation("c", f"-{M.format('a')}") == ("neg", a)
    assert parse_calculation("c", f"+{M.format('a')}") == a


def test_precedence_associativity_and_parentheses() -> None:
    a, b, c = (("ref", n) for n in "abc")
    ma, mb, mc = (M.format(n) for n in "abc")
    assert parse_calculation("x", f"{ma} + {mb} * {mc}") == ("+", a, ("*", b, c))
    assert parse_calculation("x", f"({ma} + {mb}) * {mc}") == ("*", ("+", a, b), c)
    assert parse_calculation("x", f"{ma} - {mb} - {mc}") == ("-", ("-", a, b), c)
    assert parse_calculation("x", f"{ma} / {mb} / {mc}") == ("/", ("/", a, b), c)
    assert parse_calculation("x", f"-{ma} * {mb}") == ("*", ("neg", a), b)
    assert parse_calculation("x", f"{ma} - -{mb}") == ("-", a, ("neg", b))
    assert parse_calculation("x", f"((({ma})))") == a


def test_reference_spelling() -> None:
    """Case-insensitive `Measures`, spaces inside the brackets' dots, `]]` for `]`."""
    assert parse_calculation("x", "[measures] . [Net Revenue]") == ("ref", "Net Revenue")
    assert parse_calculation("x", "[MEASURES].[a]]b]") == ("ref", "a]b")
    assert parse_calculation("x", "  [Measures].[a]\n*\t2  ") == ("*", ("ref", "a"), ("num", "2"))


def test_refs_in_order_with_repeats() -> None:
    tree = parse_calculation("x", "([Measures].[b] + 1) / [Measures].[a] - [Measures].[b]")
    assert calc_refs(tree) == ["b", "a", "b"]
    assert calc_refs(parse_calculation("x", "-(2 * 3)")) == []


@st.composite
def _expressions(draw: st.DrawFn, depth: int = 0) -> str:
    """Arithmetic text over numbers and references, written with or without parentheses."""
    if depth >= 4 or draw(st.integers(0, 2)) == 0:
        if draw(st.booleans()):
            return M.format(draw(st.sampled_from(["a", "b", "c"])))
        return str(draw(st.integers(0, 9)))
    if draw(st.integers(0, 5)) == 0:
        return f"-{draw(_expressions(depth + 1))}"
    left, right = draw(_expressions(depth + 1)), draw(_expressions(depth + 1))
    op = draw(st.sampled_from("+-*/"))
    text = f"{left} {op} {right}"
    return f"({text})" if draw(st.booleans()) else text


@settings(max_examples=300, deadline=None)
@given(
    _expressions(),
    st.fixed_dictionaries({n: st.integers(-5, 5).map(Fraction) for n in "abc"}),
)
def test_random_arithmetic_means_what_python_means(text: str, env: dict[str, Fraction]) -> None:
    tree = parse_calculation("x", text)
    python = re.sub(r"\d+", r"Fraction(\g<0>)", text)  # references hold no digits
    for name, value in env.items():
        python = python.replace(M.format(name), f"Fraction({value.numerator})")
    try:
        expected = eval(python, {"Fraction": Fraction})  # test-made arithmetic only
    except ZeroDivisionError:
        expected = None  # SQL's x / NULLIF(0, 0) is NULL, and NULL spreads up the tree
    assert evaluate(tree, env) == expected


@pytest.mark.parametrize(
    ("expression", "says"),
    [
        ("CASE WHEN ISEMPTY([Measures].[a]) THEN NULL ELSE 1 END", "at 'CASE WHEN"),
        ("IIF([Measures].[a] > 0, 1, 2)", "at 'IIF("),
        ("[Measures].[a] ^ 2", "at '^ 2'"),
        ("([Date].[Year].CurrentMember, [Measures].[a])", "at '[Date]"),
        ("Aggregate(PeriodsToDate([D].[H].[Year]), [Measures].[a])", "at 'Aggregate("),
        ("[Measures].[a] % 2", "at '% 2'"),
        ("'text'", "at \"'text'\""),
    ],
)
def test_non_arithmetic_mdx_is_refused_naming_the_metric(expression: str, says: str) -> None:
    with pytest.raises(QueryError) as info:
        parse_calculation("Profit Ratio", expression)
    assert info.value.field == "metrics"
    message = info.value.message
    assert message.startswith('calculated metric "Profit Ratio" is not arithmetic')
    assert says in message


@pytest.mark.parametrize(
    ("expression", "says"),
    [
        ("", "ends too early"),
        ("[Measures].[a] +", "ends too early"),
        ("([Measures].[a] + 1", "parenthesis is not closed"),
        ("[Measures].[a] + 1)", "unexpected ')'"),
        ("[Measures].[a] [Measures].[b]", "unexpected 'b'"),
        ("1 2", "unexpected '2'"),
        ("* 2", "unexpected '*'"),
        ("()", "unexpected ')'"),
    ],
)
def test_malformed_arithmetic_is_refused_naming_the_metric(expression: str, says: str) -> None:
    with pytest.raises(QueryError) as info:
        parse_calculation("Margin", expression)
    assert info.value.field == "metrics"
    assert info.value.message.startswith('calculated metric "Margin": ')
    assert says in info.value.message


def test_the_tpch_fixtures_mdx_calculations_are_refused(sml_tpch) -> None:  # type: ignore[no-untyped-def]
    """The public TPC-H model's calculations use ParallelPeriod and PeriodsToDate."""
    from aggsched.planning.cube import cube_spec
    from aggsched.sml import load_path

    (model,) = load_path(sml_tpch, env={}).models.values()
    calcs = cube_spec(model).calculations
    assert calcs
    for name, calc in calcs.items():
        with pytest.raises(QueryError, match=f'"{name}" is not arithmetic'):
            parse_calculation(name, calc.expression)
