"""Typed, immutable SML objects: what the rest of aggsched reads instead of YAML.

Only the fields aggregates depend on are modelled; everything else stays in the YAML.
Names follow SML (``unique_name``, ``key_columns`` ...) so the mapping stays obvious.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import Any


class CalculationMethod(StrEnum):
    """SML ``calculation_method`` values (all twelve, spelled as in SML)."""

    SUM = "sum"
    COUNT_NON_NULL = "count non-null"
    COUNT_DISTINCT = "count distinct"
    ESTIMATED_COUNT_DISTINCT = "estimated count distinct"
    MINIMUM = "minimum"
    MAXIMUM = "maximum"
    AVERAGE = "average"
    PERCENTILE = "percentile"
    STDDEV_POP = "stddev_pop"
    STDDEV_SAMP = "stddev_samp"
    VAR_POP = "var_pop"
    VAR_SAMP = "var_samp"

    @property
    def derivable(self) -> bool:
        """True when a coarser aggregate can be computed from a finer one's partial state.

        Averages and variances are derivable through their parts (sum, count, sum of
        squares); distinct counts, estimated distinct counts and percentiles are not.
        """
        return self not in _NOT_DERIVABLE


_NOT_DERIVABLE = frozenset(
    {
        CalculationMethod.COUNT_DISTINCT,
        CalculationMethod.ESTIMATED_COUNT_DISTINCT,
        CalculationMethod.PERCENTILE,
    }
)

_GRACE = re.compile(r"([0-9]{1,12})\s*([smhdw]?)")  # on stripped text: linear, no huge ints
_GRACE_UNITS = {"s": "seconds", "": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_grace_period(text: str) -> timedelta:
    """``'1w'``, ``'12h'``, ``'30m'``, ``'2d'``, ``'100s'`` or plain seconds -> timedelta."""
    match = _GRACE.fullmatch(text.strip()) if len(text) <= 64 else None
    if not match:
        shown = text if len(text) <= 64 else text[:64] + "..."
        raise ValueError(f"invalid grace_period {shown!r} (expected e.g. 30m, 12h, 2d, 1w)")
    amount, unit = int(match.group(1)), match.group(2)
    try:
        if unit == "w":
            return timedelta(weeks=amount)
        return timedelta(**{_GRACE_UNITS[unit]: amount})
    except OverflowError as exc:
        raise ValueError(f"grace_period {text!r} is longer than a timedelta holds") from exc


@dataclass(frozen=True)
class Catalog:
    """``catalog.yml``: the repository's identity and engine settings (kept raw)."""

    unique_name: str
    label: str
    version: str | None
    settings: Mapping[str, Any]
    file: str = "catalog.yml"


@dataclass(frozen=True)
class Connection:
    """A named warehouse location; ``as_connection`` is AtScale's connection name."""

    unique_name: str
    label: str
    as_connection: str | None
    database: str | None
    schema: str | None
    file: str = ""


@dataclass(frozen=True)
class DialectSql:
    """An alternative SQL text for one dialect (``Snowflake``, ``Postgresql`` ...)."""

    dialect: str
    sql: str


def _sql_for(
    default: str | None, dialects: tuple[DialectSql, ...], dialect: str | None
) -> str | None:
    if dialect is not None:
        for variant in dialects:
            if variant.dialect.lower() == dialect.lower():
                return variant.sql
    return default


_DECIMAL = re.compile(r"^(?:decimal|number|numeric)\s*\(\s*(\d+)\s*,\s*(\d+)\s*\)$")
_SQL_TYPES = {
    "string": "VARCHAR",
    "text": "VARCHAR",
    "varchar": "VARCHAR",
    "int": "INT",
    "integer": "INT",
    "long": "BIGINT",
    "bigint": "BIGINT",
    "tinyint": "SMALLINT",  # PostgreSQL has no TINYINT; SMALLINT holds every value
    "smallint": "SMALLINT",
    "float": "DOUBLE",
    "double": "DOUBLE",
    # a bare decimal is scale 0 on the platforms SML comes from (Hive, Snowflake)
    "decimal": "DECIMAL(38, 0)",
    "number": "DECIMAL(38, 0)",
    "numeric": "DECIMAL(38, 0)",
    "boolean": "BOOLEAN",
    "date": "DATE",
    "datetime": "TIMESTAMP",
    "timestamp": "TIMESTAMP",
}


def sql_type(data_type: str) -> str | None:
    """The SQL type of an SML ``data_type`` (``long`` -> BIGINT, ``decimal(10,2)`` ->
    DECIMAL(10, 2)); None when SML has no such type (or the precision is out of range)."""
    text = data_type.strip().lower()
    match = _DECIMAL.match(text)
    if match:
        precision, scale = int(match.group(1)), int(match.group(2))
        if not 1 <= precision <= 38 or scale > precision:
            return None
        return f"DECIMAL({precision}, {scale})"
    return _SQL_TYPES.get(text)


