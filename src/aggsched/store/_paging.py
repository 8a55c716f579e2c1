"""Limit/offset paging with a total count, shared by every list function."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import Select, func
from sqlalchemy.orm import Session

from aggsched.store.errors import InvalidValueError

T = TypeVar("T")
MAX_LIMIT = 10_000


def check_page(limit: int, offset: int) -> None:
    """Reject paging values the API must answer with 400 rather than a silent clamp."""
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidValueError(f"limit must be between 1 and {MAX_LIMIT}, got {limit}")
    if offset < 0:
        raise InvalidValueError(f"offset must be 0 or more, got {offset}")


def page(
    session: Session, stmt: Select[tuple[T]], order_by: list[Any], limit: int, offset: int
) -> tuple[list[T], int]:
    """Rows ``offset..offset+limit`` of ``stmt`` in ``order_by`` order, plus the total."""
    check_page(limit, offset)
    counting = stmt.with_only_columns(func.count(), maintain_column_froms=True).order_by(None)
    total = session.scalar(counting)
    rows = session.scalars(stmt.order_by(*order_by).limit(limit).offset(offset)).all()
    return list(rows), int(total or 0)
