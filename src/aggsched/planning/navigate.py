"""Answering a resolved query: pick the cheapest aggregate for each part, write the SQL.

Each part of a query (one fact's metrics at the query's grain) is answered by the
smallest active aggregate whose grain covers every queried and filtered attribute (same
attribute, same join path) and whose partials produce every metric — re-aggregated, or
read as stored when the aggregate is exactly the query's grain (distinct counts,
percentiles) — or else by the base tables with the joins the builds use. Both ways the
part computes the same partials, and the metrics are finished from them by the same
formulas, so an answer from aggregates equals the answer from the base tables.

Parts are joined on the grain (`sqlgen.stack_on_grain`), then metric filters, the order
and the page apply. Pure: candidates in, a plan with SQL out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlglot import exp

from aggsched.planning import naming, sqlgen
from aggsched.planning.calc import Calc
from aggsched.planning.cube import CubeAttribute, CubeMetric
from aggsched.planning.lattice import Candidate, Source, choose_source
from aggsched.planning.partials import ROLLUP, partials_of
from aggsched.planning.query import AttributeRef, Condition, Filter, QueryError
from aggsched.planning.resolve import OutputMetric, Part, ResolvedQuery
from aggsched.planning.sqlgen import ident

K = TypeVar("K")
SEMI_KEY = "s__key"
SEMI_PICK = "s__pick"


@dataclass(frozen=True)
class Plan(Generic[K]):
    """The SQL of a query and where each of its parts is read from (None: base tables)."""

    select: exp.Select
    columns: tuple[str, ...]
    sources: tuple[Source[K] | None, ...]
    parts: tuple[Part, ...]

    def sql(self, dialect: str) -> str:
        return sqlgen.render(self.select, dialect, copy=False)

    @property
    def from_aggregates(self) -> bool:
        return all(s is not None for s in self.sources)


def choose(resolved: ResolvedQuery, candidates: Iterable[Candidate[K]]) -> list[Source[K] | None]:
    """The source of each part: the smallest covering aggregate slice, else None."""
    pool = list(candidates)
    chosen: list[Source[K] | None] = []
    for part in resolved.parts:
        if part.exact_only and part.regroups:
            chosen.append(None)  # a distinct count over a coarser grain: base tables only
        else:
            chosen.append(choose_source(part.spec, pool, query=True))
    return chosen


def plan(
    resolved: ResolvedQuery,
    candidates: Iterable[Candidate[K]],
    target: sqlgen.Target,
    *,
    use_aggregates: bool = True,
) -> Plan[K]:
    """Choose sources (or none, with `use_aggregates` False) and write the query's SQL."""
    sources = choose(resolved, candidates) if use_aggregates else [None] * len(resolved.parts)
    grain = _grain_names(resolved)
    selects = [
        _part_select(resolved, part, source, target, grain)
        for part, source in zip(resolved.parts, sources, strict=True)
    ]
    flat = [c for keys, name in grain for c in (*keys, *([name] if name else []))]
    inner = selects[0] if len(selects) == 1 else sqlgen.stack_on_grain(flat, selects)
    select, columns = _outer(resolved, inner, grain)
    return Plan(select, columns, tuple(sources), resolved.parts)


# --- one part -------------------------------------------------------------------------


def _grain_names(resolved: ResolvedQuery) -> list[tuple[list[str], str | None]]:
    """Neutral names of the output grain columns: `g<i>__k<j>` keys, `g<i>__n` names."""
    first = resolved.parts[0]
    names = []
    for i in range(first.outputs):
        attr = first.attributes[i]
        keys = [f"g{i}__k{j}" for j in range(len(attr.key_columns))]
        names.append((keys, f"g{i}__n" if _has_name(attr) else None))
    return names


def _has_name(attr: CubeAttribute) -> bool:
    return attr.name_column is not None and attr.key_columns != (attr.name_column,)


def _partial_name(metric: CubeMetric, partial: str) -> str:
    return naming.metric_column(metric.name, partial)


