"""A semantic query over a cube, as asked: metrics, attributes, filters, order and limit.

The request model shared by the API, the CLI and the advisor, and `parse_where`, which
reads the CLI's SQL-like filter text into the same model. What the query needs from the
cube is worked out by `planning.resolve`; calculated metrics are read by `planning.calc`.
Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

MAX_LIMIT = 100_000
DEFAULT_LIMIT = 10_000
OPERATORS = ("=", "!=", "<", "<=", ">", ">=", "in", "not_in", "between", "is_null", "is_not_null")


class QueryError(ValueError):
    """A query that cannot be answered as asked: `field` says where, the message why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


# --- the request -----------------------------------------------------------------------


@dataclass(frozen=True)
class AttributeRef:
    """An attribute by name (visible or level name), optionally with its dimension and
    the relationships path that selects a role play, as aggregates name them."""

    name: str
    dimension: str | None = None
    relationships_path: tuple[str, ...] = ()

    def __str__(self) -> str:
        path = f" via [{', '.join(self.relationships_path)}]" if self.relationships_path else ""
        return f'"{self.name}"{path}'


@dataclass(frozen=True)
class Condition:
    """`member op values`: the member is an attribute (filtered before aggregation) or a
    metric (filtered on its value at the query's grain)."""

    member: AttributeRef | str
    op: str
    values: tuple[Any, ...] = ()


@dataclass(frozen=True)
class Logical:
    """`and` / `or` of conditions and nested groups."""

    op: Literal["and", "or"]
    items: tuple[Condition | Logical, ...]


Filter = Condition | Logical


@dataclass(frozen=True)
class OrderBy:
    member: str
    descending: bool = False


@dataclass(frozen=True)
class Query:
    metrics: tuple[str, ...]
    attributes: tuple[AttributeRef, ...] = ()
    filter: Filter | None = None
    order_by: tuple[OrderBy, ...] = ()
    limit: int = DEFAULT_LIMIT
    offset: int = 0


# --- a filter written as text (the CLI's --where) ---------------------------------------

_COMPARISONS = {"EQ": "=", "NEQ": "!=", "LT": "<", "LTE": "<=", "GT": ">", "GTE": ">="}


def parse_where(text: str) -> Filter:
    """A filter from SQL-like text: `"Ship Year" = 1995 and revenue > 1000 or "Ship Mode"
    in ('AIR', 'RAIL')`, with between, is [not] null, not in and parentheses. Names are
    bare or double-quoted; values are numbers, 'strings', true, false. Parsed with
    sqlglot into conditions; nothing of the text reaches SQL."""
    import sqlglot
    from sqlglot import exp

    try:
        tree = sqlglot.parse_one(text, read="duckdb")
    except sqlglot.errors.SqlglotError as exc:  # ParseError, or TokenError (an open quote)
        errors = getattr(exc, "errors", None)
        detail = errors[0] if errors else {}
        where = f" at column {detail.get('col')}" if detail.get("col") else ""
        raise QueryError("where", f"cannot parse the filter{where}: {text!r}") from None
    return _from_sql(tree, exp)


def _from_sql(node: Any, exp: Any) -> Filter:
    if isinstance(node, exp.Paren):
        return _from_sql(node.this, exp)
    if isinstance(node, exp.And | exp.Or):
        op = "and" if isinstance(node, exp.And) else "or"
        return Logical(op, (_from_sql(node.left, exp), _from_sql(node.right, exp)))
    negated = isinstance(node, exp.Not)
    inner = node.this if negated else node
    if isinstance(inner, exp.In):
        if any(inner.args.get(k) for k in ("query", "unnest", "field")):
            raise QueryError("where", f"in takes a list of values, got {inner.sql()!r}")
        values = tuple(_value(v, exp) for v in inner.expressions)
        return Condition(_name(inner.this, exp), "not_in" if negated else "in", values)
    if isinstance(inner, exp.Is) and isinstance(inner.expression, exp.Null):
        return Condition(_name(inner.this, exp), "is_not_null" if negated else "is_null")
    if negated:
        raise QueryError("where", "not is allowed only as not in and is not null")
    if isinstance(node, exp.Between):
        low, high = _value(node.args["low"], exp), _value(node.args["high"], exp)
        return Condition(_name(node.this, exp), "between", (low, high))
    op = _COMPARISONS.get(type(node).__name__)
    if op is None:
        raise QueryError("where", f"unsupported filter {node.sql()!r}")
    return Condition(_name(node.this, exp), op, (_value(node.expression, exp),))


def _name(node: Any, exp: Any) -> str:
    if isinstance(node, exp.Column) and not node.table:
        return str(node.name)
    raise QueryError("where", f"expected an attribute or metric name, got {node.sql()!r}")


def _value(node: Any, exp: Any) -> Any:
    if isinstance(node, exp.Neg) and isinstance(node.this, exp.Literal):
        return -_value(node.this, exp)
    if isinstance(node, exp.Literal):
        if node.is_string:
            return node.this
        if node.this.isdigit():  # exact: a double would round integers past 2**53
            return int(node.this)
        number = float(node.this)
        return int(number) if number.is_integer() and "." not in node.this else number
    if isinstance(node, exp.Boolean):
        return bool(node.this)
    raise QueryError("where", f"expected a value, got {node.sql()!r}")
