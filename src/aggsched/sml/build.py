"""Build typed SML objects from parsed documents (one function per object type).

Builders check shapes and types only; cross-object references are checked later in
:mod:`aggsched.sml.validate`, once every file has been read.
"""

from __future__ import annotations

from typing import Any

from aggsched.sml.objects import (
    NAMED_QUANTILES,
    UNRELATED_HANDLING,
    AggPartition,
    AggregateAttributeRef,
    AggregateDef,
    Attribute,
    Calculation,
    CalculationMethod,
    Catalog,
    Column,
    Connection,
    Dataset,
    DialectSql,
    Dimension,
    DimensionRelationship,
    Hierarchy,
    Incremental,
    Level,
    MapColumn,
    Metric,
    Model,
    ModelRelationship,
    SemiAdditive,
    parse_grace_period,
    sql_type,
)
from aggsched.sml.reader import MapReader, type_name
from aggsched.sml.yamlio import child_path

PARTITION_TYPES = ("name", "key", "name+key")
DIMENSION_TYPES = ("standard", "time")
RELATIONSHIP_TYPES = ("embedded", "snowflake")
_CATALOG_IDENTITY = {"unique_name", "object_type", "label", "version"}


def _label(r: MapReader, unique_name: str) -> str:
    return r.str("label", subst=False) or unique_name


def build_catalog(r: MapReader, unique_name: str) -> Catalog:
    """The catalog: identity plus every other key as raw settings."""
    settings = {k: v for k, v in r.data.items() if k not in _CATALOG_IDENTITY}
    return Catalog(unique_name, _label(r, unique_name), r.str("version"), settings, r.doc.file)


def build_connection(r: MapReader, unique_name: str) -> Connection:
    """A connection; ``${var}`` in database/schema is substituted."""
    return Connection(
        unique_name,
        _label(r, unique_name),
        r.str("as_connection"),
        r.str("database"),
        r.str("schema"),
        r.doc.file,
    )


def _dialects(r: MapReader) -> tuple[DialectSql, ...]:
    result = []
    for item in r.maps("dialects"):
        dialect, sql = item.str("dialect", required=True), item.str("sql", required=True)
        if dialect and sql is not None:
            result.append(DialectSql(dialect, sql))
    return tuple(result)


_TYPES_HINT = (
    "string, int, long, bigint, tinyint, float, double, decimal(x,y), number(x,y), boolean, "
    "date, datetime"
)


def _map(r: MapReader | None) -> MapColumn | None:
    """A column's ``map``: both terminators (different, not empty) and both types (SML
    data types) are required."""
    if r is None:
        return None
    fields: dict[str, str | None] = {}
    for key in ("field_terminator", "key_terminator", "key_type", "value_type"):
        value = r.str(key, required=True, subst=False)
        if value == "":
            r.error(key, f"{key} must not be empty")
            value = None
        elif value is not None and key.endswith("_type") and sql_type(value) is None:
            r.error(key, f'unknown {key} "{value}" (expected one of: {_TYPES_HINT})')
            value = None
        fields[key] = value
    field_t, key_t = fields["field_terminator"], fields["key_terminator"]
    if field_t is not None and field_t == key_t:
        r.error("key_terminator", "key_terminator must differ from field_terminator")
        return None
    key_type, value_type = fields["key_type"], fields["value_type"]
    if field_t is None or key_t is None or key_type is None or value_type is None:
        return None
    return MapColumn(field_t, key_t, key_type, value_type, r.bool("is_prefixed"))


def _column(r: MapReader) -> Column | None:
    name = r.str("name", required=True, subst=False)
    if name is None:
        return None
    parent = r.str("parent_column", subst=False)
    map_reader = r.map("map")
    if parent is not None and map_reader is not None:
        message = "a column is either a map (map) or a value of one (parent_column), not both"
        r.error("parent_column", message)
    if parent is not None and ("sql" in r.data or "dialects" in r.data):
        r.error("parent_column", "a map value column (parent_column) cannot have sql")
    return Column(
        name,
        r.str("data_type", subst=False),
        r.str("sql"),
        _dialects(r),
        _map(map_reader),
        parent,
        r.line(),
    )


def _check_map_values(columns: list[tuple[MapReader, Column]]) -> None:
    """Every ``parent_column`` names a map column of the same dataset."""
    by_name = {c.name: (r, c) for r, c in columns}
    maps = sorted(c.name for _, c in columns if c.map is not None)
    for reader, col in columns:
        if col.parent_column is None:
            continue
        parent = by_name.get(col.parent_column)
        if parent is None:
            known = f" (its map columns: {', '.join(maps)})" if maps else " (it has no map column)"
            message = f'unknown parent_column "{col.parent_column}" in this dataset{known}'
            reader.error("parent_column", message)
        elif parent[1].map is None and "map" not in parent[0].data:  # a bad map: reported
            reader.error(
                "parent_column",
                f'parent_column "{col.parent_column}" is not a map column (a map column has '
                "map: field_terminator, key_terminator, key_type, value_type)",
            )