@dataclass(frozen=True)
class MapColumn:
    """SML ``map``: a string column of key/value pairs (``a:1,b:2``), split by
    ``field_terminator`` between pairs and ``key_terminator`` between key and value;
    ``is_prefixed``: the text starts with a field terminator (``,a:1,b:2``)."""

    field_terminator: str
    key_terminator: str
    key_type: str
    value_type: str
    is_prefixed: bool = False


@dataclass(frozen=True)
class Column:
    """A dataset column; a computed column has ``sql`` (and maybe dialect variants).

    A map column has ``map``; each column with ``parent_column`` is the value of the key
    named like the column in that map column, typed as the map's ``value_type``.
    """

    name: str
    data_type: str | None
    sql: str | None = None
    dialects: tuple[DialectSql, ...] = ()
    map: MapColumn | None = None
    parent_column: str | None = None
    line: int | None = None

    @property
    def is_computed(self) -> bool:
        """Computed columns are SQL expressions over the dataset (or values of a map
        column), not physical columns."""
        return self.sql is not None or bool(self.dialects) or self.parent_column is not None

    def sql_for(self, dialect: str | None = None) -> str | None:
        """The expression for ``dialect`` (case-insensitive), else the default ``sql``."""
        return _sql_for(self.sql, self.dialects, dialect)


@dataclass(frozen=True)
class AggPartition:
    """SML ``incremental.agg_partition``: a dataset column whose values are the partition
    keys of a dimension level; aggregates are partitioned by it instead of the raw column."""

    column: str
    dimension: str
    hierarchy: str
    level: str


@dataclass(frozen=True)
class Incremental:
    """Incremental build settings of a dataset.

    ``bucket`` (aggsched's ``partition_bucket`` extension) coarsens the partition of the
    aggregates: ``day|week|month|quarter|year`` for dates, a positive integer width for
    numbers; None means the default (month for dates and timestamps, raw for numbers).
    """

    column: str
    grace_period: timedelta
    agg_partition: AggPartition | None = None
    bucket: str | None = None


@dataclass(frozen=True)
class Dataset:
    """A table or a SQL query on a connection, with its declared columns."""

    unique_name: str
    label: str
    connection_id: str
    table: str | None
    sql: str | None
    dialects: tuple[DialectSql, ...] = ()
    columns: tuple[Column, ...] = ()
    incremental: Incremental | None = None
    immutable: bool = False
    file: str = ""

    def column(self, name: str) -> Column | None:
        """The column called ``name`` (exact match), or None."""
        for col in self.columns:
            if col.name == name:
                return col
        return None

    @property
    def is_query(self) -> bool:
        """True for a query dataset (``sql``) rather than a table."""
        return self.table is None

    def sql_for(self, dialect: str | None = None) -> str | None:
        """The query text for ``dialect``; None for a table dataset."""
        if self.table is not None:
            return None
        return _sql_for(self.sql, self.dialects, dialect)


@dataclass(frozen=True)
class Attribute:
    """A level attribute or a secondary attribute of a dimension.

    ``hierarchy``/``level`` say where a secondary attribute hangs (None for level
    attributes, which are shared by every hierarchy level naming them).
    """

    unique_name: str
    label: str
    dataset: str
    key_columns: tuple[str, ...]
    name_column: str | None
    sort_column: str | None
    is_unique_key: bool = False
    time_unit: str | None = None
    is_secondary: bool = False
    hierarchy: str | None = None
    level: str | None = None
    yaml_path: str = ""


@dataclass(frozen=True)
class Level:
    """A level of a hierarchy: the level attribute it uses and its secondary attributes."""

    unique_name: str
    secondary_attributes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Hierarchy:
    """An ordered list of levels, coarsest first."""

    unique_name: str
    label: str
    levels: tuple[Level, ...] = ()


@dataclass(frozen=True)
class DimensionRelationship:
    """A dimension's ``embedded`` (to another dimension) or ``snowflake`` relationship.

    Snowflake relationships may be anonymous in SML: ``unique_name`` is then derived
    (``<dataset>(<columns>) -> <level>``) so join paths can still name them.
    """

    unique_name: str
    type: str
    from_dataset: str
    from_columns: tuple[str, ...]
    to_level: str
    to_dimension: str | None = None
    from_hierarchy: str | None = None
    from_level: str | None = None
    role_play: str | None = None
    m2m: bool = False
    yaml_path: str = ""


