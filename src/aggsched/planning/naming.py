"""Names of aggregate tables and of their columns.

Table names follow AtScale's pattern so operators recognise them:
``as_agg_<first 8 hex of the instance id>_<first 14 chars of the sanitized name>``.
Columns are meant to be read by people and query engines: ``<attribute>__key`` and
``<attribute>__name`` for each grain attribute, ``<metric>__<partial>`` for each stored
partial (``m_revenue_sum__sum``, ``m_price_avg__count``), ``inc__<column>`` for the
incremental partition.
"""

from __future__ import annotations

import hashlib
import re
import uuid

from aggsched.planning.spec import Attribute, DefinitionSpec, Incremental

TABLE_PREFIX = "as_agg_"
_NON_WORD = re.compile(r"[^a-z0-9]+")


def sanitize(name: str) -> str:
    """Lower-case ASCII letters, digits and single underscores; never empty."""
    cleaned = _NON_WORD.sub("_", name.lower()).strip("_")
    return cleaned or "x"


def table_name(instance_id: uuid.UUID | str, definition_name: str) -> str:
    hex8 = uuid.UUID(str(instance_id)).hex[:8]
    return f"{TABLE_PREFIX}{hex8}_{sanitize(definition_name)[:14].rstrip('_')}"


def metric_column(metric_name: str, partial: str) -> str:
    return f"{sanitize(metric_name)}__{partial}"


def incremental_column(column: str) -> str:
    return f"inc__{sanitize(column)}"


def partition_column(incremental: Incremental) -> str:
    """The aggregate column holding the incremental partition: the SML `agg_partition`
    column, the bucket of the incremental column, or the column itself."""
    if incremental.partition_column:
        return incremental_column(incremental.partition_column)
    if incremental.bucket:
        return f"{incremental_column(incremental.column)}__{sanitize(incremental.bucket)}"
    return incremental_column(incremental.column)


def presence_column(fact_dataset: str) -> str:
    """A multi-fact aggregate's per-fact row count: NULL where that fact has no rows, so
    a slice read alone yields exactly that fact's groups."""
    return f"rows__{sanitize(fact_dataset)}"


def _attribute_stem(attr: Attribute, clashes: bool) -> str:
    stem = sanitize(attr.name)
    if clashes:
        digest = hashlib.sha1(repr(attr.identity).encode()).hexdigest()[:6]
        stem = f"{stem}_{digest}"
    return stem


def attribute_columns(spec: DefinitionSpec) -> dict[tuple, tuple[list[str], str | None]]:
    """Attribute identity -> (key column names, name column name or None).

    Two attributes whose sanitized names collide both get a short hash of their identity,
    so the same attribute is named alike in every aggregate it appears in only when it
    does not collide; callers that join two aggregates look names up here, never guess.
    Each further component of a multi-fact spec names attribute i as the first one does.
    """
    if spec.others:
        first = _attribute_columns(spec.components()[0])
        names = [first[a.identity] for a in spec.attributes]
        result = dict(first)
        for part in spec.others:
            result.update({a.identity: names[i] for i, a in enumerate(part.attributes)})
        return result
    return _attribute_columns(spec)


def grain_columns(spec: DefinitionSpec) -> list[tuple[list[str], str | None]]:
    """(key columns, name column) of each grain attribute, in attribute order."""
    names = attribute_columns(spec)
    return [names[a.identity] for a in spec.attributes]


def _attribute_columns(spec: DefinitionSpec) -> dict[tuple, tuple[list[str], str | None]]:
    stems: dict[str, int] = {}
    for attr in spec.attributes:
        stems[sanitize(attr.name)] = stems.get(sanitize(attr.name), 0) + 1
    result: dict[tuple, tuple[list[str], str | None]] = {}
    for attr in spec.attributes:
        stem = _attribute_stem(attr, stems[sanitize(attr.name)] > 1)
        if len(attr.key_columns) == 1:
            keys = [f"{stem}__key"]
        else:
            keys = [f"{stem}__key{i}" for i in range(1, len(attr.key_columns) + 1)]
        has_name = attr.name_column is not None and attr.key_columns != (attr.name_column,)
        result[attr.identity] = (keys, f"{stem}__name" if has_name else None)
    return result
