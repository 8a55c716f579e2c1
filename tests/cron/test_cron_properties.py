"""Property tests: random expressions against an independent brute-force evaluator.

Hypothesis builds expressions field by field and remembers what each field *means* (its
value set or day rule), so the reference below never looks at our parser. The reference
steps through instants second by second (or minute by minute when the schedule only fires
at second 0) over a short window, reading local wall-clock time in the zone, and applies
Quartz's rules: a local time that does not exist never fires, and a local time that
happens twice fires only the second (standard-time) time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggsched.cron import CronExpression

ZONES = ["UTC", "America/New_York", "Europe/London", "Australia/Lord_Howe", "Asia/Kolkata"]
MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
DAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]


@dataclass(frozen=True)
class Spec:
    """A generated expression plus its meaning, for the brute-force reference."""

    text: str
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    months: frozenset[int]
    day_rule: tuple[str, object]  # ("dom", set) | ("L", n) | ("W", n) | ("LW", 0) |
    # ("dow", set) | ("nL", weekday) | ("nth", (weekday, k))


def _values(lo: int, hi: int, names: list[str] | None = None) -> st.SearchStrategy:
    """(text, value set) for one numeric field, using Quartz's syntax."""

    def name(v: int) -> str:
        return names[v - lo] if names else str(v)

    def wrap(a: int, b: int) -> frozenset[int]:
        return (
            frozenset(range(a, b + 1))
            if a <= b
            else frozenset([*range(a, hi + 1), *range(lo, b + 1)])
        )

    value = st.integers(lo, hi)
    return st.one_of(
        st.just(("*", frozenset(range(lo, hi + 1)))),
        value.map(lambda v: (name(v), frozenset([v]))),
        st.lists(value, min_size=2, max_size=4, unique=True).map(
            lambda vs: (",".join(name(v) for v in vs), frozenset(vs))
        ),
        st.tuples(value, value).map(lambda ab: (f"{name(ab[0])}-{name(ab[1])}", wrap(*ab))),
        st.tuples(value, st.integers(1, hi - lo)).map(
            lambda ak: (f"{ak[0]}/{ak[1]}", frozenset(range(ak[0], hi + 1, ak[1])))
        ),
        st.integers(1, hi - lo).map(lambda k: (f"*/{k}", frozenset(range(lo, hi + 1, k)))),
    )


@st.composite
def specs(draw: st.DrawFn) -> Spec:
    sec = draw(st.one_of(st.just(("0", frozenset([0]))), _values(0, 59)))
    minute = draw(_values(0, 59))
    hour = draw(_values(0, 23))
    month = draw(st.one_of(st.just(("*", frozenset(range(1, 13)))), _values(1, 12, MONTHS)))
    kind = draw(st.sampled_from(["dom", "L", "W", "LW", "dow", "nL", "nth"]))
    if kind == "dom":
        text, days = draw(_values(1, 31))
        dom, dow, rule = text, "?", ("dom", days)
    elif kind == "L":
        n = draw(st.integers(0, 5))
        dom, dow, rule = ("L" if n == 0 else f"L-{n}"), "?", ("L", n)
    elif kind == "W":
        n = draw(st.integers(1, 28))
        dom, dow, rule = f"{n}W", "?", ("W", n)
    elif kind == "LW":
        dom, dow, rule = "LW", "?", ("LW", 0)
    elif kind == "dow":
        text, days = draw(_values(1, 7, DAYS))
        dom, dow, rule = "?", text, ("dow", days)
    elif kind == "nL":
        d = draw(st.integers(1, 7))
        dom, dow, rule = "?", f"{d}L", ("nL", d)
    else:
        d, k = draw(st.integers(1, 7)), draw(st.integers(1, 5))
        dom, dow, rule = "?", f"{d}#{k}", ("nth", (d, k))
    text = " ".join([sec[0], minute[0], hour[0], dom, month[0], dow])
    return Spec(text, sec[1], minute[1], hour[1], month[1], rule)


