"""Read-only queries behind the REST API's aggregate lists (filters, derived status).

AtScale filters aggregate definitions by a status that is not stored but derived from
their instances; deriving it in SQL (one CASE expression) keeps filtering and paging in
the database instead of loading every definition of an organization.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    case,
    exists,
    func,
    literal_column,
    select,
    tuple_,
)
from sqlalchemy.orm import Session

from aggsched.store._paging import check_page, page
from aggsched.store.errors import InvalidValueError
from aggsched.store.models import (
    AggregateDefinition,
    AggregateInstance,
    BuildBatch,
    InstanceStatus,
)

DEFINITION_STATUSES = ("active", "pending", "invalid")


def _has_instance(*statuses: InstanceStatus) -> ColumnElement[bool]:
    return exists().where(
        AggregateInstance.definition_id == AggregateDefinition.id,
        AggregateInstance.status.in_([s.value for s in statuses]),
    )


def definition_status_expr() -> ColumnElement[str]:
    """``invalid`` when removed, not buildable as written (``invalid_reason``) or with
    only invalid instances, ``active`` with an active
    instance, else ``pending`` (waiting for a first or next build)."""
    return case(
        (AggregateDefinition.removed_at.is_not(None), "invalid"),
        (AggregateDefinition.invalid_reason.is_not(None), "invalid"),
        (_has_instance(InstanceStatus.ACTIVE), "active"),
        (_has_instance(InstanceStatus.PENDING, InstanceStatus.INPROGRESS), "pending"),
        (_has_instance(InstanceStatus.INVALID), "invalid"),
        else_="pending",
    )


def list_definitions(
    session: Session,
    org_id: str,
    *,
    definition_id: uuid.UUID | None = None,
    project_id: uuid.UUID | None = None,
    cube_id: uuid.UUID | None = None,
    status: str | None = None,
    subtype: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[AggregateDefinition], int]:
    """One page of the org's definitions (removed ones included), oldest first."""
    model = AggregateDefinition
    stmt = select(model).where(model.org_id == org_id)
    if status is not None:
        if status not in DEFINITION_STATUSES:
            raise InvalidValueError(
                f"status {status!r} is not one of: {', '.join(DEFINITION_STATUSES)}"
            )
        stmt = stmt.where(definition_status_expr() == status)
    for column, value in (
        (model.id, definition_id), (model.project_id, project_id),
        (model.cube_id, cube_id), (model.subtype, subtype),
    ):  # fmt: skip
        if value is not None:
            stmt = stmt.where(column == value)
    return page(session, stmt, [model.created_at, model.id], limit, offset)


def definition_statuses(session: Session, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, str]:
    """The derived status of each definition."""
    wanted = list(ids)
    if not wanted:
        return {}
    stmt = select(AggregateDefinition.id, definition_status_expr()).where(
        AggregateDefinition.id.in_(wanted)
    )
    return {row[0]: str(row[1]) for row in session.execute(stmt)}


def latest_instances(
    session: Session, ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, AggregateInstance]:
    """The newest instance of each definition (by creation time)."""
    wanted = list(ids)
    if not wanted:
        return {}
    stmt = (
        select(AggregateInstance)
        .where(AggregateInstance.definition_id.in_(wanted))
        .order_by(AggregateInstance.created_at, AggregateInstance.id)
    )
    return {instance.definition_id: instance for instance in session.scalars(stmt)}


def instance_counts(session: Session, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, int]:
    wanted = list(ids)
    if not wanted:
        return {}
    stmt = (
        select(AggregateInstance.definition_id, func.count())
        .where(AggregateInstance.definition_id.in_(wanted))
        .group_by(AggregateInstance.definition_id)
    )
    return {row[0]: int(row[1]) for row in session.execute(stmt)}


