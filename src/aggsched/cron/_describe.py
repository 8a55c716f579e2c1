"""Plain-English descriptions of parsed Quartz expressions ("At 06:25:00, every day").

Shown in the console, the CLI (``aggsched cron check``) and API errors so people can see
what a schedule means without decoding cron fields. Works from the parsed value sets, so
equivalent spellings (``MON-FRI`` and ``2-6``) read the same. Pure.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import pairwise

from aggsched.cron._parse import ALL_SPEC, NO_SPEC, ParsedFields

_DAY_NAMES = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
_MONTH_NAMES = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_ORDINAL_WORDS = {1: "first", 2: "second", 3: "third", 4: "fourth", 5: "fifth"}
_UTC_NAMES = {"UTC", "Etc/UTC", "GMT", "Etc/GMT", "Zulu", "Etc/Zulu", "Universal"}


def ordinal(n: int) -> str:
    """2 -> '2nd', 11 -> '11th', 23 -> '23rd'."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _join(items: Sequence[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _clean(values: tuple[int, ...]) -> list[int]:
    return [v for v in values if v not in (ALL_SPEC, NO_SPEC)]


def _phrase(
    values: list[int], unit: str, lo: int, hi: int, name: Callable[[int], str] = str
) -> str:
    """'every minute', 'minute 5', 'minutes 5 through 10', 'every 15th minute',
    'every 2nd minute from 1 through 59' or 'minutes 1, 7 and 9'."""
    if values == list(range(lo, hi + 1)):
        return f"every {unit}"
    if len(values) == 1:
        return f"{unit} {name(values[0])}"
    steps = {b - a for a, b in pairwise(values)}
    if len(steps) == 1:
        step = steps.pop()
        if step == 1:
            return f"{unit}s {name(values[0])} through {name(values[-1])}"
        if len(values) >= 3:
            every = f"every {ordinal(step)} {unit}"
            if values[0] == lo and values[-1] + step > hi:
                return every
            return f"{every} from {name(values[0])} through {name(values[-1])}"
    return f"{unit}s " + _join([name(v) for v in values])


def _time_part(f: ParsedFields) -> str:
    secs, mins, hours = _clean(f.seconds), _clean(f.minutes), _clean(f.hours)
    every_hour = hours == list(range(24))
    if len(secs) == len(mins) == 1:
        if len(hours) == 1:
            return f"At {hours[0]:02d}:{mins[0]:02d}:{secs[0]:02d}"
        clock = f"At {mins[0]:02d}:{secs[0]:02d} past "
        if every_hour:
            return clock + "every hour"
        return clock + _phrase(hours, "hour", 0, 23)
    sec_phrase = _phrase(secs, "second", 0, 59)
    text = sec_phrase.capitalize() if sec_phrase.startswith("every") else f"At {sec_phrase}"
    if mins != list(range(60)) or not sec_phrase.startswith("every"):
        text += " of " + _phrase(mins, "minute", 0, 59)
    if not every_hour:
        text += ", " + _phrase(hours, "hour", 0, 23)
    return text


def _day_name(v: int) -> str:
    return _DAY_NAMES[v - 1] if 1 <= v <= 7 else f"day-of-week {v}"


def _day_of_month_part(f: ParsedFields) -> str:
    days = _clean(f.days_of_month)
    if f.last_day_of_month:
        base = "the last day of the month"
        if f.last_day_offset:
            base = f"{f.last_day_offset} days before the last day of the month"
        if f.nearest_weekday:
            if not f.last_day_offset:
                return "on the last weekday of the month"
            return f"on the weekday nearest {base}"
        return base if f.last_day_offset else f"on {base}"
    if f.nearest_weekday:
        return f"on the weekday nearest day {days[0]} of the month"
    if days == list(range(1, 32)):
        return "every day"
    phrase = _phrase(days, "day", 1, 31) + " of the month"
    return phrase if phrase.startswith("every") else f"on {phrase}"


def _day_of_week_part(f: ParsedFields) -> str:
    days = _clean(f.days_of_week)
    if f.last_day_of_week:
        return f"on the last {_day_name(days[0])} of the month"
    if f.nth_day_of_week:
        return f"on the {_ORDINAL_WORDS[f.nth_day_of_week]} {_day_name(days[0])} of the month"
    if days == list(range(1, 8)):
        return "every day"
    if len(days) > 2 and days == list(range(days[0], days[-1] + 1)):
        return f"{_day_name(days[0])} through {_day_name(days[-1])}"
    return "on " + _join([_day_name(d) for d in days])


def _month_part(f: ParsedFields) -> str | None:
    months = _clean(f.months)
    if months == list(range(1, 13)):
        return None
    if len(months) > 2 and months == list(range(months[0], months[-1] + 1)):
        return f"{_MONTH_NAMES[months[0] - 1]} through {_MONTH_NAMES[months[-1] - 1]}"
    return "in " + _join([_MONTH_NAMES[m - 1] for m in months])


def _year_part(f: ParsedFields, max_year: int) -> str | None:
    years = [y for y in f.years if y != ALL_SPEC or ALL_SPEC not in f.years]
    if ALL_SPEC in f.years or not years:
        return None if years else "never (no year given)"
    if years[-1] > max_year:
        years = [y for y in years if y <= max_year] or years[:1]
    phrase = _phrase(years, "year", 1970, max_year)
    return "in " + phrase.removeprefix("year ").removeprefix("years ")


def describe_fields(f: ParsedFields, time_zone: str, max_year: int = 9999) -> str:
    """The whole description: time, days, months, years and (unless UTC) the zone."""
    parts = [_time_part(f)]
    parts.append(_day_of_month_part(f) if f.by_day_of_month else _day_of_week_part(f))
    for extra in (_month_part(f), _year_part(f, max_year)):
        if extra:
            parts.append(extra)
    if time_zone not in _UTC_NAMES:
        parts.append(f"in {time_zone}")
    return ", ".join(parts)
