"""What the advisor reads and writes besides the query log: cached size estimates, the
cube's demand-defined definitions, and when the cube last built (estimates older than the
last load are refreshed)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from aggsched.store.models import (
    AggregateDefinition,
    BatchStatus,
    BuildBatch,
    DefinitionSubtype,
    SizeEstimate,
)
from aggsched.store.types import utcnow


def estimates(
    session: Session, cube_id: uuid.UUID, keys: Iterable[str]
) -> dict[str, tuple[float, datetime]]:
    """Cached (rows, when estimated) by key."""
    wanted = list(dict.fromkeys(keys))
    if not wanted:
        return {}
    stmt = select(SizeEstimate).where(SizeEstimate.cube_id == cube_id, SizeEstimate.key.in_(wanted))
    return {e.key: (e.rows, e.estimated_at) for e in session.scalars(stmt)}


def save_estimate(
    session: Session, cube_id: uuid.UUID, key: str, rows: float, now: datetime | None = None
) -> None:
    row = session.get(SizeEstimate, (cube_id, key))
    if row is None:
        row = SizeEstimate(cube_id=cube_id, key=key)
        session.add(row)
    row.rows = rows
    row.estimated_at = now or utcnow()
    session.flush()


def last_load(session: Session, cube_id: uuid.UUID) -> datetime | None:
    """When the cube's last successful build ended: data may have changed since."""
    stmt = select(func.max(BuildBatch.end_time)).where(
        BuildBatch.cube_id == cube_id, BuildBatch.status == BatchStatus.DONE.value
    )
    return session.scalar(stmt)


def demand_definitions(session: Session, cube_id: uuid.UUID) -> list[AggregateDefinition]:
    """The cube's live demand-defined definitions (the advisor's own)."""
    stmt = select(AggregateDefinition).where(
        AggregateDefinition.cube_id == cube_id,
        AggregateDefinition.subtype == DefinitionSubtype.DEMAND_DEFINED.value,
        AggregateDefinition.removed_at.is_(None),
    )
    return list(session.scalars(stmt.order_by(AggregateDefinition.unique_name)))
