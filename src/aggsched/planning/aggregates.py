"""From resolved SML aggregates to stored definition specs.

The spec keeps only what decides the table's content (datasets, the columns used,
metrics, attributes and their join paths), so its fingerprint changes exactly when a
republish changes what the aggregate would contain, not when an unrelated column or a
label is edited.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import replace

from aggsched.planning.spec import (
    Attribute,
    ComputedColumn,
    DefinitionSpec,
    Incremental,
    Join,
    MapValue,
    Metric,
    Relation,
)
from aggsched.planning.sqlgen import platform_dialect
from aggsched.sml import FACT_ALIAS, AggregateSpec, Connection, Dataset, Repository
from aggsched.sml.objects import Column, sql_type


def _words(sql: str) -> set[str]:
    return {w.lower() for w in re.findall(r"[A-Za-z_][A-Za-z0-9_$]*", sql)}


def _relation(agg: AggregateSpec, name: str, used: Iterable[str]) -> Relation:
    """The dataset `name` with the declared columns the build touches.

    Computed columns bring the declared columns their SQL mentions, so `sqlgen` can match
    bare identifiers in that SQL to the declared spelling; a map value column brings its
    map column. The model's SQL is read in the dialect of the SML connection's platform.
    """
    ds: Dataset = agg.datasets[name]
    return _relation_of(ds, agg.connections.get(ds.connection_id), used)


def _relation_of(ds: Dataset, conn: Connection | None, used: Iterable[str]) -> Relation:
    computed: dict[str, ComputedColumn] = {}
    mentioned: set[str] = set()
    wanted = list(set(used))
    while wanted:
        col = ds.column(wanted.pop())
        if col is None or not col.is_computed or col.name in computed:
            continue
        parent = ds.column(col.parent_column) if col.parent_column else None
        if parent is not None and parent.map is not None:
            computed[col.name] = ComputedColumn("", map=_map_value(col.name, parent))
            used = {*used, parent.name}
            wanted.append(parent.name)
            continue
        variants = {d.dialect: d.sql for d in col.dialects}
        computed[col.name] = ComputedColumn(col.sql or "", variants)
        for text in (col.sql or "", *variants.values()):
            mentioned |= _words(text)
    for text in (ds.sql or "", *(d.sql for d in ds.dialects)):
        mentioned |= _words(text)
    columns = tuple(
        sorted(
            c.name
            for c in ds.columns
            if not c.is_computed and (c.name in used or c.name.lower() in mentioned)
        )
    )
    return Relation(
        dataset=ds.unique_name,
        connection=ds.connection_id,
        table=ds.table,
        sql=ds.sql,
        dialect_sql={d.dialect: d.sql for d in ds.dialects},
        database=conn.database if conn else None,
        schema=conn.schema if conn else None,
        columns=columns,
        computed=computed,
        sql_dialect=platform_dialect(conn.as_connection if conn else None),
        file=ds.file,
    )


def _map_value(key: str, parent: Column) -> MapValue:
    assert parent.map is not None
    value_type = sql_type(parent.map.value_type)
    assert value_type is not None  # checked when the SML was loaded
    return MapValue(
        parent=parent.name,
        key=key,
        field_terminator=parent.map.field_terminator,
        key_terminator=parent.map.key_terminator,
        value_type=value_type,
        is_prefixed=parent.map.is_prefixed,
    )


def full_relation(repo: Repository, ds: Dataset) -> Relation:
    """`ds` with every declared column (queries may use any of them)."""
    conn = repo.connections.get(ds.connection_id)
    return _relation_of(ds, conn, [c.name for c in ds.columns])


def _used_columns(agg: AggregateSpec) -> dict[str, set[str]]:
    used: dict[str, set[str]] = {agg.fact_dataset: {m.column for m in agg.metrics}}
    fact = agg.datasets[agg.fact_dataset]
    if fact.incremental:
        used[agg.fact_dataset].add(fact.incremental.column)
        if fact.incremental.agg_partition:
            used[agg.fact_dataset].add(fact.incremental.agg_partition.column)
    for attr in agg.attributes:
        used.setdefault(attr.dataset, set()).update(attr.columns)
        for step in attr.join_path:
            used.setdefault(step.right_dataset, set()).update(step.right_columns)
            left = agg.fact_dataset if step.left_alias == FACT_ALIAS else None
            for other in agg.join_steps():
                if other.right_alias == step.left_alias:
                    left = other.right_dataset
            if left:
                used.setdefault(left, set()).update(step.left_columns)
    return used


_DATE_TYPES = ("date",)
_TIMESTAMP_TYPES = ("datetime", "timestamp", "timestamp_ntz", "timestamp_tz", "time")


def _kind(data_type: str | None) -> str:
    """`date`, `timestamp` or `number`: the family of an SML column type."""
    text = (data_type or "").strip().lower()
    if text in _DATE_TYPES:
        return "date"
    if text.startswith(_TIMESTAMP_TYPES):
        return "timestamp"
    return "number"


def incremental_of(agg: AggregateSpec) -> Incremental | None:
    """How an aggregate of `agg`'s fact is partitioned and rebuilt incrementally; None when
    it cannot be (no `incremental` on the fact, a multi-fact aggregate, or a metric whose
    values do not add up across partitions: distinct counts and percentiles)."""
    if agg.others or not all(m.derivable for m in agg.metrics):
        return None
    return dataset_incremental(agg.datasets[agg.fact_dataset])


def dataset_incremental(fact: Dataset) -> Incremental | None:
    """The incremental partitioning of aggregates of `fact` (None: not incremental)."""
    inc = fact.incremental
    if inc is None:
        return None
    column = fact.column(inc.column)
    kind = _kind(column.data_type if column else None)
    bucket = inc.bucket
    if inc.agg_partition is None and bucket is None and kind in ("date", "timestamp"):
        bucket = "month"
    return Incremental(
        inc.column,
        int(inc.grace_period.total_seconds()),
        bucket=None if inc.agg_partition else bucket,
        partition_column=inc.agg_partition.column if inc.agg_partition else None,
        kind=kind,
    )


def definition_spec(agg: AggregateSpec) -> DefinitionSpec:
    """The stored spec of one resolved aggregate (user-defined or system); a multi-fact
    aggregate's other facts become its `others`."""
    spec = _single_spec(agg)
    if agg.others:
        others = tuple(_single_spec(o) for o in agg.others)
        spec = replace(spec, incremental=None, others=others)
    return spec


def _single_spec(agg: AggregateSpec) -> DefinitionSpec:
    used = _used_columns(agg)
    relations = {name: _relation(agg, name, cols) for name, cols in used.items()}
    joins = tuple(
        Join(
            alias=step.right_alias,
            relation=relations[step.right_dataset],
            left_alias=step.left_alias,
            left_columns=step.left_columns,
            right_columns=step.right_columns,
            relationship=step.relationship,
        )
        for step in agg.join_steps()
    )
    attributes = tuple(
        Attribute(
            name=a.name,
            alias=a.alias,
            key_columns=a.key_columns,
            name_column=a.name_column,
            dimension=a.dimension_name,
            level=a.attribute,
            path=a.relationships_path,
        )
        for a in agg.attributes
    )
    metrics = tuple(
        Metric(m.unique_name, m.calculation_method.value, FACT_ALIAS, m.column) for m in agg.metrics
    )
    return DefinitionSpec(
        name=agg.unique_name,
        fact_alias=FACT_ALIAS,
        fact=relations[agg.fact_dataset],
        joins=joins,
        attributes=attributes,
        metrics=metrics,
        incremental=incremental_of(agg),
        target_connection=agg.target_connection,
    )
