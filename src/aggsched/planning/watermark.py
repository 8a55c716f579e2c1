"""Incremental watermarks: the highest incremental-column value an instance has seen.

Stored as text in the store, tagged with its type so the threshold of the next
incremental build (`watermark - grace`) is computed with the right arithmetic.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

Value = dt.date | dt.datetime | int | float | Decimal


def encode(value: Value) -> str:
    if isinstance(value, dt.datetime):
        return f"timestamp:{value.isoformat()}"
    if isinstance(value, dt.date):
        return f"date:{value.isoformat()}"
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise ValueError(f"an incremental column must be a date, timestamp or number: {value!r}")
    return f"number:{value}"


def decode(text: str) -> Value:
    kind, _, raw = text.partition(":")
    if kind == "timestamp":
        return dt.datetime.fromisoformat(raw)
    if kind == "date":
        return dt.date.fromisoformat(raw)
    if kind == "number":
        return Decimal(raw)
    raise ValueError(f"not a stored watermark: {text!r}")


def threshold(text: str, grace_seconds: int) -> Value:
    """First incremental value to recompute: the watermark minus the grace period.

    Dates move by whole days (rounded up), so a 12 h grace on a date column still
    recomputes the watermark's day and the one before it.
    """
    value = decode(text)
    if isinstance(value, dt.datetime):
        return value - dt.timedelta(seconds=grace_seconds)
    if isinstance(value, dt.date):
        return value - dt.timedelta(days=-(-grace_seconds // 86400))
    return value
