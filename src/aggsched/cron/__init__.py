"""Quartz cron expressions: parse, validate, next fire times, plain-English description.

Schedules (``time_expression``) are Quartz 2.3 cron expressions and existing AtScale users
expect them to fire exactly when Quartz would, so this package matches the real Quartz
2.3.2 (checked against it with golden vectors in ``tests/cron/data``), quirks included:
day-of-week 1-7 is SUN-SAT, ``L``/``W``/``#`` rules, wrap-around ranges, DST gaps skipped
(the hour moves forward) and a repeated hour firing once, at the standard-time occurrence.

Pure: no I/O (zone rules come from ``zoneinfo``).

    >>> from datetime import datetime, UTC
    >>> cron = CronExpression.parse("0 25 06 ? * *")
    >>> cron.next_after(datetime(2026, 11, 29, 19, 0, tzinfo=UTC))
    datetime.datetime(2026, 11, 30, 6, 25, tzinfo=datetime.timezone.utc)
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cache, lru_cache
from zoneinfo import ZoneInfoNotFoundError, available_timezones

from aggsched.cron._describe import describe_fields
from aggsched.cron._engine import Evaluator, Zone, utc_seconds
from aggsched.cron._parse import CronError, CronSyntaxError, ParsedFields, parse_fields, shown

__all__ = [
    "CronError",
    "CronExpression",
    "CronSyntaxError",
    "CronTimeZoneError",
    "check_time_zone",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class CronTimeZoneError(CronError):
    """The time zone is not a known IANA zone name."""


def default_max_year(now: datetime | None = None) -> int:
    """Quartz's ``MAX_YEAR``: the current year plus 100 (computed when Quartz loads)."""
    return (now or datetime.now(UTC)).year + 100


@cache
def _iana_names() -> frozenset[str]:
    return frozenset(available_timezones())


def check_time_zone(name: str) -> str:
    """``name`` when it is an IANA zone name, else ``CronTimeZoneError``: the one check of
    a zone, wherever it comes from (API body or query, CLI). The list, not ``ZoneInfo``,
    decides: ``ZoneInfo`` also opens paths, so ``America`` (a directory) or a 10,000
    character name fail with ``OSError`` instead of saying what is wrong."""
    if name not in _iana_names():
        raise CronTimeZoneError(
            f"unknown time zone '{shown(name, 64)}' (expected an IANA name such as 'UTC' "
            "or 'Europe/Paris')"
        )
    return name


@lru_cache(maxsize=512)
def _zone(key: str) -> Zone:
    """One ``Zone`` per name: ``ZoneInfo`` lookups are cached, and so is our wrapper."""
    check_time_zone(key)
    try:
        return Zone(key)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise CronTimeZoneError(f"time zone '{key}' cannot be loaded ({exc})") from exc


class CronExpression:
    """A parsed Quartz cron expression bound to an IANA time zone. Immutable."""

    __slots__ = ("_eval", "_fields", "max_year", "text", "time_zone")

    text: str
    time_zone: str
    max_year: int

    def __init__(self, text: str, time_zone: str, fields: ParsedFields, max_year: int) -> None:
        """Use ``CronExpression.parse``; this only assembles already-validated parts."""
        zone = _zone(time_zone)
        object.__setattr__(self, "text", text)
        object.__setattr__(self, "time_zone", time_zone)
        object.__setattr__(self, "max_year", max_year)
        object.__setattr__(self, "_fields", fields)
        object.__setattr__(self, "_eval", Evaluator(fields, zone, max_year))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("CronExpression is immutable")

    @classmethod
    def parse(
        cls, text: str, time_zone: str = "UTC", *, max_year: int | None = None
    ) -> CronExpression:
        """Parse ``text`` as Quartz would; evaluate it in ``time_zone``.

        Raises ``CronSyntaxError`` (message and position) for text Quartz rejects, and
        ``CronTimeZoneError`` for an unknown zone. ``max_year`` defaults to Quartz's rule
        (this year + 100); pass it to pin behaviour, e.g. in tests.
        """
        if not isinstance(text, str):
            raise TypeError(f"cron expression must be a str, not {type(text).__name__}")
        _zone(time_zone)  # fail on the zone before spending time on the text
        limit = default_max_year() if max_year is None else max_year
        return cls(text, time_zone, parse_fields(text, limit), limit)

    def __repr__(self) -> str:
        return f"CronExpression({self.text!r}, time_zone={self.time_zone!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CronExpression):
            return NotImplemented
        return (self.text, self.time_zone, self.max_year) == (
            other.text,
            other.time_zone,
            other.max_year,
        )

    def __hash__(self) -> int:
        return hash((self.text, self.time_zone, self.max_year))

    def next_after(self, instant: datetime) -> datetime | None:
        """The first fire time strictly after ``instant`` (aware), in UTC; None once the
        schedule has ended (past its last year)."""
        found = self._eval.time_after(utc_seconds(_require_aware(instant)))
        return None if found is None else _EPOCH + timedelta(seconds=found)

    def next_n(self, instant: datetime, n: int) -> list[datetime]:
        """Up to ``n`` consecutive fire times after ``instant`` (fewer if the schedule ends)."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        current = utc_seconds(_require_aware(instant))
        out: list[datetime] = []
        time_after = self._eval.time_after
        for _ in range(n):
            found = time_after(current)
            if found is None:
                break
            out.append(_EPOCH + timedelta(seconds=found))
            current = found
        return out

    def is_satisfied_by(self, instant: datetime) -> bool:
        """Whether the schedule fires at ``instant`` (to the second), as Quartz decides it:
        the next fire time after the previous second is this second."""
        second = utc_seconds(_require_aware(instant))
        return self._eval.time_after(second - 1) == second

    def describe(self) -> str:
        """Plain English, e.g. "At 06:25:00, every day"."""
        return describe_fields(self._fields, self.time_zone, self.max_year)


def _require_aware(instant: datetime) -> datetime:
    if not isinstance(instant, datetime):
        raise TypeError(f"expected a datetime, not {type(instant).__name__}")
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(
            f"naive datetime {instant.isoformat()} is ambiguous: pass a timezone-aware "
            "datetime (e.g. with tzinfo=datetime.UTC)"
        )
    return instant