def list_instances(
    session: Session,
    org_id: str,
    *,
    definition_id: uuid.UUID | None = None,
    project_id: uuid.UUID | None = None,
    cube_id: uuid.UUID | None = None,
    status: str | None = None,
    batch_id: uuid.UUID | None = None,
    table_name: str | None = None,
    start_time: datetime | None = None,
    end_time: datetime | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[AggregateInstance], int]:
    """One page of instances, newest first. ``start_time``/``end_time`` bound the
    materialization window: started at or after ``start_time``, ended at or before
    ``end_time``."""
    model = AggregateInstance
    stmt = select(model).where(model.org_id == org_id)
    if status is not None:
        allowed = [s.value for s in InstanceStatus]
        if status not in allowed:
            raise InvalidValueError(f"status {status!r} is not one of: {', '.join(allowed)}")
        stmt = stmt.where(model.status == status)
    if project_id is not None:
        stmt = stmt.join(AggregateDefinition, AggregateDefinition.id == model.definition_id)
        stmt = stmt.where(AggregateDefinition.project_id == project_id)
    for column, value in (
        (model.definition_id, definition_id), (model.cube_id, cube_id),
        (model.batch_id, batch_id), (model.table_name, table_name),
    ):  # fmt: skip
        if value is not None:
            stmt = stmt.where(column == value)
    if start_time is not None:
        stmt = stmt.where(model.materialization_start_time >= start_time)
    if end_time is not None:
        stmt = stmt.where(model.materialization_end_time <= end_time)
    return page(session, stmt, [model.created_at.desc(), model.id.desc()], limit, offset)


def batch_history_stmt(
    org_id: str,
    *,
    project_id: uuid.UUID | None = None,
    cube_id: uuid.UUID | None = None,
    status: str | None = None,
    batch_type: str | None = None,
) -> Select[tuple[BuildBatch]]:
    """The organization's batches matching the filters (unordered, unpaged)."""
    stmt = select(BuildBatch).where(BuildBatch.org_id == org_id)
    for column, value in (
        (BuildBatch.project_id, project_id), (BuildBatch.cube_id, cube_id),
        (BuildBatch.status, status), (BuildBatch.batch_type, batch_type),
    ):  # fmt: skip
        if value is not None:
            stmt = stmt.where(column == value)
    return stmt


_HISTORY_ORDER = (BuildBatch.create_date.desc(), BuildBatch.id.desc())
HistoryKey = tuple[datetime, uuid.UUID]  # (create_date, id): a row's place in the history


def batch_history_page(
    session: Session,
    stmt: Select[tuple[BuildBatch]],
    limit: int,
    offset: int,
    *,
    start: HistoryKey | None = None,
) -> list[BuildBatch]:
    """One page of ``stmt``, newest first (served by the history indexes).

    With ``start``, the page is counted from the row at ``start`` (included) instead of
    from the newest: a keyset seek, so a deep page walks ``offset`` rows past ``start``,
    not past everything newer (see ``history_bookmarks``)."""
    check_page(limit, offset)
    if start is not None:
        stmt = stmt.where(tuple_(BuildBatch.create_date, BuildBatch.id) <= tuple_(*start))
    return list(session.scalars(stmt.order_by(*_HISTORY_ORDER).limit(limit).offset(offset)))


def history_bookmarks(
    session: Session, stmt: Select[tuple[BuildBatch]], before: datetime, every: int
) -> list[HistoryKey]:
    """The place of every ``every``-th row (0, every, 2 * every, ...) among the rows of
    ``stmt`` created before ``before``, newest first: where deep pages start seeking.

    One pass over the history index in the database (a window function), meant to run in
    the background now and then, not per request."""
    ranked = (
        stmt.where(BuildBatch.create_date < before)
        .with_only_columns(
            BuildBatch.create_date,
            BuildBatch.id,
            func.row_number().over(order_by=_HISTORY_ORDER).label("n"),
        )
        .subquery()
    )
    picked = select(ranked.c.create_date, ranked.c.id).where((ranked.c.n - 1) % every == 0)
    keys = [(row[0], row[1]) for row in session.execute(picked.order_by(ranked.c.n))]
    return keys


def count_since(session: Session, stmt: Select[tuple[BuildBatch]], since: datetime) -> int:
    """Rows of ``stmt`` created at or after ``since`` (the recent head of a history)."""
    recent = stmt.where(BuildBatch.create_date >= since)
    return count_rows(session, recent)


def count_rows(session: Session, stmt: Select[Any], cap: int | None = None) -> int:
    """Rows of ``stmt``; with ``cap``, stops counting after ``cap + 1`` (cheap check
    of whether an exact count is small)."""
    inner = stmt.with_only_columns(literal_column("1"), maintain_column_froms=True)
    if cap is not None:
        inner = inner.limit(cap + 1)
    return int(session.scalar(select(func.count()).select_from(inner.subquery())) or 0)
