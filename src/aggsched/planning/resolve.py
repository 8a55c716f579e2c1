"""Resolving a query against a cube: what it needs per fact.

`resolve` checks a `Query` against the cube and splits it into one `Part` per fact
dataset (and per semi-additive level): a single-fact definition spec whose grain is every
queried and filtered attribute and whose metrics are that fact's base metrics, exactly what
an aggregate must contain to answer it. Errors are `QueryError`s that name the field and
the closest names. Pure: no I/O.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aggsched.planning.calc import Calc, calc_refs, parse_calculation
from aggsched.planning.cube import CubeAttribute, CubeMetric, CubeSpec
from aggsched.planning.partials import is_derivable
from aggsched.planning.query import (
    MAX_LIMIT,
    OPERATORS,
    AttributeRef,
    Condition,
    Filter,
    Logical,
    Query,
    QueryError,
)
from aggsched.planning.spec import DefinitionSpec
from aggsched.sml import FACT_ALIAS


@dataclass(frozen=True)
class OutputMetric:
    """A requested metric: a base metric, or a calculation over other outputs' bases."""

    name: str
    base: CubeMetric | None = None
    calc: Calc | None = None


@dataclass(frozen=True)
class Part:
    """What one fact (and, for a semi-additive metric, one first/last level) contributes.

    `spec` is the single-fact definition an aggregate must cover: its attributes are the
    output attributes, then the filtered ones, then `semi`'s level; `outputs` is how many
    of them are output attributes. `regroups` says the grain is coarser than `spec`'s
    (filters on attributes not queried), where distinct counts cannot be re-aggregated.
    """

    fact: str
    spec: DefinitionSpec
    attributes: tuple[CubeAttribute, ...]
    outputs: int
    metrics: tuple[CubeMetric, ...]
    semi: tuple[str, CubeAttribute] | None = None
    refs: tuple[tuple[AttributeRef, CubeAttribute], ...] = ()

    def attribute(self, ref: AttributeRef) -> CubeAttribute:
        """The cube attribute a queried or filtered reference names in this part."""
        return dict(self.refs)[ref]

    @property
    def regroups(self) -> bool:
        return len(self.attributes) > self.outputs

    @property
    def exact_only(self) -> bool:
        """Holds distinct counts or percentiles: only an aggregate of exactly its grain can
        serve it, and only when nothing regroups."""
        return not all(is_derivable(m.method) for m in self.metrics)


@dataclass(frozen=True)
class ResolvedQuery:
    query: Query
    attributes: tuple[AttributeRef, ...]
    metrics: tuple[OutputMetric, ...]
    parts: tuple[Part, ...]
    # per output attribute: its cube attribute in each part (same order as `parts`)
    attribute_filter: Filter | None = None
    metric_filter: Filter | None = None
    bases: dict[str, CubeMetric] = field(default_factory=dict)
    # the metrics the metric filter names (calculations among them need not be queried)
    filter_metrics: tuple[OutputMetric, ...] = ()

    @property
    def facts(self) -> list[str]:
        return list(dict.fromkeys(p.fact for p in self.parts))


def _closest(name: str, options: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(dict.fromkeys(options)), n=3, cutoff=0.5)
    return f" (closest: {', '.join(repr(c) for c in close)})" if close else ""