def _part_select(
    resolved: ResolvedQuery,
    part: Part,
    source: Source[Any] | None,
    target: sqlgen.Target,
    grain: list[tuple[list[str], str | None]],
) -> exp.Select:
    reader = _AggregateReader(part, source) if source else _BaseReader(part, target)
    items: list[exp.Expression] = []
    for attr, (keys, name) in zip(part.attributes[: part.outputs], grain, strict=True):
        key_exprs, name_expr = reader.grain(attr)
        items += [exp.alias_(e, ident(k), copy=False) for e, k in zip(key_exprs, keys, strict=True)]
        if name and name_expr is not None:
            items.append(exp.alias_(name_expr, ident(name), copy=False))
    group = [item.this.copy() for item in items]
    if part.semi is not None:
        semi_key = reader.grain(part.semi[1])[0][0]
        items.append(exp.alias_(semi_key, ident(SEMI_KEY), copy=False))
        group.append(semi_key.copy())
    for metric in part.metrics:
        for partial in partials_of(metric.method):
            items.append(
                exp.alias_(
                    reader.partial(metric, partial),
                    ident(_partial_name(metric, partial)),
                    copy=False,
                )
            )
    select = reader.source(exp.select(*items, copy=False))
    where = [
        w
        for w in (reader.presence(), _filter_sql(resolved.attribute_filter, part, reader))
        if w is not None
    ]
    if where:
        select = select.where(exp.and_(*where, copy=False), copy=False)
    if group and reader.groups:
        select = select.group_by(*group, copy=False)
    if part.semi is not None:
        flat = [k for keys, n in grain for k in (*keys, *([n] if n else []))]
        select = _pick_semi(select, part.semi[0], flat, part.metrics)
    return select


class _BaseReader:
    """A part read from the fact and its joins (the build engine's joins)."""

    groups = True

    def __init__(self, part: Part, target: sqlgen.Target) -> None:
        self.part = part
        self.target = target
        self.relations = {part.spec.fact_alias: part.spec.fact}
        self.relations.update({j.alias: j.relation for j in part.spec.joins})

    def _column(self, alias: str, column: str) -> exp.Expression:
        return sqlgen.column_expr(alias, self.relations[alias], column, self.target.dialect)

    def grain(self, attr: CubeAttribute) -> tuple[list[exp.Expression], exp.Expression | None]:
        keys = [self._column(attr.alias, c) for c in attr.key_columns]
        name = self._column(attr.alias, attr.name_column) if _has_name(attr) else None
        return keys, name  # type: ignore[arg-type]

    def value(self, attr: CubeAttribute) -> exp.Expression:
        keys, name = self.grain(attr)
        return name if name is not None else keys[0]

    def partial(self, metric: CubeMetric, partial: str) -> exp.Expression:
        value = self._column(self.part.spec.fact_alias, metric.column)
        return sqlgen.partial_expr(partial, value, self.target.dialect)

    def presence(self) -> exp.Expression | None:
        return None

    def source(self, select: exp.Select) -> exp.Select:
        return sqlgen.joined_from(self.part.spec, self.target, select)


class _AggregateReader:
    """A part read from an aggregate table: re-aggregated, or as stored when the table
    is exactly the part's grain."""

    alias = "agg"

    def __init__(self, part: Part, source: Source[Any]) -> None:
        self.part = part
        self.src = source
        self.columns = sqlgen.slice_columns(source)
        self.groups = not (part.exact_only and not part.regroups)

    def _col(self, name: str) -> exp.Column:
        return exp.column(ident(name), table=ident(self.alias))

    def grain(self, attr: CubeAttribute) -> tuple[list[exp.Expression], exp.Expression | None]:
        keys, name = self.columns[attr.attribute.identity]
        return [self._col(k) for k in keys], (self._col(name) if name else None)

    def value(self, attr: CubeAttribute) -> exp.Expression:
        keys, name = self.grain(attr)
        return name if name is not None else keys[0]

    def partial(self, metric: CubeMetric, partial: str) -> exp.Expression:
        column = self._col(sqlgen.slice_partial(self.src, self.part.spec, metric.metric, partial))
        if not self.groups:
            return column
        value: exp.Expression = {"sum": exp.Sum, "min": exp.Min, "max": exp.Max}[ROLLUP[partial]](
            this=column
        )
        if partial != "count":
            return value
        # COUNT over no rows is 0, SUM over no rows NULL: a grand total of an empty fact
        # (its partitioned aggregate has no rows) must count 0 as the base tables do
        zero = exp.Coalesce(this=value, expressions=[exp.Literal.number(0)])
        return sqlgen.cast(zero, "BIGINT")

    def presence(self) -> exp.Expression | None:
        return sqlgen.slice_present(self.src, self.alias) if self.src.spec.others else None

    def source(self, select: exp.Select) -> exp.Select:
        key: Any = self.src.key
        table = sqlgen.table(key.table, key.schema)
        return select.from_(
            exp.alias_(table, ident(self.alias), table=True, copy=False), copy=False
        )