BUCKETS = ("day", "week", "month", "quarter", "year")


def _agg_partition(r: MapReader | None) -> AggPartition | None:
    if r is None:
        return None
    fields = [r.str(k, required=True) for k in ("column", "dimension", "hierarchy", "level")]
    if any(f is None for f in fields):
        return None
    return AggPartition(*fields)  # type: ignore[arg-type]


def _bucket(r: MapReader) -> str | None:
    bucket = r.str("partition_bucket", subst=False)
    if bucket is None:
        return None
    bucket = bucket.strip().lower()
    if bucket in BUCKETS or (bucket.isdigit() and int(bucket) > 0):
        return bucket
    r.error(
        "partition_bucket",
        f'unknown partition_bucket "{bucket}" (expected {", ".join(BUCKETS)} '
        "or a positive integer width)",
    )
    return None


def _incremental(r: MapReader | None) -> Incremental | None:
    if r is None:
        return None
    column = r.str("column", required=True)
    grace = r.str("grace_period", required=True)
    partition = _agg_partition(r.map("agg_partition"))
    bucket = _bucket(r)
    if column is None or grace is None:
        return None
    if partition is not None and bucket is not None:
        r.error("partition_bucket", "give either agg_partition or partition_bucket, not both")
    try:
        return Incremental(column, parse_grace_period(grace), partition, bucket)
    except ValueError as exc:
        r.error("grace_period", str(exc))
        return None


def build_dataset(r: MapReader, unique_name: str) -> Dataset | None:
    """A dataset: exactly one of ``table`` or ``sql``; columns; incremental settings."""
    table, sql = r.str("table"), r.str("sql")
    connection_id = r.str("connection_id", required=True)
    if table is None and sql is None:
        r.error(None, 'a dataset needs "table" or "sql"')
    if table is not None and sql is not None:
        r.error("sql", 'a dataset has either "table" or "sql", not both')
    read = [(m, _column(m)) for m in r.maps("columns", required=True)]
    pairs = [(m, c) for m, c in read if c is not None]
    columns = tuple(c for _, c in pairs)
    seen: set[str] = set()
    for reader, col in pairs:
        if col.name in seen:
            reader.error(None, f'duplicate column "{col.name}"')
        seen.add(col.name)
    _check_map_values(pairs)
    incremental = _incremental(r.map("incremental"))
    if connection_id is None or (table is None and sql is None):
        return None
    return Dataset(
        unique_name,
        _label(r, unique_name),
        connection_id,
        table,
        None if table is not None else sql,
        _dialects(r),
        columns,
        incremental,
        r.bool("immutable"),
        r.doc.file,
    )


def _semi_additive(r: MapReader | None) -> SemiAdditive | None:
    if r is None:
        return None
    position = (r.str("position", required=True, subst=False) or "").strip().lower()
    if position and position not in ("first", "last"):
        r.error("position", f'unknown position "{position}" (expected first or last)')
    paths: list[tuple[str, ...]] = []
    rels = MapReader(r.ctx, r.doc, {}, r.sub("relationships"))
    for index, item in r.items("relationships"):
        if isinstance(item, str):
            paths.append((item,))
        elif isinstance(item, list) and item and all(isinstance(x, str) for x in item):
            paths.append(tuple(item))
        else:
            rels.error(index, "expected a relationship name or a list of them (a path)")
    degenerate = []
    for item in r.maps("degenerate_dimensions"):
        name, level = item.str("name", required=True), item.str("level", required=True)
        if name and level:
            degenerate.append((name, level))
    if not paths and not degenerate:
        r.error(None, "semi_additive needs relationships or degenerate_dimensions")
    if position not in ("first", "last"):
        return None
    return SemiAdditive(position, tuple(paths), tuple(degenerate))


def _choice(r: MapReader, key: str, allowed: tuple[str, ...]) -> str | None:
    value = r.str(key, subst=False)
    if value is None:
        return None
    value = value.strip().lower()
    if value not in allowed:
        r.error(key, f'unknown {key} "{value}" (expected one of: {", ".join(allowed)})')
        return None
    return value


def _quantiles(r: MapReader) -> tuple[float, ...]:
    result = []
    for index, item in r.items("custom_quantiles"):
        if isinstance(item, bool) or not isinstance(item, int | float) or not 0 < item < 1:
            MapReader(r.ctx, r.doc, {}, r.sub("custom_quantiles")).error(
                index, "expected a number between 0 and 1"
            )
        else:
            result.append(float(item))
    return tuple(result)


