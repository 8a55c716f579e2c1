"""The stored form of an aggregate definition: everything needed to build its table.

It is made from the resolved SML model when a project is published and kept as JSON in the
store, so a build never re-reads YAML and a re-publish can compare old and new specs.
Identifiers are kept exactly as the SML spells them; quoting happens in `sqlgen`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any


@dataclass(frozen=True)
class MapValue:
    """The value of `key` in the map column `parent` (SML `parent_column`), cast to
    `value_type` (a SQL type): pairs are split by `field_terminator`, key from value by
    `key_terminator`; `is_prefixed` text starts with a field terminator."""

    parent: str
    key: str
    field_terminator: str
    key_terminator: str
    value_type: str
    is_prefixed: bool = False


@dataclass(frozen=True)
class ComputedColumn:
    """A dataset column defined by SQL (`sql:` in SML) with optional per-dialect variants,
    or (`map`) the value of one key of a map column."""

    sql: str
    dialect_sql: dict[str, str] = field(default_factory=dict)
    map: MapValue | None = None


@dataclass(frozen=True)
class Relation:
    """A dataset as the warehouse sees it: a table or a SQL query, on an SML connection."""

    dataset: str
    connection: str
    table: str | None = None
    sql: str | None = None
    dialect_sql: dict[str, str] = field(default_factory=dict)
    database: str | None = None
    schema: str | None = None
    columns: tuple[str, ...] = ()
    computed: dict[str, ComputedColumn] = field(default_factory=dict)
    # How to read the model's SQL and where it came from: not part of the fingerprint
    # (like the connection mapping, they say how to reach the rows, not which rows).
    sql_dialect: str | None = None  # sqlglot dialect the model's SQL is written in
    file: str = ""  # the dataset's SML file, for messages

    @property
    def identity(self) -> tuple:
        """What makes two relations the same rows, whichever columns each build uses."""
        variants = tuple(sorted(self.dialect_sql.items()))
        return (self.dataset, self.connection, self.table, self.sql, variants, self.schema)


@dataclass(frozen=True)
class Join:
    """One LEFT JOIN step: `alias` (of `relation`) joined to the already-joined `left_alias`."""

    alias: str
    relation: Relation
    left_alias: str
    left_columns: tuple[str, ...]
    right_columns: tuple[str, ...]
    relationship: str = ""


@dataclass(frozen=True)
class Attribute:
    """A dimension attribute of the aggregate's grain, reached through `path`."""

    name: str
    alias: str
    key_columns: tuple[str, ...]
    name_column: str | None = None
    dimension: str = ""
    level: str = ""
    path: tuple[str, ...] = ()

    @property
    def identity(self) -> tuple[str, tuple[str, ...]]:
        """Two attributes are the same grain column when name and join path agree."""
        return (self.name, self.path)


@dataclass(frozen=True)
class Metric:
    """A base metric: `method` over `column` of the relation aliased `alias`."""

    name: str
    method: str
    alias: str
    column: str


@dataclass(frozen=True)
class Incremental:
    """SML `incremental`: rows are appended by `column`; late rows arrive within `grace`.

    Aggregates are partitioned by `partition_column` (SML `agg_partition`: a dataset
    column holding partition keys), else by a `bucket` of `column` (`day`..`year` for
    dates and timestamps, an integer width for numbers), else by `column` itself. An
    incremental rebuild recomputes whole partitions from `watermark - grace` on.
    `kind` (`date`, `timestamp` or `number`) is the column's SML type family.
    """

    column: str
    grace_seconds: int = 0
    bucket: str | None = None
    partition_column: str | None = None
    kind: str | None = None


