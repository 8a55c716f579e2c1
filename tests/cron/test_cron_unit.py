"""Hand-checked behaviour of ``aggsched.cron``: fire times, errors, description, API edges."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest

from aggsched.cron import CronError, CronExpression, CronSyntaxError, CronTimeZoneError

T0 = datetime(2026, 11, 29, 19, 4, 7, tzinfo=UTC)  # a Sunday


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def nxt(expr: str, start: datetime = T0, n: int = 3, tz: str = "UTC") -> list[datetime]:
    return CronExpression.parse(expr, tz).next_n(start, n)


# -- fire times ----------------------------------------------------------------------------
def test_daily_expression_with_leading_zero() -> None:
    assert nxt("0 25 06 ? * *") == [
        utc(2026, 11, 30, 6, 25),
        utc(2026, 12, 1, 6, 25),
        utc(2026, 12, 2, 6, 25),
    ]


def test_day_of_week_numbers_are_sunday_based() -> None:
    """Quartz: 1 = SUN, 2 = MON (croniter's Quartz mode gets this wrong)."""
    assert [t.strftime("%a") for t in nxt("0 0 12 ? * 2", n=2)] == ["Mon", "Mon"]
    assert nxt("0 0 12 ? * 1") == nxt("0 0 12 ? * sun")


def test_names_in_any_case_and_wrapping_ranges() -> None:
    assert nxt("0 0 0 ? nov-FEB *", n=5)[-1] == utc(2026, 12, 4)
    fires = nxt("0 0 22-2 * * ?", n=5)
    assert [t.hour for t in fires] == [22, 23, 0, 1, 2]
    assert {t.strftime("%a") for t in nxt("0 0 9 ? * FRI-MON", n=8)} == {"Fri", "Sat", "Sun", "Mon"}


def test_last_day_rules() -> None:
    assert nxt("0 15 10 L * ?", n=3) == [
        utc(2026, 11, 30, 10, 15),
        utc(2026, 12, 31, 10, 15),
        utc(2027, 1, 31, 10, 15),
    ]
    assert nxt("0 0 0 L-2 2 ?", n=2) == [utc(2027, 2, 26), utc(2028, 2, 27)]
    # last weekday: 2027-01-31 is a Sunday, 2027-07-31 a Saturday
    assert nxt("0 0 0 LW * ?", start=utc(2027, 1, 1), n=1) == [utc(2027, 1, 29)]
    assert nxt("0 0 0 LW 7 ?", start=utc(2027, 1, 1), n=1) == [utc(2027, 7, 30)]


def test_nearest_weekday_never_leaves_the_month() -> None:
    # 2027-05-01 is a Saturday: 1W moves forward to Monday the 3rd, not back to April
    assert nxt("0 0 0 1W 5 ?", start=utc(2027, 1, 1), n=1) == [utc(2027, 5, 3)]
    # 2027-10-31 is a Sunday: 31W moves back to Friday the 29th
    assert nxt("0 0 0 31W 10 ?", start=utc(2027, 1, 1), n=1) == [utc(2027, 10, 29)]


def test_nth_and_last_weekday_of_month() -> None:
    assert nxt("0 15 10 ? * 6#3", n=2) == [utc(2026, 12, 18, 10, 15), utc(2027, 1, 15, 10, 15)]
    assert nxt("0 0 0 ? * 6L", n=1) == [utc(2026, 12, 25)]
    # a fifth Monday only exists in some months: Nov 2026 has one (30th), Dec does not
    assert nxt("0 0 0 ? * 2#5", start=utc(2026, 11, 1), n=2) == [
        utc(2026, 11, 30),
        utc(2027, 3, 29),
    ]


def test_leap_day_years_away_returns_at_once() -> None:
    cron = CronExpression.parse("0 0 0 29 FEB ? 2096")
    started = time.perf_counter()
    assert cron.next_after(T0) == utc(2096, 2, 29)
    assert time.perf_counter() - started < 0.05
    assert cron.next_after(utc(2096, 2, 29)) is None


def test_schedule_end_returns_none_and_short_lists() -> None:
    cron = CronExpression.parse("0 0 0 1 1,7 ? 2027")
    assert cron.next_n(T0, 5) == [utc(2027, 1, 1), utc(2027, 7, 1)]
    assert cron.next_after(utc(2027, 7, 1)) is None
    assert CronExpression.parse("0 0 0 31 2 ?").next_after(T0) is None  # never exists


def test_years_beyond_quartz_max_year_never_fire() -> None:
    cron = CronExpression.parse("0 0 0 1 1 ? 2130", max_year=2126)
    assert cron.next_after(T0) is None
    assert CronExpression.parse("0 0 0 1 1 ? 2126", max_year=2126).next_after(T0) == utc(2126, 1, 1)


def test_dst_gap_is_skipped_and_repeated_hour_fires_once() -> None:
    ny = "America/New_York"
    # 2026-03-08 02:30 does not exist in New York: no fire that day
    gap = nxt("0 30 2 * * ?", start=utc(2026, 3, 7, 12), tz=ny, n=2)
    assert gap == [utc(2026, 3, 9, 6, 30), utc(2026, 3, 10, 6, 30)]
    # 2026-11-01 01:30 happens twice: Quartz fires once, at the standard-time one (EST)
    overlap = nxt("0 30 1 * * ?", start=utc(2026, 10, 31, 12), tz=ny, n=2)
    assert overlap == [utc(2026, 11, 1, 6, 30), utc(2026, 11, 2, 6, 30)]


def test_time_zone_is_applied() -> None:
    paris = nxt("0 0 9 * * ?", tz="Europe/Paris", n=1)[0]
    assert paris.astimezone(ZoneInfo("Europe/Paris")).hour == 9
    assert paris.tzinfo == UTC
    assert nxt("0 0 9 * * ?", tz="Asia/Kolkata", n=1) == [utc(2026, 11, 30, 3, 30)]


def test_next_after_is_strict_and_drops_subseconds() -> None:
    cron = CronExpression.parse("0 * * * * ?")
    assert cron.next_after(utc(2026, 1, 1, 0, 1)) == utc(2026, 1, 1, 0, 2)
    assert cron.next_after(utc(2026, 1, 1, 0, 0, 59) + timedelta(microseconds=999_999)) == utc(
        2026, 1, 1, 0, 1
    )
    other_offset = datetime(2026, 1, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=1)))
    assert cron.next_after(other_offset) == utc(2026, 1, 1, 0, 1)