def _compression(r: MapReader) -> int | None:
    value = r.data.get("compression")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 50_000:
        r.error("compression", "expected a whole number from 1 to 50000")
        return None
    return value


def build_metric(r: MapReader, unique_name: str) -> Metric | None:
    """A base metric with the options that change its values; an unknown
    ``calculation_method`` (or option value) is an error."""
    method_text = r.str("calculation_method", required=True, subst=False)
    dataset, column = r.str("dataset", required=True), r.str("column", required=True)
    method = None
    if method_text is not None:
        try:
            method = CalculationMethod(method_text.strip().lower())
        except ValueError:
            allowed = ", ".join(m.value for m in CalculationMethod)
            r.error(
                "calculation_method",
                f'unknown calculation_method "{method_text}" (expected one of: {allowed})',
            )
    semi = _semi_additive(r.map("semi_additive"))
    quantiles = _choice(r, "named_quantiles", NAMED_QUANTILES)
    unrelated = _choice(r, "unrelated_dimensions_handling", UNRELATED_HANDLING)
    custom, compression = _quantiles(r), _compression(r)
    if method is None or dataset is None or column is None:
        return None
    return Metric(
        unique_name, _label(r, unique_name), method, dataset, column, r.doc.file,
        semi_additive=semi, named_quantiles=quantiles, custom_quantiles=custom,
        compression=compression, unrelated_dimensions_handling=unrelated, yaml_line=r.line(),
    )  # fmt: skip


def build_calculation(r: MapReader, unique_name: str) -> Calculation | None:
    """A ``metric_calc`` (MDX expression)."""
    expression = r.str("expression", required=True, subst=False)
    if expression is None:
        return None
    return Calculation(unique_name, _label(r, unique_name), expression, r.doc.file)


def _attribute(
    r: MapReader, secondary: bool, hierarchy: str | None = None, level: str | None = None
) -> Attribute | None:
    name = r.str("unique_name", required=True, subst=False)
    dataset = r.str("dataset", required=True)
    keys = r.strs("key_columns", required=True)
    if name is None or dataset is None or not keys:
        if "key_columns" in r.data and not keys:
            r.error("key_columns", "key_columns must list at least one column")
        return None
    return Attribute(
        name,
        _label(r, name),
        dataset,
        keys,
        r.str("name_column"),
        r.str("sort_column"),
        r.bool("is_unique_key"),
        r.str("time_unit", subst=False),
        secondary,
        hierarchy,
        level,
        r.path,
    )


def _hierarchy(r: MapReader, attributes: list[Attribute]) -> Hierarchy | None:
    name = r.str("unique_name", required=True, subst=False)
    levels = []
    for lv in r.maps("levels", required=True):
        level_name = lv.str("unique_name", required=True, subst=False)
        if level_name is None:
            continue
        secondaries = [
            a
            for a in (
                _attribute(s, True, name, level_name) for s in lv.maps("secondary_attributes")
            )
            if a
        ]
        attributes.extend(secondaries)
        levels.append(Level(level_name, tuple(a.unique_name for a in secondaries)))
    if name is None:
        return None
    return Hierarchy(name, _label(r, name), tuple(levels))


def _dim_relationship(r: MapReader) -> DimensionRelationship | None:
    src, dst = r.map("from", required=True), r.map("to", required=True)
    if src is None or dst is None:
        return None
    if dst.str("row_security") is not None and dst.str("level") is None:
        return None  # row-security relationships do not shape aggregates
    rel_type = (r.str("type", subst=False) or "").lower()
    if rel_type and rel_type not in RELATIONSHIP_TYPES:
        r.error("type", f'unknown relationship type "{rel_type}" (expected embedded or snowflake)')
        return None
    rel_type = rel_type or ("embedded" if dst.str("dimension") else "snowflake")
    dataset, columns = src.str("dataset", required=True), src.strs("join_columns", required=True)
    to_level = dst.str("level", required=True, subst=False)
    to_dimension = dst.str("dimension", required=rel_type == "embedded", subst=False)
    if dataset is None or not columns or to_level is None:
        return None
    if rel_type == "embedded" and to_dimension is None:
        return None
    name = r.str("unique_name", subst=False) or f"{dataset}({', '.join(columns)}) -> {to_level}"
    return DimensionRelationship(
        name,
        rel_type,
        dataset,
        columns,
        to_level,
        to_dimension if rel_type == "embedded" else None,
        src.str("hierarchy", subst=False),
        src.str("level", subst=False),
        r.str("role_play", subst=False),
        r.bool("m2m"),
        r.path,
    )