@dataclass(frozen=True)
class DefinitionSpec:
    """An aggregate definition: the grain (attributes) and metrics over one fact relation."""

    name: str
    fact_alias: str
    fact: Relation
    joins: tuple[Join, ...] = ()
    attributes: tuple[Attribute, ...] = ()
    metrics: tuple[Metric, ...] = ()
    incremental: Incremental | None = None
    target_connection: str | None = None
    others: tuple[DefinitionSpec, ...] = ()

    @property
    def multi_fact(self) -> bool:
        """Metrics of several facts at one (conformed) grain, full-outer-joined on it."""
        return bool(self.others)

    def components(self) -> tuple[DefinitionSpec, ...]:
        """One single-fact spec per fact, this spec's own fact first; attribute i of
        every component is the same (conformed) grain attribute."""
        if not self.others:
            return (self,)
        return (replace(self, others=()), *self.others)

    @property
    def connection(self) -> str:
        """The SML connection whose warehouse and aggregate schema receive the table."""
        return self.target_connection or self.fact.connection

    @property
    def connections(self) -> set[str]:
        """Every SML connection the build reads from or writes to."""
        names = {self.connection, self.fact.connection} | {
            j.relation.connection for j in self.joins
        }
        for other in self.others:
            names |= other.connections
        return names

    def to_dict(self) -> dict[str, Any]:
        """The JSON form; fields added after specs were first stored are left out at
        their default, so a stored spec reads and fingerprints the same."""
        return _drop_new_defaults(asdict(self))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    def fingerprint(self) -> str:
        """Stable hash of everything that decides the table's content (not its name, nor
        how the model's SQL is read or where it was written: see `Relation`)."""
        data = self.to_dict()
        data.pop("name")
        for relation in _relation_dicts(data):
            for key in _RELATION_OPTIONAL:
                relation.pop(key, None)
        blob = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:32]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DefinitionSpec:
        inc = data.get("incremental")
        return cls(
            name=data["name"],
            fact_alias=data["fact_alias"],
            fact=_relation(data["fact"]),
            joins=tuple(
                Join(
                    alias=j["alias"],
                    relation=_relation(j["relation"]),
                    left_alias=j["left_alias"],
                    left_columns=tuple(j["left_columns"]),
                    right_columns=tuple(j["right_columns"]),
                    relationship=j.get("relationship", ""),
                )
                for j in data.get("joins", ())
            ),
            attributes=tuple(
                Attribute(
                    name=a["name"],
                    alias=a["alias"],
                    key_columns=tuple(a["key_columns"]),
                    name_column=a.get("name_column"),
                    dimension=a.get("dimension", ""),
                    level=a.get("level", ""),
                    path=tuple(a.get("path", ())),
                )
                for a in data.get("attributes", ())
            ),
            metrics=tuple(Metric(**m) for m in data.get("metrics", ())),
            incremental=Incremental(**inc) if inc else None,
            target_connection=data.get("target_connection"),
            others=tuple(cls.from_dict(o) for o in data.get("others") or ()),
        )

    @classmethod
    def from_json(cls, text: str) -> DefinitionSpec:
        return cls.from_dict(json.loads(text))


_RELATION_OPTIONAL: dict[str, Any] = {"sql_dialect": None, "file": ""}


def _relation_dicts(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Every relation dict of a spec dict, its other facts' included."""
    found = [data["fact"], *(j["relation"] for j in data.get("joins", ()))]
    for other in data.get("others", ()):
        found += _relation_dicts(other)
    return found


def _computed(data: dict[str, Any]) -> ComputedColumn:
    mapped = data.get("map")
    return ComputedColumn(
        sql=data["sql"],
        dialect_sql=dict(data.get("dialect_sql") or {}),
        map=MapValue(**mapped) if mapped else None,
    )


# (path of keys, default) of every field added after the first stored specs
_NEW_FIELDS: tuple[tuple[tuple[str, ...], Any], ...] = (
    (("others",), []),
    (("incremental", "bucket"), None),
    (("incremental", "partition_column"), None),
    (("incremental", "kind"), None),
)


def _drop_new_defaults(data: dict[str, Any]) -> dict[str, Any]:
    for path, default in _NEW_FIELDS:
        holder: Any = data
        for key in path[:-1]:
            holder = holder.get(key) if isinstance(holder, dict) else None
        if isinstance(holder, dict) and holder.get(path[-1], default) == default:
            holder.pop(path[-1], None)
    for other in data.get("others", ()):
        _drop_new_defaults(other)
    for relation in _relation_dicts(data):
        for key, default in _RELATION_OPTIONAL.items():
            if relation.get(key, default) == default:
                relation.pop(key, None)
        for column in relation.get("computed", {}).values():
            if column.get("map") is None:
                column.pop("map", None)
    return data


def _relation(data: dict[str, Any]) -> Relation:
    return Relation(
        dataset=data["dataset"],
        connection=data["connection"],
        table=data.get("table"),
        sql=data.get("sql"),
        dialect_sql=dict(data.get("dialect_sql") or {}),
        database=data.get("database"),
        schema=data.get("schema"),
        columns=tuple(data.get("columns") or ()),
        computed={k: _computed(v) for k, v in (data.get("computed") or {}).items()},
        sql_dialect=data.get("sql_dialect"),
        file=data.get("file", ""),
    )