def test_next_n_edges() -> None:
    cron = CronExpression.parse("0 0 * * * ?")
    assert cron.next_n(T0, 0) == []
    with pytest.raises(ValueError, match="n must be >= 0"):
        cron.next_n(T0, -1)
    hours = cron.next_n(T0, 48)
    assert all(b - a == timedelta(hours=1) for a, b in pairwise(hours))


def test_naive_datetime_is_rejected() -> None:
    cron = CronExpression.parse("0 0 * * * ?")
    for call in (cron.next_after, cron.is_satisfied_by, lambda d: cron.next_n(d, 2)):
        with pytest.raises(ValueError, match="naive datetime"):
            call(datetime(2026, 1, 1))


def test_is_satisfied_by() -> None:
    cron = CronExpression.parse("0 30 1 * * ?", "America/New_York")
    assert cron.is_satisfied_by(utc(2026, 7, 1, 5, 30))
    assert not cron.is_satisfied_by(utc(2026, 7, 1, 5, 30, 1))
    assert cron.is_satisfied_by(utc(2026, 7, 1, 5, 30) + timedelta(milliseconds=400))
    # the first (daylight-time) 01:30 of 2026-11-01 is not a fire time, the second is
    assert not cron.is_satisfied_by(utc(2026, 11, 1, 5, 30))
    assert cron.is_satisfied_by(utc(2026, 11, 1, 6, 30))


# -- quirks Quartz has and we keep ---------------------------------------------------------
@pytest.mark.parametrize(
    ("expr", "same_as"),
    [
        ("0 0 0 ? * *X", "0 0 0 ? * *"),  # trailing junk after '*' ignored
        ("0 0 12 ? * MONDAY", "0 0 12 ? * MON"),  # only three letters read
        ("0 0 0 * * ? * extra", "0 0 0 * * ?"),  # fields after the 7th ignored
        ("99 0 0 * * ?", "* 0 0 * * ?"),  # 99 is Quartz's internal '*' marker
        ("0 0 0 ? * L", "0 0 0 ? * 7"),  # a lone L in day-of-week means Saturday
        ("*/0 * * * * ?", "* * * * * ?"),
    ],
)
def test_quartz_quirks(expr: str, same_as: str) -> None:
    assert nxt(expr, n=4) == nxt(same_as, n=4)