class _Resolver:
    def __init__(self, cube: CubeSpec) -> None:
        self.cube = cube
        labels: dict[str, list[str]] = {}
        for table in (cube.metrics, cube.calculations):
            for name, obj in table.items():
                labels.setdefault(obj.label, []).append(name)
        self.by_label = {label: names[0] for label, names in labels.items() if len(names) == 1}

    # -- metrics -----------------------------------------------------------------------
    def metric_name(self, name: str, where: str) -> str:
        if name in self.cube.metrics or name in self.cube.calculations:
            return name
        if name in self.by_label:
            return self.by_label[name]
        known = [*self.cube.metrics, *self.cube.calculations, *self.by_label]  # labels too
        raise QueryError(where, f'unknown metric "{name}"{_closest(name, known)}')

    def output_metric(self, name: str, where: str) -> OutputMetric:
        name = self.metric_name(name, where)
        if name in self.cube.metrics:
            return OutputMetric(name, base=self._usable(self.cube.metrics[name], where))
        return OutputMetric(name, calc=self.calculation(name, where, ()))

    def _usable(self, metric: CubeMetric, where: str) -> CubeMetric:
        if metric.problem:
            raise QueryError(where, metric.problem)
        return metric

    def calculation(self, name: str, where: str, stack: tuple[str, ...]) -> Calc:
        """The calculation with references to other calculations inlined (a cycle or a
        non-arithmetic expression is a `QueryError`)."""
        if name in stack:
            cycle = " -> ".join((*stack[stack.index(name) :], name))
            raise QueryError(where, f"calculation cycle: {cycle}")
        tree = parse_calculation(name, self.cube.calculations[name].expression)
        return self._inline(tree, where, (*stack, name))

    def _inline(self, tree: Calc, where: str, stack: tuple[str, ...]) -> Calc:
        if tree[0] == "ref":
            ref = self.metric_name(tree[1], where)
            if ref in self.cube.metrics:
                self._usable(self.cube.metrics[ref], where)
                return ("ref", ref)
            return self.calculation(ref, where, stack)
        if tree[0] == "num":
            return tree
        return (tree[0], *(self._inline(sub, where, stack) for sub in tree[1:]))

    # -- attributes ----------------------------------------------------------------------
    def attribute(self, ref: AttributeRef, fact: str, where: str) -> CubeAttribute | None:
        """The attribute `ref` names as reached from `fact`; None when unreachable. A
        dimension with a single attribute may be named by the dimension's name."""
        matches = [
            a
            for a in self.cube.attributes_of(fact)
            if ref.name in (a.name, a.level)
            and (ref.dimension is None or ref.dimension in (a.dimension, a.sml_dimension))
        ]
        if not matches and ref.dimension is None:
            matches = self._sole_attribute(ref.name, fact)
        path = self._own_path(ref, fact, where)
        if path:
            exact = [a for a in matches if a.path == path]
            matches = exact or [a for a in matches if a.path[: len(path)] == path]
        if len(matches) <= 1:
            return matches[0] if matches else None
        options = "; ".join(a.describe() for a in matches)
        direct = [a for a in matches if len(a.path) <= 1]
        hint = ""
        if len(direct) == 1:
            hint = f", e.g. the one straight from the fact: [{', '.join(direct[0].path)}]"
        raise QueryError(
            where,
            f'ambiguous attribute "{ref.name}": {len(matches)} paths from dataset "{fact}" '
            f"({options}); name one with relationships_path{hint}",
        )

    def _sole_attribute(self, dimension: str, fact: str) -> list[CubeAttribute]:
        found = [
            a for a in self.cube.attributes_of(fact) if dimension in (a.dimension, a.sml_dimension)
        ]
        return found if len({(a.level, a.path) for a in found}) == 1 else []

    def _known(self, name: str) -> bool:
        return any(name in (a.name, a.level, a.dimension) for a in self.cube.attributes)

    def _own_path(self, ref: AttributeRef, fact: str, where: str) -> tuple[str, ...]:
        """A path starting with another fact's relationship selects the dimension and role
        play: it maps to `fact`'s own relationship to them (as for aggregates)."""
        path = ref.relationships_path
        first = self.cube.relationships.get(path[0]) if path else None
        if first is None or first.dataset == fact:
            return path
        own = [
            r
            for r in self.cube.relationships.values()
            if r.dataset == fact and r.dimension == first.dimension
            and r.role_play == first.role_play
        ]  # fmt: skip
        same_level = [r for r in own if r.level == first.level] or own
        return (same_level[0].name, *path[1:]) if len(same_level) == 1 else path

    def reachable_from(self, ref: AttributeRef) -> list[str]:
        facts = dict.fromkeys(a.fact for a in self.cube.attributes)
        return [
            f
            for f in facts
            if self._safe(lambda f=f: self.attribute(ref, f, ""))  # type: ignore[misc]
        ]

    @staticmethod
    def _safe(find: Any) -> bool:
        try:
            return find() is not None
        except QueryError:
            return True

    def unknown(self, ref: AttributeRef, where: str) -> QueryError:
        names = [a.name for a in self.cube.attributes]
        if not self._known(ref.name):
            return QueryError(where, f'unknown attribute "{ref.name}"{_closest(ref.name, names)}')
        named = [a for a in self.cube.attributes if ref.name in (a.name, a.level, a.dimension)]
        found = "; ".join(dict.fromkeys(f"{a.describe()} in {a.dimension}" for a in named))
        return QueryError(
            where,
            f"attribute {ref} matches nothing with that dimension or path (there is: {found})",
        )


def _walk(node: Filter | None) -> list[Condition]:
    if node is None:
        return []
    if isinstance(node, Condition):
        return [node]
    return [c for item in node.items for c in _walk(item)]