def _pick_semi(
    inner: exp.Select, position: str, grain: list[str], metrics: Sequence[CubeMetric]
) -> exp.Select:
    """Per output group, the partials at the first or last level value (the level's key
    order) where the metric is not empty, as AtScale's first/last non-empty: a
    semi-additive metric is not added up over that level. A level value whose rows hold
    only NULLs is skipped; a group with no such value keeps its row, the metric NULL."""
    key = exp.column(ident(SEMI_KEY))
    filled = [
        exp.Not(this=exp.Is(this=final(m, lambda p, m=m: exp.column(ident(_partial_name(m, p)))),
                            expression=exp.null()))
        for m in metrics
    ]  # fmt: skip
    candidate = exp.Case(ifs=[exp.If(this=exp.and_(*filled), true=key)])
    pick = exp.Max if position == "last" else exp.Min
    window = exp.Window(
        this=pick(this=candidate),
        partition_by=[exp.column(ident(c)) for c in grain] or None,
    )
    ranked = exp.select(exp.Star(), exp.alias_(window, ident(SEMI_PICK), copy=False)).from_(
        exp.alias_(inner.subquery(copy=False), ident("i"), table=True, copy=False), copy=False
    )
    cols = [c.alias_or_name for c in inner.expressions if c.alias_or_name != SEMI_KEY]
    picked = exp.EQ(this=key.copy(), expression=exp.column(ident(SEMI_PICK)))
    items: list[exp.Expression] = [exp.column(ident(c)) for c in grain]
    items += [
        exp.alias_(
            exp.Max(this=exp.Case(ifs=[exp.If(this=picked.copy(), true=exp.column(ident(c)))])),
            ident(c),
            copy=False,
        )
        for c in cols
        if c not in grain
    ]
    select = exp.select(*items, copy=False).from_(
        exp.alias_(ranked.subquery(copy=False), ident("w"), table=True, copy=False), copy=False
    )
    if grain:  # one row per group, the picked level value's partials (NULL when none)
        select = select.group_by(*(exp.column(ident(c)) for c in grain), copy=False)
    return select


# --- filters ------------------------------------------------------------------------


def literal(value: Any, where: str = "filters") -> exp.Expression:
    """A filter value as a SQL literal (never text pasted into SQL)."""
    if value is None:
        return exp.null()
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, int | float):
        if value != value or value in (float("inf"), float("-inf")):
            raise QueryError(where, "filter values must be finite numbers")
        return exp.Literal.number(repr(value) if isinstance(value, float) else str(value))
    if isinstance(value, str):
        return exp.Literal.string(value)
    raise QueryError(where, f"unsupported filter value {value!r}")


def condition(op: str, value: exp.Expression, values: Sequence[Any]) -> exp.Expression:
    """`value op values` as a sqlglot condition (the operators of `query.OPERATORS`)."""
    lits = [literal(v) for v in values]
    simple: dict[str, Callable[..., exp.Expression]] = {
        "=": exp.EQ, "!=": exp.NEQ, "<": exp.LT, "<=": exp.LTE, ">": exp.GT, ">=": exp.GTE,
    }  # fmt: skip
    if op in simple:
        return simple[op](this=value, expression=lits[0])
    if op == "in":
        return exp.In(this=value, expressions=lits)
    if op == "not_in":
        return exp.Not(this=exp.In(this=value, expressions=lits))
    if op == "between":
        return exp.Between(this=value, low=lits[0], high=lits[1])
    if op == "is_null":
        return exp.Is(this=value, expression=exp.null())
    if op == "is_not_null":
        return exp.Not(this=exp.Is(this=value, expression=exp.null()))
    raise QueryError("filters", f"unknown operator {op!r}")


def _filter_sql(
    node: Filter | None, part: Part, reader: _BaseReader | _AggregateReader
) -> exp.Expression | None:
    if node is None:
        return None
    if isinstance(node, Condition):
        assert isinstance(node.member, AttributeRef)
        return condition(node.op, reader.value(part.attribute(node.member)), node.values)
    items = [_filter_sql(item, part, reader) for item in node.items]
    combine = exp.and_ if node.op == "and" else exp.or_
    return exp.paren(combine(*(i for i in items if i is not None)), copy=False)


def _metric_filter_sql(
    node: Filter | None, value_of: Callable[[str], exp.Expression]
) -> exp.Expression | None:
    if node is None:
        return None
    if isinstance(node, Condition):
        return condition(node.op, value_of(str(node.member)), node.values)
    items = [_metric_filter_sql(item, value_of) for item in node.items]
    combine = exp.and_ if node.op == "and" else exp.or_
    return exp.paren(combine(*(i for i in items if i is not None)), copy=False)