# -- errors --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("expr", "message", "position"),
    [
        ("0 0 0 ? * 8", "Day-of-Week values must be between 1 and 7", 10),
        (
            "0 0 0 5 * MON",
            "Support for specifying both a day-of-week AND a day-of-month "
            "parameter is not implemented.",
            10,
        ),
        (
            "0 0 0 * * *",
            "Support for specifying both a day-of-week AND a day-of-month "
            "parameter is not implemented.",
            10,
        ),
        ("0 0 0 * *", "Unexpected end of expression.", 9),
        ("", "Unexpected end of expression.", 0),
        ("0 0 0 ? FOO *", "Invalid Month value: 'FOO'", 8),
        ("0 0 0 ? * 1#6", "A numeric value between 1 and 5 must follow the '#' option", 12),
        ("0 0 0 L-31 * ?", "Offset from last day must be <= 30", 8),
        (
            "0 0 0 L,15 * ?",
            "Support for specifying 'L' and 'LW' with other days of the month is not implemented",
            6,
        ),
        ("0 60 0 * * ?", "Minute and Second values must be between 0 and 59", 2),
        ("0 0 24 * * ?", "Hour values must be between 0 and 23", 4),
        ("0 0 0 ? 13 *", "Month values must be between 1 and 12", 8),
        ("? 0 0 * * ?", "'?' can only be specified for Day-of-Month or Day-of-Week.", 1),
        ("0 0 */24 * * ?", "Increment > 24 : 24", 6),
        ("0 0 5W * * ?", "'W' option is not valid here. (pos=1)", 5),
        ("0 0 0 ? * 1#2,3#4", 'Support for specifying multiple "nth" days is not implemented.', 10),
    ],
)
def test_syntax_errors_carry_quartz_message_and_position(
    expr: str, message: str, position: int
) -> None:
    with pytest.raises(CronSyntaxError) as caught:
        CronExpression.parse(expr)
    assert caught.value.message == message
    assert caught.value.position == position
    assert isinstance(caught.value, ValueError)
    assert f"position {position}" in str(caught.value)


@pytest.mark.parametrize(
    ("expr", "fragment"),
    [
        ("0/x * * * * ?", "NumberFormatException"),
        ("0 0 0 ? * * 2030-2020", "Start year must be less than stop year"),
        ("L 0 0 * * ?", "the seconds field has no values"),  # Quartz fails on first use
        ("0 0 0 0W * ?", "'0W'"),  # Quartz accepts it and then loops forever
    ],
)
def test_other_invalid_expressions(expr: str, fragment: str) -> None:
    with pytest.raises(CronSyntaxError, match=fragment):
        CronExpression.parse(expr)


def test_unknown_time_zone_names_the_zone() -> None:
    with pytest.raises(CronTimeZoneError, match="'Mars/Olympus_Mons'") as caught:
        CronExpression.parse("0 0 0 * * ?", "Mars/Olympus_Mons")
    assert isinstance(caught.value, CronError) and isinstance(caught.value, ValueError)


def test_non_string_expression_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        CronExpression.parse(None)  # type: ignore[arg-type]


# -- object behaviour and description -----------------------------------------------------
def test_keeps_text_and_zone_and_is_immutable() -> None:
    cron = CronExpression.parse("0 25 06 ? * *", "Europe/Paris")
    assert (cron.text, cron.time_zone) == ("0 25 06 ? * *", "Europe/Paris")
    assert cron.max_year == datetime.now(UTC).year + 100
    assert cron == CronExpression.parse("0 25 06 ? * *", "Europe/Paris")
    assert cron != CronExpression.parse("0 25 06 ? * *")
    assert len({cron, CronExpression.parse("0 25 06 ? * *", "Europe/Paris")}) == 1
    with pytest.raises(AttributeError):
        cron.text = "x"  # type: ignore[misc]
    assert "Europe/Paris" in repr(cron)


@pytest.mark.parametrize(
    ("expr", "tz", "text"),
    [
        ("0 25 06 ? * *", "UTC", "At 06:25:00, every day"),
        (
            "0 */5 * ? * MON-FRI",
            "Europe/Paris",
            "At second 0 of every 5th minute, Monday through Friday, in Europe/Paris",
        ),
        ("0 0 12 ? * 2", "UTC", "At 12:00:00, on Monday"),
        ("0 15 10 L * ?", "UTC", "At 10:15:00, on the last day of the month"),
        ("0 15 10 L-2 * ?", "UTC", "At 10:15:00, 2 days before the last day of the month"),
        ("0 0 0 LW * ?", "UTC", "At 00:00:00, on the last weekday of the month"),
        ("0 0 0 15W * ?", "UTC", "At 00:00:00, on the weekday nearest day 15 of the month"),
        ("0 0 0 ? * 6L", "UTC", "At 00:00:00, on the last Friday of the month"),
        ("0 15 10 ? * 6#3", "UTC", "At 10:15:00, on the third Friday of the month"),
        ("0 0 9-17 ? * MON-FRI", "UTC", "At 00:00 past hours 9 through 17, Monday through Friday"),
        ("* * * * * ?", "UTC", "Every second, every day"),
        (
            "0 0 0 1,15 JAN,JUL ? 2027",
            "UTC",
            "At 00:00:00, on days 1 and 15 of the month, in January and July, in 2027",
        ),
        (
            "0 0 0 ? MAR-MAY SAT,SUN",
            "UTC",
            "At 00:00:00, on Sunday and Saturday, March through May",
        ),
    ],
)
def test_describe(expr: str, tz: str, text: str) -> None:
    assert CronExpression.parse(expr, tz).describe() == text