def _split_filter(node: Filter | None, is_metric: Any) -> tuple[Filter | None, Filter | None]:
    """(attribute part, metric part) of the filter: a top-level AND may mix both; an OR
    group must be all one kind (before and after aggregation do not combine in an OR)."""
    if node is None:
        return None, None
    conditions = _walk(node)
    kinds = {is_metric(c) for c in conditions}
    if len(kinds) == 1:
        return (None, node) if kinds == {True} else (node, None)
    if isinstance(node, Logical) and node.op == "and":
        attrs, metrics = [], []
        for item in node.items:
            a, m = _split_filter(item, is_metric)
            attrs += [a] if a is not None else []
            metrics += [m] if m is not None else []
        return _and(attrs), _and(metrics)
    raise QueryError(
        "filters",
        "an or-group mixes attribute conditions (applied before aggregation) and metric "
        "conditions (applied to the results); split them with and",
    )


def _members(r: _Resolver, node: Filter | None) -> Filter | None:
    """Conditions whose member is a bare name: a metric when it names one, else an
    attribute (as Cube's `member` works)."""
    if node is None:
        return None
    if isinstance(node, Logical):
        return Logical(node.op, tuple(_members(r, item) for item in node.items))  # type: ignore[misc]
    member = node.member
    if isinstance(member, str):
        if member in r.cube.metrics or member in r.cube.calculations:
            pass
        elif member in r.by_label:  # by label: the outer query knows metrics by name
            member = r.by_label[member]
        else:
            member = AttributeRef(member)
    return Condition(member, node.op, node.values)


def _and(items: list[Filter]) -> Filter | None:
    if not items:
        return None
    return items[0] if len(items) == 1 else Logical("and", tuple(items))


def _check_condition(cond: Condition, where: str) -> None:
    if cond.op not in OPERATORS:
        raise QueryError(where, f"unknown operator {cond.op!r} (one of: {', '.join(OPERATORS)})")
    counts = {"is_null": 0, "is_not_null": 0, "between": 2}
    wanted = counts.get(cond.op)
    if wanted is not None and len(cond.values) != wanted:
        raise QueryError(
            where, f"operator {cond.op} takes {wanted} value(s), got {len(cond.values)}"
        )
    if cond.op in ("in", "not_in") and not cond.values:
        raise QueryError(where, f"operator {cond.op} needs at least one value")
    if wanted is None and cond.op not in ("in", "not_in") and len(cond.values) != 1:
        raise QueryError(where, f"operator {cond.op} takes 1 value, got {len(cond.values)}")
    for value in cond.values:
        if isinstance(value, (dict, list)):
            raise QueryError(where, "filter values are strings, numbers, booleans or null")


def resolve(cube: CubeSpec, query: Query) -> ResolvedQuery:
    """Check `query` against `cube` and split it into parts (see the module docstring)."""
    if not query.metrics:
        raise QueryError("metrics", "a query needs at least one metric")
    if not 0 <= query.limit <= MAX_LIMIT:
        raise QueryError("limit", f"limit must be between 0 and {MAX_LIMIT:,}")
    if query.offset < 0:
        raise QueryError("offset", "offset must not be negative")
    r = _Resolver(cube)
    outputs = [r.output_metric(m, f"metrics[{i}]") for i, m in enumerate(query.metrics)]
    names = [o.name for o in outputs]
    if len(set(names)) != len(names):
        raise QueryError("metrics", "a metric is asked for twice")

    def is_metric(cond: Condition) -> bool:
        return isinstance(cond.member, str)

    for i, cond in enumerate(_walk(query.filter)):
        _check_condition(cond, f"filters[{i}]")
    attr_filter, metric_filter = _split_filter(_members(r, query.filter), is_metric)
    filter_metrics = [r.output_metric(str(c.member), "filters") for c in _walk(metric_filter)]
    bases = _bases(cube, [*outputs, *filter_metrics])
    if len(set(query.attributes)) != len(query.attributes):
        raise QueryError("attributes", "an attribute is asked for twice")
    filter_refs = [c.member for c in _walk(attr_filter) if isinstance(c.member, AttributeRef)]
    parts = _parts(r, query.attributes, filter_refs, bases)
    _check_order(query, names, [a.name for a in query.attributes])
    return ResolvedQuery(
        query=query,
        attributes=query.attributes,
        metrics=tuple(outputs),
        parts=tuple(parts),
        attribute_filter=attr_filter,
        metric_filter=metric_filter,
        bases=bases,
        filter_metrics=tuple(filter_metrics),
    )


