"""One scan for several aggregates: GROUPING SETS over the union of their joins.

Aggregates of one fact that nothing built can roll up to must each scan the base tables.
When a batch has several of them, one `GROUP BY GROUPING SETS` query computes all their
grains in a single pass over the fact and its joins into a staging table; each aggregate's
table is then split off it by its `GROUPING()` mask. Distinct counts and percentiles are
exact per grouping set, so every calculation method can share a scan.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TypeVar

from sqlglot import exp

from aggsched.planning import naming, sqlgen
from aggsched.planning.lattice import Candidate, can_derive
from aggsched.planning.partials import metric_partials
from aggsched.planning.spec import Attribute, DefinitionSpec, Join, Metric, Relation

GROUPING_COLUMN = "__grouping"
MAX_GRAIN_COLUMNS = 30  # GROUPING() returns a 32-bit integer on PostgreSQL
K = TypeVar("K")


def _merge_relation(a: Relation, b: Relation) -> Relation:
    columns = tuple(sorted(set(a.columns) | set(b.columns)))
    return replace(a, columns=columns, computed={**a.computed, **b.computed})


def union_spec(specs: Sequence[DefinitionSpec]) -> DefinitionSpec:
    """One spec holding every attribute, join and metric of `specs` (same fact)."""
    fact = specs[0].fact
    joins: dict[str, Join] = {}
    attributes: dict[tuple, Attribute] = {}
    metrics: dict[tuple[str, str], Metric] = {}
    for spec in specs:
        fact = _merge_relation(fact, spec.fact)
        for join in spec.joins:
            known = joins.get(join.alias)
            relation = _merge_relation(known.relation, join.relation) if known else join.relation
            joins[join.alias] = replace(join, relation=relation)
        for attr in spec.attributes:
            attributes.setdefault(attr.identity, attr)
        for metric in spec.metrics:
            metrics.setdefault((metric.name, metric.method), metric)
    return replace(
        specs[0],
        name="shared scan",
        fact=fact,
        joins=tuple(joins.values()),
        attributes=tuple(attributes.values()),
        metrics=tuple(metrics.values()),
    )


def _grain_width(spec: DefinitionSpec) -> int:
    names = naming.attribute_columns(spec)
    width = sum(len(k) + (1 if n else 0) for k, n in names.values())
    return width + (1 if spec.incremental else 0)


def shared_groups(
    specs: Sequence[DefinitionSpec], available: Iterable[Candidate[K]] = ()
) -> list[list[int]]:
    """Groups (indexes into `specs`, in build order) worth one shared scan.

    A spec joins a group when no earlier spec of the batch nor an `available` aggregate
    can serve it (it would scan the base tables anyway), grouped by fact and incremental
    partition; groups of one, groups too wide for GROUPING() and multi-fact aggregates
    (they join their facts' parts) are left out.
    """
    earlier = [c.spec for c in available]
    groups: dict[tuple, list[int]] = {}
    for i, spec in enumerate(specs):
        if not spec.others and not any(can_derive(spec, other) for other in earlier):
            key = (spec.fact.identity, spec.incremental, spec.connection)
            groups.setdefault(key, []).append(i)
        earlier.append(spec)
    result = []
    for members in groups.values():
        if len(members) > 1 and _grain_width(union_spec([specs[i] for i in members])) <= (
            MAX_GRAIN_COLUMNS
        ):
            result.append(members)
    return result


@dataclass(frozen=True)
class SharedScan:
    """The staging query and how to find each member's rows in its result."""

    query: exp.Select
    union: DefinitionSpec
    masks: tuple[int, ...]


def _positions(spec: DefinitionSpec, union: DefinitionSpec) -> set[int]:
    """Indexes of `union`'s grain columns that make up `spec`'s grain."""
    wanted = {a.identity for a in spec.attributes}
    names = naming.attribute_columns(union)
    positions, i = set(), 0
    for attr in union.attributes:
        keys, name = names[attr.identity]
        width = len(keys) + (1 if name else 0)
        if attr.identity in wanted:
            positions.update(range(i, i + width))
        i += width
    if union.incremental:
        positions.add(i)
    return positions


def grouping_select(specs: Sequence[DefinitionSpec], target: sqlgen.Target) -> SharedScan:
    union = union_spec(specs)
    query = sqlgen.base_select(union, target)
    grain = [item.this for item in query.expressions[: _grain_width(union)]]
    sets, masks = [], []
    for spec in specs:
        keep = _positions(spec, union)
        sets.append(exp.Tuple(expressions=[grain[i].copy() for i in sorted(keep)]))
        masks.append(sum(1 << (len(grain) - 1 - i) for i in range(len(grain)) if i not in keep))
    query.set("group", exp.Group(expressions=[exp.GroupingSets(expressions=sets)]))
    grouping = exp.Grouping(expressions=[g.copy() for g in grain])
    query = query.select(exp.alias_(grouping, sqlgen.ident(GROUPING_COLUMN)))
    return SharedScan(query, union, tuple(masks))


def split_select(spec: DefinitionSpec, scan: SharedScan, stage: exp.Table, mask: int) -> exp.Select:
    """One member's aggregate table, read off the staging table by its grouping mask."""
    mine, theirs = naming.attribute_columns(spec), naming.attribute_columns(scan.union)
    items: list[exp.Expression] = []
    for attr in spec.attributes:
        (keys, name), (src_keys, src_name) = mine[attr.identity], theirs[attr.identity]
        pairs = list(zip(src_keys, keys, strict=True))
        if name and src_name:
            pairs.append((src_name, name))
        items += [exp.alias_(exp.column(sqlgen.ident(s)), sqlgen.ident(o)) for s, o in pairs]
    columns = [c for c in sqlgen.output_columns(spec)[len(items) :]]
    items += [exp.column(sqlgen.ident(c)) for c in columns]
    assert len(columns) == (1 if spec.incremental else 0) + len(metric_partials(spec))
    return (
        exp.select(*items)
        .from_(stage)
        .where(
            exp.EQ(
                this=exp.column(sqlgen.ident(GROUPING_COLUMN)), expression=exp.Literal.number(mask)
            )
        )
    )