def build_dimension(r: MapReader, unique_name: str) -> Dimension:
    """A dimension with hierarchies, level + secondary attributes and relationships."""
    attributes = [a for a in (_attribute(m, False) for m in r.maps("level_attributes")) if a]
    hierarchies = [h for h in (_hierarchy(m, attributes) for m in r.maps("hierarchies")) if h]
    dim_type = (r.str("type", subst=False) or "standard").lower()
    if dim_type not in DIMENSION_TYPES:
        r.error("type", f'unknown dimension type "{dim_type}" (expected standard or time)')
    rels = [x for x in (_dim_relationship(m) for m in r.maps("relationships")) if x]
    return Dimension(
        unique_name,
        _label(r, unique_name),
        dim_type,
        r.bool("is_degenerate"),
        tuple(hierarchies),
        tuple(attributes),
        tuple(rels),
        r.doc.file,
    )


def _model_relationship(r: MapReader) -> ModelRelationship | None:
    name = r.str("unique_name", required=True, subst=False)
    src, dst = r.map("from", required=True), r.map("to", required=True)
    if name is None or src is None or dst is None:
        return None
    dataset, columns = src.str("dataset", required=True), src.strs("join_columns", required=True)
    row_security = dst.str("row_security", subst=False)
    dimension = dst.str("dimension", required=row_security is None, subst=False)
    level = dst.str("level", required=row_security is None, subst=False)
    if dataset is None or not columns:
        return None
    if row_security is None and (dimension is None or level is None):
        return None
    return ModelRelationship(
        name,
        dataset,
        columns,
        dimension,
        level,
        r.str("role_play", subst=False),
        row_security,
        r.path,
    )


def _metric_names(r: MapReader) -> tuple[str, ...]:
    names = []
    for index, item in r.items("metrics"):
        if isinstance(item, dict):
            item_reader = MapReader(r.ctx, r.doc, item, child_path(r.sub("metrics"), index))
            value = item_reader.str("unique_name", required=True, subst=False)
        elif isinstance(item, str):
            value = item
        else:
            value = None
            r.error(f"metrics[{index}]", f"expected a metric reference, got {type_name(item)}")
        if value is not None:
            names.append(value)
    return tuple(names)


def _aggregate_attribute(r: MapReader) -> AggregateAttributeRef | None:
    name = r.str("name", required=True, subst=False)
    dimension = r.str("dimension", required=True, subst=False)
    partition = r.str("partition", subst=False)
    if partition is not None and partition not in PARTITION_TYPES:
        r.error("partition", f'unknown partition "{partition}" (expected name, key or name+key)')
        partition = None
    if name is None or dimension is None:
        return None
    return AggregateAttributeRef(
        name,
        dimension,
        r.strs("relationships_path"),
        partition,
        r.str("distribution", subst=False),
        r.path,
        r.line(),
    )


def _aggregate(r: MapReader) -> AggregateDef | None:
    name = r.str("unique_name", required=True, subst=False)
    metrics = r.strs("metrics", required=True)
    attrs = tuple(a for a in (_aggregate_attribute(m) for m in r.maps("attributes")) if a)
    if name is None:
        return None
    return AggregateDef(
        name,
        _label(r, name),
        metrics,
        attrs,
        r.str("target_connection", subst=False),
        r.str("caching", subst=False),
        r.path,
        r.line(),
        tuple(r.doc.line(child_path(r.sub("metrics"), i)) for i in range(len(metrics))),
    )


def _dataset_properties(r: MapReader) -> dict[str, dict[str, Any]]:
    props = r.map("dataset_properties")
    result: dict[str, dict[str, Any]] = {}
    if props is None:
        return result
    for key, value in props.data.items():
        if isinstance(value, dict):
            result[str(key)] = dict(value)
        elif value is not None:
            props.error(str(key), f"expected a mapping, got {type_name(value)}")
    for key, values in result.items():
        allow = values.get("allow_aggregates")
        if allow is not None and not isinstance(allow, bool):
            props.error(
                f"{key}.allow_aggregates", f"expected true or false, got {type_name(allow)}"
            )
    return result


def build_model(r: MapReader, unique_name: str) -> Model:
    """A model with its fact relationships, metrics, degenerate dimensions, aggregates."""
    rels = [x for x in (_model_relationship(m) for m in r.maps("relationships")) if x]
    aggregates = [a for a in (_aggregate(m) for m in r.maps("aggregates")) if a]
    return Model(
        unique_name,
        _label(r, unique_name),
        tuple(rels),
        _metric_names(r),
        r.strs("dimensions"),
        _dataset_properties(r),
        tuple(aggregates),
        r.doc.file,
    )