@dataclass(frozen=True)
class Dimension:
    """A dimension; ``attributes`` holds level and secondary attributes alike."""

    unique_name: str
    label: str
    type: str
    is_degenerate: bool
    hierarchies: tuple[Hierarchy, ...]
    attributes: tuple[Attribute, ...]
    relationships: tuple[DimensionRelationship, ...] = ()
    file: str = ""

    def attribute(self, unique_name: str) -> Attribute | None:
        """The attribute with this unique_name, or None."""
        for attr in self.attributes:
            if attr.unique_name == unique_name:
                return attr
        return None

    @property
    def level_attributes(self) -> tuple[Attribute, ...]:
        """Only the level attributes (those relationships can point at)."""
        return tuple(a for a in self.attributes if not a.is_secondary)


@dataclass(frozen=True)
class SemiAdditive:
    """SML ``semi_additive``: the metric is not summed over the dimensions reached by
    ``relationships`` (each a relationship path) and ``degenerate_dimensions`` ((name,
    level) pairs); it takes the ``first`` or ``last`` non-empty value over them."""

    position: str
    relationships: tuple[tuple[str, ...], ...] = ()
    degenerate_dimensions: tuple[tuple[str, str], ...] = ()


NAMED_QUANTILES = ("median", "quartiles", "deciles")
UNRELATED_HANDLING = ("error", "empty", "repeat")


@dataclass(frozen=True)
class Metric:
    """A base metric: one aggregation function over one column of one dataset.

    Only the options that change values are modelled (``format``, ``is_hidden``,
    ``folder`` and ``description`` are presentation and stay in the YAML).
    """

    unique_name: str
    label: str
    calculation_method: CalculationMethod
    dataset: str
    column: str
    file: str = ""
    semi_additive: SemiAdditive | None = None
    named_quantiles: str | None = None
    custom_quantiles: tuple[float, ...] = ()
    compression: int | None = None
    unrelated_dimensions_handling: str | None = None
    yaml_line: int | None = None


@dataclass(frozen=True)
class Calculation:
    """A ``metric_calc``: an MDX expression over other metrics."""

    unique_name: str
    label: str
    expression: str
    file: str = ""


@dataclass(frozen=True)
class ModelRelationship:
    """A fact relationship: fact dataset columns -> a dimension level (or row security)."""

    unique_name: str
    from_dataset: str
    from_columns: tuple[str, ...]
    to_dimension: str | None
    to_level: str | None
    role_play: str | None = None
    row_security: str | None = None
    yaml_path: str = ""


@dataclass(frozen=True)
class AggregateAttributeRef:
    """An attribute named in a user-defined aggregate."""

    name: str
    dimension: str
    relationships_path: tuple[str, ...] = ()
    partition: str | None = None
    distribution: str | None = None
    yaml_path: str = ""
    line: int | None = None


@dataclass(frozen=True)
class AggregateDef:
    """A user-defined aggregate as written in the model (unresolved)."""

    unique_name: str
    label: str
    metrics: tuple[str, ...]
    attributes: tuple[AggregateAttributeRef, ...]
    target_connection: str | None = None
    caching: str | None = None
    yaml_path: str = ""
    line: int | None = None
    metric_lines: tuple[int | None, ...] = ()

    def metric_line(self, index: int) -> int | None:
        """Line of ``metrics[index]`` (falls back to the aggregate's own line)."""
        if index < len(self.metric_lines):
            return self.metric_lines[index]
        return self.line


@dataclass(frozen=True)
class Model:
    """A model (cube): fact relationships, metrics, degenerate dimensions, aggregates."""

    unique_name: str
    label: str
    relationships: tuple[ModelRelationship, ...]
    metrics: tuple[str, ...]
    dimensions: tuple[str, ...]
    dataset_properties: Mapping[str, Mapping[str, Any]]
    aggregates: tuple[AggregateDef, ...] = ()
    file: str = ""

    def allow_aggregates(self, dataset: str) -> bool:
        """``dataset_properties.<dataset>.allow_aggregates`` (default true)."""
        value = self.dataset_properties.get(dataset, {}).get("allow_aggregates", True)
        return value is not False


@dataclass(frozen=True)
class OtherObject:
    """Any other SML object (composite_model, row_security, package ...), kept raw."""

    object_type: str
    unique_name: str | None
    file: str
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Repository:
    """A whole SML repository, every reference checked."""

    catalog: Catalog
    connections: Mapping[str, Connection]
    datasets: Mapping[str, Dataset]
    dimensions: Mapping[str, Dimension]
    metrics: Mapping[str, Metric]
    calculations: Mapping[str, Calculation]
    models: Mapping[str, Model]
    others: tuple[OtherObject, ...] = ()

    def connection_of(self, dataset: str | Dataset) -> Connection:
        """The connection a dataset lives on (database/schema for table names)."""
        ds = self.datasets[dataset] if isinstance(dataset, str) else dataset
        return self.connections[ds.connection_id]
