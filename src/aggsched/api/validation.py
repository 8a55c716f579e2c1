"""Input rules every route shares: text within the column limits and free of control
characters, IANA zone names, ISO-8601 date-times.

One place, so a field means the same wherever it arrives (JSON body, query parameter,
path) and a value that passes always fits its column on SQLite and PostgreSQL alike. The
limits themselves live in ``aggsched.store.limits`` next to the columns they protect.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, StringConstraints

from aggsched.cron import check_time_zone
from aggsched.store import limits
from aggsched.store.limits import unsafe_character

__all__ = [
    "IsoDateTime",
    "Name",
    "RequiredName",
    "TimeExpression",
    "Url",
    "ZoneName",
    "text",
    "unsafe_character",
]


def _no_unsafe(value: str) -> str:
    problem = unsafe_character(value)
    if problem:
        raise ValueError(problem)
    return value


def _no_unsafe_but_tab(value: str) -> str:
    problem = unsafe_character(value, allow_tab=True)
    if problem:
        raise ValueError(problem)
    return value


def text(limit: int, *, min_length: int = 0, allow_tab: bool = False) -> Any:
    """A ``str`` of at most ``limit`` characters without control characters (``allow_tab``
    for expressions: a tab separates Quartz fields). The 400 says the field and limit."""
    return Annotated[
        str,
        StringConstraints(min_length=min_length, max_length=limit),
        AfterValidator(_no_unsafe_but_tab if allow_tab else _no_unsafe),
    ]


Name = text(limits.NAME)
RequiredName = text(limits.NAME, min_length=1)
TimeExpression = text(limits.TIME_EXPRESSION, allow_tab=True)
ZoneName = Annotated[text(limits.TIME_ZONE), AfterValidator(check_time_zone)]
Url = text(limits.CONNECTION_URL, min_length=1)

# YYYY-MM-DD, optionally THH:MM[:SS[.ffffff]] and Z or an offset; ASCII digits only
_ISO_DATETIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
    r"(?:[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:[.,][0-9]{1,6})?)?(?:Z|z|[+-][0-9]{2}:?[0-9]{2})?)?"
)


def _iso_only(value: object) -> object:
    """Pydantic also takes numbers (``0.5``: half a second after 1970) as date-times;
    a filter means a calendar time, so only ISO-8601 text is accepted."""
    if not isinstance(value, str) or not _ISO_DATETIME.fullmatch(value):
        raise ValueError("expected an ISO-8601 date-time such as 2024-01-31T00:00:00Z")
    return value


def _as_utc(value: datetime) -> datetime:
    """Aware UTC (a time without offset is UTC); a time that is not representable in UTC
    (``0001-01-01T00:00:00+01:00``) is refused."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError("date-time out of range once converted to UTC") from exc


IsoDateTime = Annotated[datetime, BeforeValidator(_iso_only), AfterValidator(_as_utc)]
