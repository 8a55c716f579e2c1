"""SQL for building aggregates, as sqlglot expressions rendered for one dialect.

Every identifier is quoted as the SML spells it. Dataset SQL and computed-column SQL from
the model are parsed (the dialect's own variant when the model has one) and their bare
column references are qualified with the relation's alias and matched, case-insensitively,
to the dataset's declared columns, so Snowflake-style SQL (`L_EXTENDEDPRICE * (1 -
L_DISCOUNT)`) reads the same columns on PostgreSQL, where unquoted names would fold to
lower case.

The model's SQL is read in the dialect it was written in (`Relation.sql_dialect`: the
connection mapping's setting, else the SML connection's platform) and transpiled to the
warehouse's; what sqlglot cannot translate is an error naming the SML file, dataset and
column. Database-qualified names in dataset SQL follow the connection mapping.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from functools import lru_cache
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.dialects import DIALECTS
from sqlglot.dialects.hive import Hive
from sqlglot.dialects.spark import Spark
from sqlglot.errors import ErrorLevel, UnsupportedError

from aggsched.planning import naming, watermark
from aggsched.planning.lattice import Candidate, Source
from aggsched.planning.partials import ROLLUP, metric_partials, partial_columns, partial_key
from aggsched.planning.spec import DefinitionSpec, MapValue, Metric, Relation
from aggsched.warehouse import sqlbuild

# SML `dialects:` names for our sqlglot dialects (compared case-insensitively).
SML_DIALECT_NAMES = {
    "duckdb": ("duckdb",),
    "postgres": ("postgresql", "postgres"),
    "spark": ("databrickssql", "databricks", "sparksql", "spark"),
}


class SparkAnsiQuotes(Spark):
    """Spark SQL reading ``"x"`` as an identifier (Spark's
    ``spark.sql.ansi.doubleQuotedIdentifiers``): how a model's default SQL, written for
    Snowflake, PostgreSQL or DuckDB, is read for Spark. A ``DatabricksSQL`` variant is
    read as plain Spark SQL, where ``"x"`` is a string."""

    class Tokenizer(Spark.Tokenizer):
        QUOTES = ["'"]  # noqa: RUF012 - sqlglot's own class attribute
        IDENTIFIERS = ["`", '"']  # noqa: RUF012


# The dialect a model's default (not dialect-specific) SQL is read in, where not the target's.
_DEFAULT_READ: dict[str, str | type[sqlglot.Dialect]] = {"spark": SparkAnsiQuotes}
# how a model's SQL is read: a sqlglot dialect's name or class; None: try the usual ones
Read = str | type[sqlglot.Dialect] | None


class SqlGenerationError(ValueError):
    """The model's SQL cannot be turned into a query for this warehouse."""


# Engines an SML connection's `as_connection` may name, and their sqlglot dialects.
_PLATFORMS = (
    ("snowflake", "snowflake"),
    ("postgres", "postgres"),
    ("databricks", "databricks"),
    ("bigquery", "bigquery"),
    ("duckdb", "duckdb"),
    ("redshift", "redshift"),
    ("spark", "spark"),
)
_DIALECT_ALIASES = {"postgresql": "postgres", "databrickssql": "databricks"}


