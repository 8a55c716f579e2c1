"""`planning.query`: the request model and `parse_where`, the CLI's filter text.

Pure and fast: every operator, and/or nesting and precedence, values, and the errors
(a `QueryError` on field "where" whose message quotes what was refused).
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggsched.planning.query import (
    OPERATORS,
    AttributeRef,
    Condition,
    Logical,
    QueryError,
    parse_where,
)


@pytest.mark.parametrize(
    ("text", "op", "values"),
    [
        ("a = 1", "=", (1,)),
        ("a != 1", "!=", (1,)),
        ("a <> 1", "!=", (1,)),
        ("a < 1", "<", (1,)),
        ("a <= 1", "<=", (1,)),
        ("a > 1", ">", (1,)),
        ("a >= 1", ">=", (1,)),
        ("a in (1, 'x', 2.5)", "in", (1, "x", 2.5)),
        ("a not in (1, 2)", "not_in", (1, 2)),
        ("not a in (1, 2)", "not_in", (1, 2)),
        ("a between 1 and 5", "between", (1, 5)),
        ("a is null", "is_null", ()),
        ("a is not null", "is_not_null", ()),
        ("not a is null", "is_not_null", ()),
    ],
)
def test_every_operator_reads_into_a_condition(text: str, op: str, values: tuple) -> None:
    assert op in OPERATORS
    assert parse_where(text) == Condition("a", op, values)


@pytest.mark.parametrize(
    ("literal", "value"),
    [
        ("1995", 1995),
        ("-3", -3),
        ("-2.5", -2.5),
        ("1.0", 1.0),
        (".5", 0.5),
        ("1e3", 1000),
        ("'AIR'", "AIR"),
        ("'it''s'", "it's"),
        ("''", ""),
        ("true", True),
        ("false", False),
        # integers past a double's 53 bits keep every digit
        ("12345678901234567891", 12345678901234567891),
        ("-9007199254740993", -9007199254740993),
    ],
)
def test_values_keep_their_type_and_exact_value(literal: str, value: object) -> None:
    cond = parse_where(f"x = {literal}")
    assert isinstance(cond, Condition)
    (got,) = cond.values
    assert got == value and type(got) is type(value)


def test_names_bare_or_double_quoted() -> None:
    assert parse_where('"Ship Year" = 1995').member == "Ship Year"  # type: ignore[union-attr]
    assert parse_where('"a""b" = 1').member == 'a"b'  # type: ignore[union-attr]
    assert parse_where("revenue > 0").member == "revenue"  # type: ignore[union-attr]


def test_and_binds_tighter_than_or_and_parentheses_group() -> None:
    a, b, c = (Condition(n, "=", (1,)) for n in "abc")
    assert parse_where("a = 1 or b = 1 and c = 1") == Logical("or", (a, Logical("and", (b, c))))
    assert parse_where("a = 1 and b = 1 or c = 1") == Logical("or", (Logical("and", (a, b)), c))
    assert parse_where("(a = 1 or b = 1) and c = 1") == Logical("and", (Logical("or", (a, b)), c))
    assert parse_where("((a = 1))") == a
    assert parse_where("a = 1 and (b = 1 or (c = 1 and a = 1))") == Logical(
        "and", (a, Logical("or", (b, Logical("and", (c, a)))))
    )


@st.composite
def _filters(draw: st.DrawFn, depth: int = 0) -> tuple[str, object]:
    """(text, expected tree) of a random and/or filter, fully parenthesised."""
    if depth >= 3 or draw(st.booleans()):
        name = draw(st.sampled_from(["a", "b", '"Ship Year"', "rev"]))
        value = draw(st.integers(-1000, 1000))
        op = draw(st.sampled_from(["=", "!=", "<", "<=", ">", ">="]))
        return f"{name} {op} {value}", Condition(name.strip('"'), op, (value,))
    joiner = draw(st.sampled_from(["and", "or"]))
    left, lt = draw(_filters(depth + 1))
    right, rt = draw(_filters(depth + 1))
    return f"({left}) {joiner.upper() if draw(st.booleans()) else joiner} ({right})", Logical(
        joiner,  # type: ignore[arg-type]
        (lt, rt),  # type: ignore[arg-type]
    )


@settings(max_examples=150, deadline=None)
@given(_filters())
def test_nested_and_or_read_back_as_written(case: tuple[str, object]) -> None:
    text, tree = case
    assert parse_where(text) == tree


@pytest.mark.parametrize(
    ("text", "quoted"),
    [
        ("a = (", "'a = ('"),
        ("", "''"),
        ("not a = 1", "not is allowed"),
        ("a not between 1 and 2", "not is allowed"),
        ("a + 1 = 2", "'a + 1'"),
        ("t.a = 1", "'t.a'"),
        ("1 = a", "'1'"),
        ("a = b", "'b'"),
        ("a = -b", "'-b'"),
        ("a between 1 and b", "'b'"),
        ("a = null", "'NULL'"),
        ("a like 'x%'", "LIKE"),
        ("a is true", "IS TRUE"),
        ("a", "'a'"),
        ("a = 1; drop table x", "DROP TABLE"),
        ("select 1", "SELECT 1"),
        ("a in (select 1)", "SELECT 1"),
        ("a = 'AIR", '"a = \'AIR"'),  # an open quote is a parse error, not a crash
        ('"Ship Year = 1', "'\"Ship Year = 1'"),
    ],
)
def test_refusals_name_the_where_field_and_quote_the_text(text: str, quoted: str) -> None:
    with pytest.raises(QueryError) as info:
        parse_where(text)
    assert info.value.field == "where"
    assert quoted in info.value.message


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from([*"ab1 ='\"()<>!-.,;*", "and", "or", "in", "not", "is", "null", "between"])
    ).map("".join)
)
def test_any_text_is_a_filter_or_a_query_error(text: str) -> None:
    """Garbage never escapes as another exception (the API would answer 500)."""
    try:
        parse_where(text)
    except QueryError as exc:
        assert exc.field == "where"


def test_attribute_ref_prints_its_path() -> None:
    assert str(AttributeRef("Year")) == '"Year"'
    assert str(AttributeRef("Year", relationships_path=("a", "b"))) == '"Year" via [a, b]'