def _last_day(y: int, m: int) -> int:
    return ((date(y + m // 12, m % 12 + 1, 1)) - timedelta(days=1)).day


def _quartz_dow(d: date) -> int:
    return d.isoweekday() % 7 + 1  # 1 = Sunday


def _day_matches(rule: tuple[str, object], d: date) -> bool:
    kind, arg = rule
    ldom = _last_day(d.year, d.month)
    if kind == "dom":
        return d.day in arg  # type: ignore[operator]
    if kind == "L":
        return d.day == ldom - arg  # type: ignore[operator]
    if kind in ("W", "LW"):
        target = ldom if kind == "LW" else arg
        wd = _quartz_dow(d.replace(day=target))  # type: ignore[arg-type]
        if wd == 7:
            target = target + 2 if target == 1 else target - 1  # type: ignore[operator]
        elif wd == 1:
            target = target - 2 if target == ldom else target + 1  # type: ignore[operator]
        return d.day == target
    if kind == "dow":
        return _quartz_dow(d) in arg  # type: ignore[operator]
    if kind == "nL":
        return _quartz_dow(d) == arg and d.day + 7 > ldom
    weekday, k = arg  # type: ignore[misc]
    return _quartz_dow(d) == weekday and (d.day - 1) // 7 + 1 == k


def fires(spec: Spec, tz: ZoneInfo, instant: datetime) -> bool:
    """Reference: does the schedule fire at this instant (whole seconds)?"""
    local = instant.astimezone(tz)
    if local.fold == 0 and local.replace(fold=1).utcoffset() != local.utcoffset():
        return False  # first of two identical wall times: Quartz fires on the second
    return (
        local.second in spec.seconds
        and local.minute in spec.minutes
        and local.hour in spec.hours
        and local.month in spec.months
        and _day_matches(spec.day_rule, local.date())
    )


def brute_force(spec: Spec, tz: ZoneInfo, start: datetime, end: datetime) -> list[datetime]:
    """All fire instants in (start, end], stepping by the second (or the minute)."""
    step = timedelta(minutes=1) if spec.seconds == {0} else timedelta(seconds=1)
    t = start.replace(microsecond=0) + timedelta(seconds=1)
    if step.seconds == 60:
        t = t.replace(second=0) + (step if t.second else timedelta(0))
    out = []
    while t <= end:
        if fires(spec, tz, t):
            out.append(t)
        t += step
    return out


def _transitions() -> list[datetime]:
    """DST changes of the test zones in a few years, to start examples next to them."""
    out = []
    for zone in ZONES[1:]:
        tz = ZoneInfo(zone)
        for year in (1999, 2026, 2041):
            t = datetime(year, 1, 1, tzinfo=UTC)
            while t.year == year:
                nxt = t + timedelta(hours=1)
                if t.astimezone(tz).utcoffset() != nxt.astimezone(tz).utcoffset():
                    out.append(nxt)
                t = nxt
    return out


TRANSITIONS = _transitions()

starts = st.one_of(
    st.integers(0, 96 * 365 * 86400).map(  # uniform, unlike st.datetimes' edge bias
        lambda s: datetime(1995, 1, 1, tzinfo=UTC) + timedelta(seconds=s)
    ),
    st.tuples(st.sampled_from(TRANSITIONS), st.integers(-6 * 3600, 3600)).map(
        lambda p: p[0] + timedelta(seconds=p[1])
    ),
)


@pytest.mark.slow  # ~5 s: hundreds of brute-force windows
@settings(max_examples=250, deadline=None)
@given(spec=specs(), zone=st.sampled_from(ZONES), start=starts)
def test_next_fires_match_brute_force(spec: Spec, zone: str, start: datetime) -> None:
    cron = CronExpression.parse(spec.text, zone)
    got = cron.next_n(start, 5)
    assert all(a < b for a, b in pairwise([start, *got]))
    tz = ZoneInfo(zone)
    for t in got:
        assert t.tzinfo == UTC and t.microsecond == 0
        assert cron.is_satisfied_by(t)
        assert fires(spec, tz, t), f"{spec.text} fired at {t} ({t.astimezone(tz)})"
    if not got:
        return
    window = timedelta(days=3) if spec.seconds == {0} else timedelta(hours=2)
    end = min(got[-1], start + window)
    expected = brute_force(spec, tz, start, end)
    assert [t for t in got if t <= end] == expected


@settings(max_examples=150, deadline=None)
@given(spec=specs(), zone=st.sampled_from(ZONES), start=starts)
def test_is_satisfied_by_agrees_with_reference(spec: Spec, zone: str, start: datetime) -> None:
    cron = CronExpression.parse(spec.text, zone)
    instant = start.replace(microsecond=0)
    assert cron.is_satisfied_by(instant) == fires(spec, ZoneInfo(zone), instant)
