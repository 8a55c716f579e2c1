"""Resolved, self-contained aggregate definitions: what the planner builds tables from.

An :class:`AggregateSpec` carries everything needed to write the aggregate query (fact
dataset, base metrics with their column SQL, attributes with join paths, and the
``Dataset``/``Connection`` objects involved), so nothing downstream re-reads YAML.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from datetime import timedelta
from enum import Enum
from typing import Any

from aggsched.sml.objects import CalculationMethod, Column, Connection, Dataset, DialectSql

FACT_ALIAS = "fact"
"""Alias of the fact dataset in every join path."""


@dataclass(frozen=True)
class JoinStep:
    """One join: ``left_alias.left_columns = right_alias.right_columns``.

    ``right_alias`` is derived from the whole relationship path that leads to this join,
    so equal prefixes of two attributes' paths give equal aliases (merge them into one
    FROM clause) and two role-played joins of the same dataset get different aliases.
    ``kind`` is ``model`` (fact relationship), ``embedded`` or ``snowflake``.
    """

    left_alias: str
    left_columns: tuple[str, ...]
    right_dataset: str
    right_alias: str
    right_columns: tuple[str, ...]
    relationship: str
    kind: str


@dataclass(frozen=True)
class ResolvedAttribute:
    """A dimension attribute as reached from one fact dataset along one path.

    ``name``/``dimension_name`` are the visible, role-played names ("Order Day - TPCH");
    ``attribute``/``dimension`` the SML unique_names. ``alias`` is the alias of
    ``dataset`` in the join (``FACT_ALIAS`` for an attribute on the fact dataset).
    """

    name: str
    dimension: str
    dimension_name: str
    attribute: str
    dataset: str
    alias: str
    key_columns: tuple[str, ...]
    name_column: str | None
    sort_column: str | None
    join_path: tuple[JoinStep, ...] = ()
    relationships_path: tuple[str, ...] = ()
    is_secondary: bool = False
    time_unit: str | None = None
    partition: str | None = None
    is_entry: bool = False  # the level its path's last relationship joins to

    @property
    def columns(self) -> tuple[str, ...]:
        """Distinct dataset columns the attribute needs: keys, then name and sort."""
        result = list(self.key_columns)
        for col in (self.name_column, self.sort_column):
            if col and col not in result:
                result.append(col)
        return tuple(result)

    def describe_path(self) -> str:
        """``[rel1, rel2]``: the relationships that lead to it, for messages."""
        return "[" + ", ".join(self.relationships_path) + "]"

    @property
    def conformed(self) -> tuple[str, str, str, tuple[str, ...]]:
        """What makes this the same attribute when reached from another fact: the
        visible name, the SML attribute and the path after the fact's own relationship
        (equivalent fact relationships share the dimension and role play)."""
        return (self.name, self.dimension, self.attribute, self.relationships_path[1:])


@dataclass(frozen=True)
class ResolvedMetric:
    """A base metric with the column it aggregates (``column_sql`` if computed).

    ``semi_attributes`` are the attributes a semi-additive metric is not summed over
    (``semi_position`` ``first``/``last``); ``problem`` says why the metric can be neither
    built nor queried (an SML option aggsched does not compute), or is None.
    """

    unique_name: str
    label: str
    calculation_method: CalculationMethod
    dataset: str
    column: str
    data_type: str | None = None
    column_sql: str | None = None
    column_dialects: tuple[DialectSql, ...] = ()
    semi_position: str | None = None
    semi_attributes: tuple[ResolvedAttribute, ...] = ()
    problem: str | None = None
    unrelated: str | None = None

    @property
    def derivable(self) -> bool:
        """Whether coarser aggregates can be computed from this one (see the enum)."""
        return self.calculation_method.derivable

    @property
    def semi_additive(self) -> bool:
        return self.semi_position is not None

    def sql_for(self, dialect: str | None = None) -> str | None:
        """The computed column's SQL for ``dialect``; None for a physical column."""
        return Column(self.column, self.data_type, self.column_sql, self.column_dialects).sql_for(
            dialect
        )


@dataclass(frozen=True)
class AggregateSpec:
    """One aggregate definition, resolved: one fact dataset, base metrics, attributes.

    ``requested_metrics`` are the names as written (they may be calculations);
    ``metrics`` the base metrics they resolve to. ``system`` marks system-defined specs.
    A multi-fact aggregate (metrics of several facts sharing the grain's conformed
    dimensions) is this spec for its first fact plus ``others``: one spec per further
    fact, with the same attributes in the same order, each reached from its own fact.
    """

    unique_name: str
    label: str
    model: str
    fact_dataset: str
    metrics: tuple[ResolvedMetric, ...]
    attributes: tuple[ResolvedAttribute, ...]
    target_connection: str | None = None
    requested_metrics: tuple[str, ...] = ()
    system: bool = False
    datasets: Mapping[str, Dataset] = field(default_factory=dict, compare=False)
    connections: Mapping[str, Connection] = field(default_factory=dict, compare=False)
    others: tuple[AggregateSpec, ...] = ()

    @property
    def fact(self) -> Dataset:
        """The fact dataset object."""
        return self.datasets[self.fact_dataset]

    @property
    def partitions(self) -> tuple[ResolvedAttribute, ...]:
        """Attributes marked ``partition:`` in SML, in order."""
        return tuple(a for a in self.attributes if a.partition)

    @property
    def partition(self) -> ResolvedAttribute | None:
        """The first partition attribute, if any."""
        parts = self.partitions
        return parts[0] if parts else None

    def join_steps(self) -> tuple[JoinStep, ...]:
        """All joins of all attributes, each distinct alias once, in dependency order."""
        seen: dict[str, JoinStep] = {}
        for attr in self.attributes:
            for step in attr.join_path:
                seen.setdefault(step.right_alias, step)
        return tuple(seen.values())

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the whole spec (for storing or showing it)."""
        return to_jsonable(self)


def to_jsonable(value: Any) -> Any:
    """Dataclasses, enums, timedeltas, mappings and tuples -> plain JSON values."""
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    return value