def _squash(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def platform_dialect(as_connection: str | None) -> str | None:
    """The sqlglot dialect of an SML connection whose `as_connection` names a known engine
    (`Snowflake`, `PostgreSQL prod`, `Databricks SQL` ...); None when it names none."""
    text = _squash(as_connection or "")
    for word, dialect in _PLATFORMS:
        if word in text:
            return dialect
    return None


def dialect_name(name: str) -> str:
    """The sqlglot name of a SQL dialect given as SML (`Postgresql`, `DatabricksSQL`) or
    sqlglot (`postgres`) spell it; `ValueError` naming the known ones otherwise."""
    key = _squash(name)
    key = _DIALECT_ALIASES.get(key, key)
    known = sorted(d.lower() for d in DIALECTS)
    if key not in known:
        raise ValueError(f"unknown SQL dialect {name!r} (expected one of: {', '.join(known)})")
    return key


@dataclass(frozen=True)
class Location:
    """Overrides for where an SML connection's tables live (None: keep the model's).

    The model's `database` is never used unless overridden: a PostgreSQL connection is one
    database and a DuckDB file has one catalog, so only the schema qualifies a table.
    """

    database: str | None = None
    schema: str | None = None


@dataclass(frozen=True)
class Target:
    """The warehouse a build runs on: its dialect and where each SML connection's tables are."""

    dialect: str
    locations: Mapping[str, Location] = field(default_factory=dict)

    def location(self, relation: Relation) -> Location:
        override = self.locations.get(relation.connection, Location())
        return Location(override.database, override.schema or relation.schema)


_TYPES = {name: exp.DataType.build(name) for name in ("BIGINT", "DOUBLE", "DATE", "TIMESTAMP")}


def cast(value: exp.Expression, to: str) -> exp.Cast:
    """CAST(value AS to) for the few types aggsched casts to (types parsed once)."""
    return exp.Cast(this=value, to=_TYPES[to].copy())


def read_as(spec: DefinitionSpec, dialects: Mapping[str, str]) -> DefinitionSpec:
    """`spec` with the model SQL of each SML connection in `dialects` read in that dialect
    (the connection mapping's setting outranks the platform the SML connection names)."""

    def relation(rel: Relation) -> Relation:
        dialect = dialects.get(rel.connection)
        return replace(rel, sql_dialect=dialect) if dialect else rel

    return replace(
        spec,
        fact=relation(spec.fact),
        joins=tuple(replace(j, relation=relation(j.relation)) for j in spec.joins),
        others=tuple(read_as(o, dialects) for o in spec.others),
    )


def ident(name: str) -> exp.Identifier:
    return exp.to_identifier(name, quoted=True)


def table(name: str, schema: str | None = None, database: str | None = None) -> exp.Table:
    return exp.Table(
        this=ident(name),
        db=ident(schema) if schema else None,
        catalog=ident(database) if database else None,
    )


def render(expression: exp.Expression, dialect: str, *, copy: bool = True) -> str:
    """SQL text for `dialect`, identifiers quoted; `copy=False` renders a one-off tree
    without copying it first (faster; the generator may rewrite it in place)."""
    if dialect == "spark":  # constructs sqlglot would render with another meaning there
        expression, copy = sqlbuild.for_dialect(expression, dialect), False
    return expression.sql(dialect=dialect, identify=True, copy=copy)


_STATEMENTS = (exp.DDL, exp.DML, exp.Command, exp.Block, exp.Transaction, exp.Commit)


def _model_sql(
    default: str | None, variants: Mapping[str, str], dialect: str, source: str | None
) -> tuple[str | None, Read]:
    """The model's SQL for a `dialect` warehouse and the dialect it is written in: the
    warehouse's own variant when the model has one, else the default SQL in `source`
    (unknown: the warehouse's way of reading default SQL, `_DEFAULT_READ`)."""
    names = SML_DIALECT_NAMES.get(dialect, (dialect,))
    for key, sql in variants.items():
        if key.lower() in names:
            return sql, dialect
    return default, source if source is not None else _DEFAULT_READ.get(dialect)


def _what(relation: Relation, column: str | None = None) -> str:
    """`column 'X' of dataset 'Y' (datasets/y.yml)`, for messages."""
    where = f" ({relation.file})" if relation.file else ""
    if column is None:
        return f"dataset {relation.dataset!r}{where}"
    return f"column {column!r} of dataset {relation.dataset!r}{where}"


def _parse(
    sql: str, dialect: str, what: str, *, query: bool = False, read: Read = None
) -> exp.Expression:
    """The model's SQL as one expression (`query`: one SELECT) — never a statement that
    could change the warehouse, whatever the model says.

    With `read` (the dialect the SQL is written in) it is transpiled to `dialect`: what
    sqlglot cannot translate is refused here, naming `what`, rather than sent to the
    warehouse to fail there. Without it, the warehouse's dialect, then Snowflake's, then
    sqlglot's own are tried (SQL of an unknown platform)."""
    reads = (read, dialect, "snowflake", None) if read else (dialect, "snowflake", None)
    for attempt in dict.fromkeys(reads):
        try:
            parsed = sqlglot.parse_one(sql, read=attempt)
        except sqlglot.errors.ParseError:
            continue
        if parsed is None:
            continue
        if isinstance(parsed, _STATEMENTS) or (query and not isinstance(parsed, exp.Query)):
            kind = "a query" if query else "an expression"
            raise SqlGenerationError(f"the SQL of {what} must be {kind}: {sql!r}")
        parsed = _portable(parsed, dialect, attempt)
        if attempt is not None and attempt != dialect:
            _check_translation(parsed, dialect, what, attempt)
        return parsed
    raise SqlGenerationError(f"cannot parse the SQL of {what}: {sql!r}")


@lru_cache(maxsize=2048)
def _parsed_once(sql: str, dialect: str, what: str, query: bool, read: Read) -> exp.Expression:
    return _parse(sql, dialect, what, query=query, read=read)


def _parsed(
    sql: str, dialect: str, what: str, *, query: bool = False, read: Read = None
) -> exp.Expression:
    """`_parse`, remembered: the model's SQL is parsed (and transpiled) once per process,
    and each caller gets its own copy of the tree (copying is far cheaper)."""
    return _parsed_once(sql, dialect, what, query, read).copy()


def _check_translation(expression: exp.Expression, dialect: str, what: str, read: Read) -> None:
    try:
        expression.sql(dialect=dialect, unsupported_level=ErrorLevel.RAISE)
    except UnsupportedError as exc:
        raise SqlGenerationError(
            f"the SQL of {what}, written for {getattr(read, '__name__', read)}, has no "
            f"{dialect} translation: {exc}"
        ) from exc


# Date-part functions a dialect lacks although sqlglot renders them as functions there:
# EXTRACT works everywhere (cast to an integer, as the functions return).
_EXTRACT_PARTS: dict[str, dict[type[exp.Expression], str]] = {
    "postgres": {
        exp.Quarter: "QUARTER",
        exp.DayOfWeek: "DOW",
        exp.DayOfWeekIso: "ISODOW",
        exp.DayOfMonth: "DAY",
        exp.DayOfYear: "DOY",
        exp.Week: "WEEK",
        exp.WeekOfYear: "WEEK",
        exp.YearOfWeek: "ISOYEAR",
        exp.YearOfWeekIso: "ISOYEAR",
        exp.Hour: "HOUR",
        exp.Minute: "MINUTE",
        exp.Second: "SECOND",
    }
}


def _sunday_zero(node: exp.Expression) -> exp.Expression:
    """Spark's DAYOFWEEK counts 1 (Sunday) to 7, where sqlglot's DayOfWeek (Snowflake's,
    DuckDB's, PostgreSQL's DOW) counts 0 (Sunday) to 6; sqlglot renders it unchanged."""
    if type(node) is exp.DayOfWeek:
        return exp.cast(exp.Sub(this=node.copy(), expression=exp.Literal.number(1)), "INT")
    return node


def _portable(expression: exp.Expression, dialect: str, read: Read = None) -> exp.Expression:
    """``expression`` (read in ``read``) with the date parts ``dialect`` would compute
    otherwise rewritten: on Spark, a day of week from a non-Hive-family dialect."""
    if dialect == "spark" and not isinstance(sqlglot.Dialect.get_or_raise(read), Hive):
        expression = expression.transform(_sunday_zero, copy=False)
    parts = _EXTRACT_PARTS.get(dialect)
    if not parts:
        return expression

    def fix(node: exp.Expression) -> exp.Expression:
        part = parts.get(type(node))
        if part is None or any(k != "this" and v is not None for k, v in node.args.items()):
            return node
        value: exp.Expression = exp.Extract(this=exp.var(part), expression=node.this)
        if part == "SECOND":
            value = exp.Floor(this=value)
        return exp.cast(value, "INT")

    return expression.transform(fix, copy=False)


def _qualify(expression: exp.Expression, alias: str, relation: Relation) -> exp.Expression:
    declared = {c.lower(): c for c in relation.columns}
    declared.update({c.lower(): c for c in relation.computed})

    def fix(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Column) and not node.table:
            name = node.name
            match = declared.get(name.lower())
            identifier = ident(match) if match else node.this
            return exp.Column(this=identifier, table=ident(alias))
        return node

    return expression.transform(fix, copy=False)


def column_expr(alias: str, relation: Relation, column: str, dialect: str) -> exp.Expression:
    """A column of `relation` under `alias`: a plain reference, its computed SQL, or the
    value of its key in a map column."""
    computed = relation.computed.get(column)
    if computed is None:
        return exp.Column(this=ident(column), table=ident(alias))
    if computed.map is not None:
        return exp.Paren(this=_map_value(alias, relation, computed.map, dialect))
    sql, read = _model_sql(computed.sql, computed.dialect_sql, dialect, relation.sql_dialect)
    parsed = _parsed(sql or "", dialect, _what(relation, column), read=read)
    return exp.Paren(this=_qualify(parsed, alias, relation))


def _split_part(text: exp.Expression, delimiter: str, index: int) -> exp.Expression:
    return exp.SplitPart(
        this=text, delimiter=exp.Literal.string(delimiter), part_index=exp.Literal.number(index)
    )


def _map_value(alias: str, relation: Relation, value: MapValue, dialect: str) -> exp.Expression:
    """`key`'s value in a map column's text (`a:1,b:2`), NULL when the key is absent:
    CASE WHEN STRPOS(',' || m, ',key:') > 0 THEN CAST(SPLIT_PART(SPLIT_PART(',' || m,
    ',key:', 2), ',', 1) AS type) END — the same functions on DuckDB and PostgreSQL."""
    text = column_expr(alias, relation, value.parent, dialect)
    if not value.is_prefixed:  # so every key, the first too, follows a field terminator
        prefix = exp.Literal.string(value.field_terminator)
        text = exp.Paren(this=exp.DPipe(this=prefix, expression=text))
    needle = value.field_terminator + value.key + value.key_terminator
    raw = _split_part(_split_part(text.copy(), needle, 2), value.field_terminator, 1)
    found = exp.GT(
        this=exp.StrPosition(this=text, substr=exp.Literal.string(needle)),
        expression=exp.Literal.number(0),
    )
    return exp.Case(ifs=[exp.If(this=found, true=exp.cast(raw, value.value_type))])


def _relocate(query: exp.Expression, relation: Relation, target: Target) -> exp.Expression:
    """Tables in dataset SQL qualified with the SML connection's database (and schema)
    follow the connection mapping: the database becomes the mapped one (or goes, as for
    table datasets), the schema the mapped one when there is one."""
    override = target.locations.get(relation.connection, Location())
    database, schema = (relation.database or "").lower(), (relation.schema or "").lower()

    def fix(node: exp.Expression) -> exp.Expression:
        if not isinstance(node, exp.Table) or not isinstance(node.this, exp.Identifier):
            return node
        catalog, db = node.catalog.lower(), node.db.lower()
        if catalog and catalog != database:
            return node  # another database: the model's explicit choice
        if catalog:
            node.set("catalog", ident(override.database) if override.database else None)
        if db and db == schema and override.schema:
            node.set("db", ident(override.schema))
        return node

    return query.transform(fix, copy=False)


def relation_source(relation: Relation, alias: str, target: Target) -> exp.Expression:
    """FROM item for a dataset: its table, or its SQL as an aliased subquery."""
    sql, read = _model_sql(relation.sql, relation.dialect_sql, target.dialect, relation.sql_dialect)
    if sql:
        query = _parsed(sql, target.dialect, _what(relation), query=True, read=read)
        query = _relocate(query, relation, target)
        return exp.Subquery(this=query, alias=exp.TableAlias(this=ident(alias)))
    if not relation.table:
        raise SqlGenerationError(f"dataset {relation.dataset!r} has neither table nor sql")
    loc = target.location(relation)
    return exp.alias_(
        table(relation.table, loc.schema, loc.database), ident(alias), table=True, copy=False
    )


# What PostgreSQL and DuckDB say when a function or a column does not exist.
_MISSING_FUNCTION = (
    re.compile(r"function ([\w.\"]+)\(", re.IGNORECASE),
    re.compile(r"function with name \"?([\w.]+)\"? does not exist", re.IGNORECASE),
    re.compile(r"cannot resolve routine ([\w.`]+) on search path", re.IGNORECASE),  # Spark
)
_MISSING_COLUMN = (
    re.compile(r"column \"?([^\"\s]+?)\"? does not exist", re.IGNORECASE),
    re.compile(r"referenced column \"([^\"]+)\" not found", re.IGNORECASE),
    re.compile(r"does not have a column named \"([^\"]+)\"", re.IGNORECASE),
    re.compile(r"with name ([\w.`]+) cannot be resolved", re.IGNORECASE),  # Spark
)
_CALL = re.compile(r"([A-Za-z_][\w$]*)\s*\(")


def _model_parts(spec: DefinitionSpec, target: Target) -> list[tuple[Relation, str | None, str]]:
    """Every piece of the model's SQL a build of `spec` runs, as the warehouse gets it:
    (relation, column or None for the dataset's query, rendered SQL)."""
    parts = []
    for alias, relation in _relations(spec).items():
        pieces: list[tuple[str | None, exp.Expression]] = []
        try:
            if relation.sql or relation.dialect_sql:
                pieces.append((None, relation_source(relation, alias, target)))
            for name, computed in relation.computed.items():
                if computed.map is None:
                    pieces.append((name, column_expr(alias, relation, name, target.dialect)))
        except SqlGenerationError:
            continue
        parts += [(relation, name, render(e, target.dialect)) for name, e in pieces]
    return parts


def blame(spec: DefinitionSpec, target: Target, message: str) -> str | None:
    """Where in the SML a warehouse error about a missing function or column points: the
    model SQL that calls the function or uses the column (file, dataset, column), or the
    dataset that declares the column; None when the message names neither."""
    parts = _model_parts(spec, target)
    for pattern in _MISSING_FUNCTION:
        match = pattern.search(message)
        if match:
            name = match.group(1).replace('"', "").replace("`", "").rsplit(".", 1)[-1].lower()
            for relation, column, sql in parts:
                if name in {c.lower() for c in _CALL.findall(sql)}:
                    return f"the SQL of {_what(relation, column)}: {sql}"
    for pattern in _MISSING_COLUMN:
        match = pattern.search(message)
        if not match:
            continue
        name = match.group(1).replace("`", "").rsplit(".", 1)[-1].lower()
        quoted = (f'"{name}"', f"`{name}`")
        for relation, column, sql in parts:
            if any(q in sql.lower() for q in quoted):
                return f"the SQL of {_what(relation, column)}: {sql}"
        for relation in _relations(spec).values():
            declared = [c for c in relation.columns if c.lower() == name]
            if declared:
                return f"{_what(relation, declared[0])}, declared in the SML but not found"
    return None


def partial_expr(partial: str, value: exp.Expression, dialect: str) -> exp.Expression:
    if partial == "sum":
        return exp.Sum(this=value)
    if partial == "count":
        return exp.Count(this=value)
    if partial == "min":
        return exp.Min(this=value)
    if partial == "max":
        return exp.Max(this=value)
    if partial == "sumsq":
        return exp.Sum(this=exp.Mul(this=value.copy(), expression=value.copy()))
    if partial == "count_distinct":
        return exp.Count(this=exp.Distinct(expressions=[value]))
    if partial == "approx_count_distinct":
        if dialect in ("duckdb", "spark"):
            return exp.ApproxDistinct(this=value)
        return exp.Count(this=exp.Distinct(expressions=[value]))
    if partial == "median":
        return exp.WithinGroup(
            this=exp.PercentileCont(this=exp.Literal.number("0.5")),
            expression=exp.Order(expressions=[exp.Ordered(this=value)]),
        )
    raise SqlGenerationError(f"unknown partial {partial!r}")


def _relations(spec: DefinitionSpec) -> dict[str, Relation]:
    rels = {spec.fact_alias: spec.fact}
    rels.update({j.alias: j.relation for j in spec.joins})
    return rels


def incremental_expr(spec: DefinitionSpec, dialect: str) -> exp.Expression:
    """The incremental column's value (the watermark is its maximum)."""
    if spec.incremental is None:
        raise SqlGenerationError(f"aggregate {spec.name!r} is not incremental")
    return column_expr(spec.fact_alias, spec.fact, spec.incremental.column, dialect)


_DATE_UNITS = ("day", "week", "month", "quarter", "year")


def partition_expr(spec: DefinitionSpec, dialect: str) -> exp.Expression:
    """The partition an aggregate row belongs to, computed from the fact's row."""
    inc = spec.incremental
    if inc is None:
        raise SqlGenerationError(f"aggregate {spec.name!r} is not incremental")
    if inc.partition_column:
        return column_expr(spec.fact_alias, spec.fact, inc.partition_column, dialect)
    value = incremental_expr(spec, dialect)
    if inc.bucket in _DATE_UNITS:
        trunc = exp.TimestampTrunc(this=value, unit=exp.Var(this=inc.bucket.upper()))
        return cast(trunc, "DATE") if inc.kind == "date" else trunc
    if inc.bucket:
        width = exp.Literal.number(inc.bucket)
        floor = exp.Floor(this=exp.Div(this=cast(value, "DOUBLE"), expression=width))
        return exp.Mul(this=cast(floor, "BIGINT"), expression=width.copy())
    return value


def coarse_partitions(spec: DefinitionSpec) -> bool:
    """Whether the partition column holds at most one value per month (a month, quarter
    or year bucket of a date or timestamp): engines that store monthly partitions (Spark)
    partition by it as it is, rather than by the month of each value."""
    inc = spec.incremental
    return bool(inc and not inc.partition_column and inc.bucket in ("month", "quarter", "year"))


def partition_filter(spec: DefinitionSpec, dialect: str) -> exp.Expression:
    """What `>= since` selects whole partitions on: the partition column, or the raw
    incremental column when the partition is a bucket of it (monotone, and sargable)."""
    inc = spec.incremental
    if inc is not None and inc.bucket and not inc.partition_column:
        return incremental_expr(spec, dialect)
    return partition_expr(spec, dialect)


Names = dict[tuple, tuple[list[str], str | None]]


def _grain(spec: DefinitionSpec, dialect: str, names: Names | None = None) -> list[exp.Expression]:
    """SELECT items for the grain: attribute keys and names, then the incremental partition."""
    rels = _relations(spec)
    names = names or naming.attribute_columns(spec)
    items: list[exp.Expression] = []
    for attr in spec.attributes:
        rel = rels[attr.alias]
        keys, name_col = names[attr.identity]
        for col, out in zip(attr.key_columns, keys, strict=True):
            items.append(
                exp.alias_(column_expr(attr.alias, rel, col, dialect), ident(out), copy=False)
            )
        if name_col and attr.name_column:
            value = column_expr(attr.alias, rel, attr.name_column, dialect)
            items.append(exp.alias_(value, ident(name_col), copy=False))
    if spec.incremental:
        out = naming.partition_column(spec.incremental)
        items.append(exp.alias_(partition_expr(spec, dialect), ident(out), copy=False))
    return items


def grain_values(spec: DefinitionSpec, dialect: str) -> list[exp.Expression]:
    """The values the grain groups by (keys, names, incremental partition), unaliased."""
    return [item.this for item in _grain(spec, dialect)]


def joined_from(spec: DefinitionSpec, target: Target, select: exp.Select) -> exp.Select:
    """`select` FROM the fact LEFT JOINed along the spec's join paths."""
    dialect = target.dialect
    rels = _relations(spec)
    select = select.from_(relation_source(spec.fact, spec.fact_alias, target), copy=False)
    for join in spec.joins:
        left_rel = rels[join.left_alias]
        conditions = [
            exp.EQ(
                this=column_expr(join.left_alias, left_rel, lc, dialect),
                expression=column_expr(join.alias, join.relation, rc, dialect),
            )
            for lc, rc in zip(join.left_columns, join.right_columns, strict=True)
        ]
        on = conditions[0] if len(conditions) == 1 else exp.and_(*conditions, copy=False)
        select.append(
            "joins",
            exp.Join(this=relation_source(join.relation, join.alias, target), on=on, side="LEFT"),
        )
    return select


def base_select(
    spec: DefinitionSpec,
    target: Target,
    since: exp.Expression | None = None,
    *,
    names: Names | None = None,
    presence: bool = False,
) -> exp.Select:
    """The aggregate query over the base tables (optionally only partitions >= `since`).

    A multi-fact spec is the full outer join of one such query per fact on the grain.
    `names` overrides the grain's column names (a multi-fact component uses the first
    component's); `presence` adds the fact's row count (see `naming.presence_column`).
    """
    if spec.others:
        parts = spec.components()
        names = naming.attribute_columns(spec)
        return multi_fact_select(
            spec, [base_select(p, target, names=names, presence=True) for p in parts]
        )
    dialect = target.dialect
    grain = _grain(spec, dialect, names)
    rels = _relations(spec)
    select = exp.select(*grain, copy=False)
    if presence:
        count = exp.Count(this=exp.Star())
        select = select.select(
            exp.alias_(count, ident(naming.presence_column(spec.fact.dataset)), copy=False),
            copy=False,
        )
    for metric, partial in metric_partials(spec):
        value = column_expr(metric.alias, rels[metric.alias], metric.column, dialect)
        out = naming.metric_column(metric.name, partial)
        select = select.select(
            exp.alias_(partial_expr(partial, value, dialect), ident(out), copy=False), copy=False
        )
    select = joined_from(spec, target, select)
    if since is not None:
        select = select.where(
            exp.GTE(this=partition_filter(spec, dialect), expression=since.copy()), copy=False
        )
    if grain:
        select = select.group_by(*(item.this.copy() for item in grain), copy=False)
    return select


def derived_select(
    spec: DefinitionSpec,
    source: Source[Any] | DefinitionSpec,
    source_table: exp.Table,
    since: exp.Expression | None = None,
    *,
    names: Names | None = None,
    presence: bool = False,
) -> exp.Select:
    """Single-fact `spec` rolled up from a finer aggregate table (a slice of it when the
    source is multi-fact: only the rows where that slice's fact has rows)."""
    src = source if isinstance(source, Source) else Source(Candidate(None, source, 0))
    if spec.others:
        raise SqlGenerationError(
            f"multi-fact aggregate {spec.name!r}: derive each fact's component and join "
            "them with multi_fact_select"
        )
    alias = "src"
    target_names = names or naming.attribute_columns(spec)
    source_names = slice_columns(src)
    items: list[exp.Expression] = []
    for attr in spec.attributes:
        keys, name_col = target_names[attr.identity]
        src_keys, src_name = source_names[attr.identity]
        for out, col in zip(keys, src_keys, strict=True):
            items.append(
                exp.alias_(exp.column(ident(col), table=ident(alias)), ident(out), copy=False)
            )
        if name_col and src_name:
            items.append(
                exp.alias_(
                    exp.column(ident(src_name), table=ident(alias)), ident(name_col), copy=False
                )
            )
    if spec.incremental:
        col = naming.partition_column(spec.incremental)
        items.append(exp.alias_(exp.column(ident(col), table=ident(alias)), ident(col), copy=False))
    select = exp.select(*items, copy=False)
    present = naming.presence_column(src.component.fact.dataset)
    if presence:
        value = exp.Sum(this=exp.column(ident(present), table=ident(alias)))
        if not src.spec.others:
            value = exp.Count(this=exp.Star())  # a single-fact row is a present group
        select = select.select(
            exp.alias_(
                cast(value, "BIGINT"),
                ident(naming.presence_column(spec.fact.dataset)),
                copy=False,
            ),
            copy=False,
        )
    columns = partial_columns(src.component)
    for metric, partial in metric_partials(spec):
        col = naming.metric_column(columns[partial_key(spec, metric, partial)].name, partial)
        func = {"sum": exp.Sum, "min": exp.Min, "max": exp.Max}[ROLLUP[partial]]
        value = func(this=exp.column(ident(col), table=ident(alias)))
        if partial == "count":  # keep counts integers, as in a build from the base tables
            value = cast(value, "BIGINT")
        select = select.select(
            exp.alias_(value, ident(naming.metric_column(metric.name, partial)), copy=False),
            copy=False,
        )
    select = select.from_(
        exp.alias_(source_table, ident(alias), table=True, copy=False), copy=False
    )
    if src.spec.others:
        select = select.where(slice_present(src, alias), copy=False)
    if since is not None and spec.incremental:
        col = naming.partition_column(spec.incremental)
        select = select.where(
            exp.GTE(this=exp.column(ident(col), table=ident(alias)), expression=since.copy()),
            copy=False,
        )
    if items:
        select = select.group_by(*(item.this.copy() for item in items), copy=False)
    return select


def slice_columns(source: Source[Any]) -> Names:
    """Grain columns of a source's table, keyed by the attribute identities of the slice
    that serves (a multi-fact table names attribute i as its first fact does)."""
    names = naming.attribute_columns(source.spec)
    first = source.spec.attributes
    return {
        attr.identity: names[first[i].identity]
        for i, attr in enumerate(source.component.attributes)
    }


def slice_partial(source: Source[Any], spec: DefinitionSpec, metric: Metric, partial: str) -> str:
    """The source table's column holding `spec`'s `partial` of `metric` (whatever metric
    the source stores it under)."""
    holder = partial_columns(source.component)[partial_key(spec, metric, partial)]
    return naming.metric_column(holder.name, partial)


def slice_present(source: Source[Any], alias: str) -> exp.Expression:
    """The rows of a multi-fact table where the serving slice's fact has rows."""
    present = naming.presence_column(source.component.fact.dataset)
    return exp.column(ident(present), table=ident(alias)).is_(exp.null()).not_()


def multi_fact_select(spec: DefinitionSpec, parts: list[exp.Select]) -> exp.Select:
    """One row per grain value of any fact, with each fact's partials (see
    `stack_on_grain`); each part names its grain columns as the first fact does."""
    grain = [
        c for keys, name in naming.grain_columns(spec) for c in (*keys, *([name] if name else []))
    ]
    return stack_on_grain(grain, parts)


def stack_on_grain(grain: list[str], parts: list[exp.Select]) -> exp.Select:
    """The full outer join of `parts` on the `grain` columns they all start with: stacked
    with UNION ALL and grouped on the grain. NULL grain values match, as GROUP BY groups
    them — without a join condition engines must hash (PostgreSQL cannot full-join on IS
    NOT DISTINCT FROM). Each part has at most one row per grain value, so MAX picks it; a
    part with no row there leaves its columns NULL."""
    own = [[item.alias_or_name for item in part.expressions[len(grain) :]] for part in parts]
    every = [c for cols in own for c in cols]
    branches = []
    for part, cols in zip(parts, own, strict=True):
        items = [exp.column(ident(c), table=ident("p")) for c in grain]
        items += [
            exp.alias_(
                exp.column(ident(c), table=ident("p")) if c in cols else exp.null(),
                ident(c),
                copy=False,
            )
            for c in every
        ]
        source = exp.alias_(part.subquery(copy=False), ident("p"), table=True, copy=False)
        branches.append(exp.select(*items, copy=False).from_(source))
    stacked: exp.Query = branches[0]
    for branch in branches[1:]:
        stacked = exp.union(stacked, branch, distinct=False)
    alias = "facts"
    select = exp.select(
        *(exp.column(ident(c), table=ident(alias)) for c in grain),
        *(
            exp.alias_(exp.Max(this=exp.column(ident(c), table=ident(alias))), ident(c), copy=False)
            for c in every
        ),
    ).from_(exp.alias_(stacked.subquery(copy=False), ident(alias), table=True, copy=False))
    if grain:
        select = select.group_by(*(exp.column(ident(c), table=ident(alias)) for c in grain))
    return select


def literal(value: object) -> exp.Expression:
    """A typed SQL literal for a watermark or threshold value read back from a warehouse."""
    if isinstance(value, dt.datetime):
        return cast(exp.Literal.string(value.isoformat(sep=" ")), "TIMESTAMP")
    if isinstance(value, dt.date):
        return cast(exp.Literal.string(value.isoformat()), "DATE")
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        return exp.Literal.string(str(value))
    return exp.Literal.number(str(value))


def since_expr(spec: DefinitionSpec, threshold: Any, target: Target) -> exp.Expression:
    """The first partition an incremental rebuild recomputes, for rows from `threshold`
    (watermark - grace) on: the bucket that holds it, or — for an SML `agg_partition`
    column — the smallest partition key of those rows, read by a scalar subquery (NULL
    when there are none: then nothing is deleted or inserted)."""
    inc = spec.incremental
    if inc is None:
        raise SqlGenerationError(f"aggregate {spec.name!r} is not incremental")
    if not inc.partition_column:
        return literal(watermark.bucket_start(threshold, inc.bucket))
    dialect = target.dialect
    first = exp.select(exp.Min(this=partition_expr(spec, dialect)))
    first = first.from_(relation_source(spec.fact, spec.fact_alias, target))
    first = first.where(
        exp.GTE(this=incremental_expr(spec, dialect), expression=literal(threshold))
    )
    return first.subquery(copy=False)


def max_incremental(spec: DefinitionSpec, target: Target) -> exp.Select:
    """SELECT MAX(incremental column) over the fact relation: the next watermark."""
    value = incremental_expr(spec, target.dialect)
    return exp.select(exp.Max(this=value)).from_(
        relation_source(spec.fact, spec.fact_alias, target)
    )


def output_columns(spec: DefinitionSpec) -> list[str]:
    """The aggregate table's columns, in the order the build queries produce them."""
    cols: list[str] = []
    for keys, name_col in naming.grain_columns(spec):
        cols.extend(keys)
        if name_col:
            cols.append(name_col)
    if spec.incremental:
        cols.append(naming.partition_column(spec.incremental))
    for part in spec.components():
        if spec.others:
            cols.append(naming.presence_column(part.fact.dataset))
        cols.extend(naming.metric_column(m.name, p) for m, p in metric_partials(part))
    return cols


def delete_since(dest: exp.Table, spec: DefinitionSpec, since: exp.Expression) -> exp.Delete:
    """Remove the partitions an incremental build recomputes (`partition >= since`)."""
    if spec.incremental is None:
        raise SqlGenerationError(f"aggregate {spec.name!r} is not incremental")
    col = ident(naming.partition_column(spec.incremental))
    return exp.delete(dest, where=exp.GTE(this=exp.column(col), expression=since.copy()))


def insert_select(dest: exp.Table, spec: DefinitionSpec, query: exp.Select) -> exp.Insert:
    """INSERT with the explicit column list, so column order never matters."""
    columns = exp.Schema(this=dest, expressions=[ident(c) for c in output_columns(spec)])
    return exp.insert(query, columns)


def create_table_as(dest: exp.Table, query: exp.Query) -> exp.Create:
    return exp.Create(this=dest, kind="TABLE", expression=query)
