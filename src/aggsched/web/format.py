"""How the console writes times, durations, numbers and ids (Jinja filters).

The API speaks RFC 3339 UTC strings with AtScale's zero time for "never"; people read
``2026-12-02 14:03:11 UTC`` and "never".
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jinja2 import Environment

ZERO_PREFIX = "0001-01-01"


def parse_time(value: str | datetime | None) -> datetime | None:
    """An API timestamp as an aware datetime; None for the zero time or nothing."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if value.startswith(ZERO_PREFIX):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def when(value: str | datetime | None, zone_name: str = "UTC", never: str = "never") -> str:
    """``2026-12-02 14:03:11 UTC`` (or in ``zone_name``, with its abbreviation)."""
    moment = parse_time(value)
    if moment is None:
        return never
    local = moment.astimezone(zone(zone_name))
    label = "UTC" if zone_name == "UTC" else (local.tzname() or zone_name)
    return f"{local:%Y-%m-%d %H:%M:%S} {label}"


def iso(value: str | datetime | None) -> str:
    """Machine-readable time for ``<time datetime=...>``."""
    moment = parse_time(value)
    return "" if moment is None else moment.astimezone(UTC).isoformat()


def duration(seconds: float | None) -> str:
    """``0.42 s``, ``12 s``, ``3 min 05 s``, ``2 h 07 min``; an em dash when unknown."""
    if seconds is None:
        return "—"
    if seconds < 10:
        return f"{seconds:.2f} s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def span(start: str | datetime | None, end: str | datetime | None) -> float | None:
    """Seconds between two API timestamps, or None when either never happened."""
    first, last = parse_time(start), parse_time(end)
    if first is None or last is None:
        return None
    return max(0.0, (last - first).total_seconds())


def number(value: int | float | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.2f}"
    return f"{int(value):,}"


def short(value: object) -> str:
    """The first 8 characters of an id (enough to tell batches apart on screen)."""
    return str(value)[:8]


def as_uuid(value: object) -> uuid.UUID | None:
    """An id from the API (text) as the store's key type; None when it is not one."""
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except ValueError:
        return None


def install(env: Environment) -> None:
    env.filters.update(
        when=when,
        iso=iso,
        duration=duration,
        number=number,
        short=short,
        span=span,
        uuid=as_uuid,
    )
    env.globals.update(span=span)