# --- metrics and the outer query ----------------------------------------------------------


def _double(value: exp.Expression) -> exp.Expression:
    return sqlgen.cast(value, "DOUBLE")


def _divide(num: exp.Expression, den: exp.Expression) -> exp.Expression:
    """num / den in floating point; NULL (not an error) when den is 0."""
    nullif = exp.Nullif(this=_double(den), expression=exp.Literal.number(0))
    return exp.Div(this=_double(num), expression=nullif)


def final(metric: CubeMetric, partial: Callable[[str], exp.Expression]) -> exp.Expression:
    """A metric's value from its partials: the same formula whether the partials come
    from an aggregate or from the base tables."""
    method = metric.method
    if method in ("sum", "minimum", "maximum", "count non-null", "count distinct",
                  "estimated count distinct", "percentile"):  # fmt: skip
        return partial(partials_of(method)[0])
    if method == "average":
        return _divide(partial("sum"), partial("count"))
    n, s, sq = _double(partial("count")), _double(partial("sum")), _double(partial("sumsq"))
    spread = exp.Sub(
        this=sq,
        expression=exp.Div(
            this=exp.Mul(this=s, expression=s.copy()),
            expression=exp.Nullif(this=n, expression=exp.Literal.number(0)),
        ),
    )
    if method in ("var_pop", "stddev_pop"):
        variance = _divide(spread, n.copy())
    else:
        variance = _divide(spread, exp.Sub(this=n.copy(), expression=exp.Literal.number(1)))
    if method.startswith("stddev"):
        return exp.Sqrt(this=exp.Greatest(this=variance, expressions=[exp.Literal.number(0)]))
    return variance


def _calc_sql(tree: Calc, base: Callable[[str], exp.Expression]) -> exp.Expression:
    kind = tree[0]
    if kind == "ref":
        return base(tree[1])
    if kind == "num":
        return exp.Literal.number(tree[1])
    if kind == "neg":
        return exp.Neg(this=exp.paren(_calc_sql(tree[1], base), copy=False))
    left, right = _calc_sql(tree[1], base), _calc_sql(tree[2], base)
    if kind == "/":
        return exp.paren(_divide(left, right), copy=False)
    op = {"+": exp.Add, "-": exp.Sub, "*": exp.Mul}[kind]
    return exp.paren(op(this=left, expression=right), copy=False)


def _outer(
    resolved: ResolvedQuery, inner: exp.Select, grain: list[tuple[list[str], str | None]]
) -> tuple[exp.Select, tuple[str, ...]]:
    alias = "q"

    def col(name: str) -> exp.Column:
        return exp.column(ident(name), table=ident(alias))

    def base(name: str) -> exp.Expression:
        metric = resolved.bases[name]
        return final(metric, lambda partial: col(_partial_name(metric, partial)))

    def value_of(out: OutputMetric) -> exp.Expression:
        return base(out.name) if out.calc is None else _calc_sql(out.calc, base)

    outputs: dict[str, exp.Expression] = {}
    for ref, (keys, name) in zip(resolved.attributes, grain, strict=True):
        outputs[ref.name] = col(name) if name else col(keys[0])
    for out in resolved.metrics:
        if out.name in outputs:
            raise QueryError("metrics", f'"{out.name}" is both an attribute and a metric')
        outputs[out.name] = value_of(out)
    select = exp.select(*(exp.alias_(e, ident(n), copy=False) for n, e in outputs.items())).from_(
        exp.alias_(inner.subquery(copy=False), ident(alias), table=True, copy=False), copy=False
    )
    calcs = {m.name: m for m in (*resolved.filter_metrics, *resolved.metrics)}

    def filter_value(name: str) -> exp.Expression:
        out = calcs.get(name)
        return value_of(out) if out is not None else base(name)

    where = _metric_filter_sql(resolved.metric_filter, filter_value)
    if where is not None:
        select = select.where(where, copy=False)
    order = resolved.query.order_by
    keys = [(o.member, o.descending) for o in order] or [
        (a.name, False) for a in resolved.attributes
    ]
    if keys:
        select = select.order_by(
            *(exp.Ordered(this=outputs[m].copy(), desc=d, nulls_first=False) for m, d in keys),
            copy=False,
        )
    select.set("limit", exp.Limit(expression=exp.Literal.number(resolved.query.limit)))
    if resolved.query.offset:
        select.set("offset", exp.Offset(expression=exp.Literal.number(resolved.query.offset)))
    return select, tuple(outputs)
