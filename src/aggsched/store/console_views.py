"""Read-only queries behind the web console's lists and charts.

The console reads most things through the REST API; these are the views the API has no
endpoint for: the build history filtered by what triggered a batch (a schedule or a
person), the builds and queries its charts count, and which aggregates answered each
logged query. Counting happens here, in SQL, so a chart never loads a whole log.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import Select, case, func, select
from sqlalchemy.orm import Session

from aggsched.planning.plan import BatchType
from aggsched.store.api_views import batch_history_page, batch_history_stmt, count_rows
from aggsched.store.models import (
    AggregateDefinition,
    BatchStatus,
    BuildBatch,
    Cube,
    Project,
    QueryHit,
    QueryLog,
)

Trigger = Literal["schedule", "manual"]
TRIGGERS: tuple[Trigger, ...] = ("schedule", "manual")
BUILD_TYPES = tuple(t.value for t in BatchType if t.is_build)


def history_stmt(
    org_id: str,
    *,
    cube_id: uuid.UUID | None = None,
    status: str | None = None,
    batch_type: str | None = None,
    trigger: Trigger | None = None,
    since: datetime | None = None,
) -> Select[tuple[BuildBatch]]:
    """The API's history filters plus the trigger: ``schedule`` for batches a schedule
    fired (they carry its job id), ``manual`` for the rest (API, CLI, publish)."""
    stmt = batch_history_stmt(org_id, cube_id=cube_id, status=status, batch_type=batch_type)
    if trigger == "schedule":
        stmt = stmt.where(BuildBatch.job_id.is_not(None))
    elif trigger == "manual":
        stmt = stmt.where(BuildBatch.job_id.is_(None))
    if since is not None:
        stmt = stmt.where(BuildBatch.create_date >= since)
    return stmt


def history_page(
    session: Session, stmt: Select[tuple[BuildBatch]], *, limit: int, offset: int
) -> tuple[list[BuildBatch], int]:
    """One page of ``stmt`` newest first, and how many rows match."""
    return batch_history_page(session, stmt, limit, offset), count_rows(session, stmt)


@dataclass(frozen=True)
class CubeName:
    project_id: uuid.UUID
    project: str
    cube: str


def cube_names(session: Session, org_id: str) -> dict[uuid.UUID, CubeName]:
    """Every live cube of the organization with its project, for labels and filters."""
    stmt = (
        select(Cube.id, Cube.project_id, Project.name, Cube.name)
        .join(Project, Project.id == Cube.project_id)
        .where(Cube.org_id == org_id, Cube.deleted_at.is_(None))
        .order_by(Project.name, Cube.name)
    )
    return {row[0]: CubeName(row[1], row[2], row[3]) for row in session.execute(stmt)}


@dataclass(frozen=True)
class FinishedBuild:
    batch_id: uuid.UUID
    cube_id: uuid.UUID
    batch_type: str
    start_time: datetime
    end_time: datetime


def finished_builds(
    session: Session, org_id: str, since: datetime, *, limit: int = 2000
) -> list[FinishedBuild]:
    """Build batches that ended ``done`` and started since ``since``, oldest first (the
    newest ``limit`` of them)."""
    b = BuildBatch
    stmt = (
        select(b.id, b.cube_id, b.batch_type, b.start_time, b.end_time)
        .where(
            b.org_id == org_id,
            b.status == BatchStatus.DONE.value,
            b.create_date >= since,
            b.batch_type.in_(BUILD_TYPES),
            b.start_time.is_not(None),
            b.end_time.is_not(None),
            b.cube_id.is_not(None),
        )
        .order_by(b.create_date.desc(), b.id.desc())
        .limit(limit)
    )
    rows = [FinishedBuild(*row) for row in session.execute(stmt)]
    return rows[::-1]


def queries_per_bucket(
    session: Session, org_id: str, bounds: Sequence[datetime]
) -> dict[tuple[int, str], int]:
    """Logged queries per (bucket, served_by) where bucket ``i`` is ``[bounds[i],
    bounds[i+1])``. The buckets are a CASE over the boundaries the caller computed, so
    days are cut in the caller's time zone whatever the database's is."""
    if len(bounds) < 2:
        return {}
    created = QueryLog.created_at
    bucket = case(
        *[(created < bound, index) for index, bound in enumerate(bounds[1:])], else_=-1
    ).label("bucket")
    stmt = (
        select(bucket, QueryLog.served_by, func.count())
        .where(QueryLog.org_id == org_id, created >= bounds[0], created < bounds[-1])
        .group_by(bucket, QueryLog.served_by)
    )
    return {(int(row[0]), str(row[1])): int(row[2]) for row in session.execute(stmt)}


def query_hit_names(session: Session, query_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, list[str]]:
    """The unique names of the aggregate definitions that answered each logged query (as
    the query API's ``served_by`` names them)."""
    wanted = list(query_ids)
    if not wanted:
        return {}
    stmt = (
        select(QueryHit.query_id, AggregateDefinition.unique_name)
        .join(AggregateDefinition, AggregateDefinition.id == QueryHit.definition_id)
        .where(QueryHit.query_id.in_(wanted))
        .order_by(AggregateDefinition.unique_name)
    )
    found: dict[uuid.UUID, list[str]] = {}
    for query_id, name in session.execute(stmt):
        found.setdefault(query_id, []).append(name)
    return found


def cube_query_spec(session: Session, org_id: str, cube_id: uuid.UUID) -> str | None:
    """The cube's stored query model as JSON (what a query may name), or None."""
    cube = session.get(Cube, cube_id)
    if cube is None or cube.org_id != org_id or cube.deleted_at is not None:
        return None
    return cube.query_spec
