"""The query log: every semantic query, what answered it, and the hits it gave aggregates.

Writes are one small transaction per query; reads are paged and indexed by organization
or cube and time. Instance hit counts and definitions' query utilization are computed
from the hits table (indexed by instance and definition).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from aggsched.store.models import (
    AggregateDefinition,
    AggregateInstance,
    Cube,
    InstanceStatus,
    QueryHit,
    QueryLog,
)
from aggsched.store.types import utcnow

SERVED_BY = ("base", "aggregate", "mixed", "error")


@dataclass(frozen=True)
class Hit:
    instance_id: uuid.UUID
    definition_id: uuid.UUID


def record_query(
    session: Session,
    cube: Cube,
    *,
    username: str,
    metrics: Sequence[str],
    attributes: Sequence[str],
    filter_attributes: Sequence[str],
    grain: list[dict[str, Any]],
    grain_key: str,
    served_by: str,
    duration_ms: float,
    planning_ms: float,
    rows: int,
    error: str | None = None,
    sql: str | None = None,
    hits: Iterable[Hit] = (),
    now: datetime | None = None,
) -> uuid.UUID:
    """Log one query (and the aggregate instances that answered it)."""
    when = now or utcnow()
    query_id = uuid.uuid4()
    session.execute(
        insert(QueryLog).values(
            id=query_id,
            org_id=cube.org_id,
            project_id=cube.project_id,
            cube_id=cube.id,
            username=username[:255],
            created_at=when,
            metrics={"names": list(metrics)},
            attributes={"names": list(attributes)},
            filter_attributes={"names": list(filter_attributes)},
            grain={"parts": grain},
            grain_key=grain_key,
            served_by=served_by,
            duration_ms=duration_ms,
            planning_ms=planning_ms,
            rows=rows,
            error=error,
            sql=sql,
        )
    )
    found = list(dict.fromkeys(hits))
    if found:
        session.execute(
            insert(QueryHit),
            [
                {
                    "query_id": query_id,
                    "instance_id": h.instance_id,
                    "definition_id": h.definition_id,
                    "created_at": when,
                }
                for h in found
            ],
        )
    return query_id


def list_queries(
    session: Session,
    org_id: str,
    *,
    cube_id: uuid.UUID | None = None,
    username: str | None = None,
    served_by: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[QueryLog], int]:
    """The organization's queries, newest first, with the filters given; and the total."""
    stmt = select(QueryLog).where(QueryLog.org_id == org_id)
    for column, value in (
        (QueryLog.cube_id, cube_id), (QueryLog.username, username),
        (QueryLog.served_by, served_by),
    ):  # fmt: skip
        if value is not None:
            stmt = stmt.where(column == value)
    if since is not None:
        stmt = stmt.where(QueryLog.created_at >= since)
    if until is not None:
        stmt = stmt.where(QueryLog.created_at < until)
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    page = stmt.order_by(QueryLog.created_at.desc(), QueryLog.id.desc()).limit(limit)
    return list(session.scalars(page.offset(offset))), total


def cube_queries(
    session: Session, cube_id: uuid.UUID, since: datetime, *, limit: int | None = None
) -> list[QueryLog]:
    """A cube's successful queries since `since`, oldest first (the advisor's input)."""
    stmt = (
        select(QueryLog)
        .where(QueryLog.cube_id == cube_id, QueryLog.created_at >= since)
        .where(QueryLog.error.is_(None))
        .order_by(QueryLog.created_at)
    )
    if limit is not None:
        stmt = stmt.limit(limit)
    return list(session.scalars(stmt))


@dataclass(frozen=True)
class HitStats:
    hits: int
    last_hit: datetime | None


def instance_hits(session: Session, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, HitStats]:
    """Hit count and last hit of each instance (one query)."""
    return _hits(session, QueryHit.instance_id, ids)


def definition_hits(session: Session, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, HitStats]:
    """How many logged queries each definition answered (AtScale's query utilization)."""
    return _hits(session, QueryHit.definition_id, ids)


def _hits(
    session: Session, column: InstrumentedAttribute[uuid.UUID], ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, HitStats]:
    wanted = list(ids)
    if not wanted:
        return {}
    stmt = (
        select(column, func.count(), func.max(QueryHit.created_at))
        .where(column.in_(wanted))
        .group_by(column)
    )
    return {row[0]: HitStats(row[1], row[2]) for row in session.execute(stmt)}


def count_older(session: Session, org_id: str, before: datetime) -> int:
    stmt = select(func.count()).where(QueryLog.org_id == org_id, QueryLog.created_at < before)
    return int(session.scalar(stmt) or 0)


def prune_queries(
    session: Session,
    older_than: timedelta,
    now: datetime | None = None,
    *,
    org_id: str | None = None,
) -> int:
    """Delete log rows (and their hits) older than the retention; returns how many."""
    cutoff = (now or utcnow()) - older_than
    old = QueryLog.created_at < cutoff
    if org_id is not None:
        old = old & (QueryLog.org_id == org_id)
    doomed = select(QueryLog.id).where(old)
    session.execute(delete(QueryHit).where(QueryHit.query_id.in_(doomed)))
    result = session.execute(delete(QueryLog).where(old))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


# --- what a query may read ------------------------------------------------------------


@dataclass(frozen=True)
class ActiveRow:
    """An active instance of a buildable definition, as navigation needs it."""

    instance_id: uuid.UUID
    definition_id: uuid.UUID
    definition: str
    fingerprint: str
    connection_id: str
    schema: str
    table: str
    rows: int


def active_for_queries(session: Session, cube_id: uuid.UUID) -> list[ActiveRow]:
    """The cube's active instances of live, valid definitions (one indexed query, no ORM
    objects: it runs for every query)."""
    inst, d = AggregateInstance, AggregateDefinition
    stmt = (
        select(
            inst.id,
            d.id,
            d.unique_name,
            d.fingerprint,
            d.connection_id,
            inst.table_schema,
            inst.table_name,
            inst.number_of_rows,
        )
        .join(d, d.id == inst.definition_id)
        .where(inst.cube_id == cube_id, inst.status == InstanceStatus.ACTIVE.value)
        .where(d.removed_at.is_(None), d.invalid_reason.is_(None))
        .where(inst.table_name.is_not(None), inst.table_schema.is_not(None))
    )
    return [
        ActiveRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7] or 0)
        for r in session.execute(stmt)
    ]


def definition_specs(session: Session, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, dict[str, Any]]:
    """The stored specs of some definitions (read only when not cached)."""
    wanted = list(ids)
    if not wanted:
        return {}
    stmt = select(AggregateDefinition.id, AggregateDefinition.spec).where(
        AggregateDefinition.id.in_(wanted)
    )
    return {row[0]: row[1] for row in session.execute(stmt)}
