"""Incremental watermarks: the highest incremental-column value an instance has seen.

Stored as text in the store, tagged with its type so the threshold of the next
incremental build (`watermark - grace`) is computed with the right arithmetic.
"""

from __future__ import annotations

import datetime as dt
import math
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


def bucket_start(value: Value, bucket: str | None) -> Value:
    """The first value of the partition bucket `value` falls in (see `Incremental`):
    rows from there on make up whole partitions, so rebuilding them is exact."""
    if bucket is None:
        return value
    if bucket.isdigit():
        width = int(bucket)
        if isinstance(value, dt.date):
            raise ValueError(f"a numeric partition_bucket ({bucket}) on a date column")
        return Decimal(math.floor(Decimal(value) / width) * width)
    if not isinstance(value, dt.date):
        raise ValueError(f"partition_bucket {bucket} needs a date or timestamp column")
    is_datetime = isinstance(value, dt.datetime)
    day = value.date() if is_datetime else value
    if bucket == "week":
        day -= dt.timedelta(days=day.weekday())
    elif bucket == "month":
        day = day.replace(day=1)
    elif bucket == "quarter":
        day = day.replace(month=(day.month - 1) // 3 * 3 + 1, day=1)
    elif bucket == "year":
        day = day.replace(month=1, day=1)
    elif bucket != "day":
        raise ValueError(f"unknown partition_bucket {bucket!r}")
    if is_datetime:
        return dt.datetime.combine(day, dt.time(), tzinfo=value.tzinfo)  # type: ignore[union-attr]
    return day