def _bases(cube: CubeSpec, outputs: Sequence[OutputMetric]) -> dict[str, CubeMetric]:
    """Every base metric the outputs need, calculations' references included."""
    found: dict[str, CubeMetric] = {}
    for out in outputs:
        names = [out.base.name] if out.base is not None else calc_refs(out.calc or ("num",))
        for name in names:
            found.setdefault(name, cube.metrics[name])
    return found


def _parts(
    r: _Resolver,
    attributes: Sequence[AttributeRef],
    filtered: Sequence[AttributeRef],
    bases: dict[str, CubeMetric],
) -> list[Part]:
    by_fact: dict[str, list[CubeMetric]] = {}
    for metric in bases.values():
        by_fact.setdefault(metric.dataset, []).append(metric)
    parts = []
    for fact, metrics in by_fact.items():
        outs = [
            _reach(r, ref, fact, f"attributes[{i}]", metrics) for i, ref in enumerate(attributes)
        ]
        found = [_reach(r, ref, fact, "filters", metrics) for ref in filtered]
        extra = [a for a in dict.fromkeys(found) if a not in outs]
        refs = tuple(zip([*attributes, *filtered], [*outs, *found], strict=True))
        plain = [m for m in metrics if m.semi is None]
        if plain:
            parts.append(_part(r.cube, fact, outs, extra, plain, refs=refs))
        for metric in (m for m in metrics if m.semi is not None):
            parts.append(_semi_part(r, fact, outs, extra, metric, refs))
    return parts


def _reach(
    r: _Resolver, ref: AttributeRef, fact: str, where: str, metrics: list[CubeMetric]
) -> CubeAttribute:
    attr = r.attribute(ref, fact, where)
    if attr is not None:
        return attr
    reach = r.reachable_from(ref)
    if not r._known(ref.name) or not reach:
        raise r.unknown(ref, where)
    names = ", ".join(f'"{m.name}"' for m in metrics)
    handling = {m.unrelated for m in metrics} - {None, "error"}
    note = ""
    if handling:
        note = (
            f"; unrelated_dimensions_handling {', '.join(sorted(handling))} is not computed "
            "by aggsched"
        )
    raise QueryError(
        where,
        f'attribute {ref} is not reachable from dataset "{fact}" (metric {names}): no '
        f"relationship path leads from it to that attribute (reachable from: "
        f"{', '.join(reach) or 'no fact'}){note}",
    )


def _part(
    cube: CubeSpec,
    fact: str,
    outs: list[CubeAttribute],
    extra: list[CubeAttribute],
    metrics: list[CubeMetric],
    semi: tuple[str, CubeAttribute] | None = None,
    refs: tuple[tuple[AttributeRef, CubeAttribute], ...] = (),
) -> Part:
    attrs = [*outs, *extra, *([semi[1]] if semi else [])]
    unique = list(dict.fromkeys(attrs))
    spec = DefinitionSpec(
        name=f"query:{fact}",
        fact_alias=FACT_ALIAS,
        fact=cube.relations[fact],
        joins=cube.joins(unique),
        attributes=tuple(a.attribute for a in unique),
        metrics=tuple(m.metric for m in metrics),
    )
    return Part(fact, spec, tuple(unique), len(outs), tuple(metrics), semi, refs)


def _semi_part(
    r: _Resolver,
    fact: str,
    outs: list[CubeAttribute],
    extra: list[CubeAttribute],
    metric: CubeMetric,
    refs: tuple[tuple[AttributeRef, CubeAttribute], ...],
) -> Part:
    assert metric.semi is not None
    position, name, path = metric.semi
    level = r.attribute(AttributeRef(name, relationships_path=path), fact, "metrics")
    if level is None or len(level.key_columns) != 1:
        raise QueryError(
            "metrics",
            f'semi-additive metric "{metric.name}": its level "{name}" must be reachable '
            "with a single key column",
        )
    return _part(r.cube, fact, outs, extra, [metric], (position, level), refs)


def _check_order(query: Query, metrics: list[str], attributes: list[str]) -> None:
    known = set(metrics) | set(attributes)
    for i, order in enumerate(query.order_by):
        if order.member not in known:
            raise QueryError(
                f"order_by[{i}]",
                f'cannot order by "{order.member}": order by a queried attribute or metric'
                f"{_closest(order.member, known)}",
            )
