"""Issue 12 items 2-4 at the cron level: messages safe to encode, huge numbers as
positioned syntax errors, one IANA zone check."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from aggsched.cron import CronExpression, CronSyntaxError, CronTimeZoneError, check_time_zone


@pytest.mark.parametrize(
    "expr", ["0 0 \ud800 * * ?", "0 0 1 * J\x1bN ?", "0 0 1 ? * MON#\x00", "0 0 1/\x7f * * ?"]
)
def test_item02_messages_escape_what_they_echo(expr: str) -> None:
    with pytest.raises(CronSyntaxError) as caught:
        CronExpression.parse(expr)
    message = str(caught.value)
    message.encode("utf-8")  # a lone surrogate would raise here
    assert not any(ord(c) < 32 or 0xD800 <= ord(c) <= 0xDFFF for c in message), message


@pytest.mark.parametrize(
    ("template", "position"),
    [
        ("0 0 {n} * * ?", 4),
        ("0 0 1-{n} * * ?", 4),
        ("0 0 1/{n} * * ?", 4),
        ("0 0 */{n} * * ?", 4),
        ("0 0 1 ? * 2#{n}", 12),
        ("0 0 1 * * ? {n}", 12),
        ("{n} 0 1 * * ?", 0),
    ],
)
def test_item03_huge_numbers_are_positioned_syntax_errors(template: str, position: int) -> None:
    expr = template.format(n="9" * 10_000)
    started = time.monotonic()
    with pytest.raises(CronSyntaxError) as caught:
        CronExpression.parse(expr)
    assert time.monotonic() - started < 0.5
    assert caught.value.position == position
    assert len(caught.value.message) < 200  # the number is not echoed whole


def test_item03_numbers_just_past_int_range_behave_like_java() -> None:
    with pytest.raises(CronSyntaxError, match="NumberFormatException"):
        CronExpression.parse("0 0 1 * * ? 2147483648")
    padded = CronExpression.parse("0 0 1 1 1 ? 0000000000002030")  # zeros are not digits that count
    assert padded.next_after(datetime(2029, 6, 1, tzinfo=UTC)) == datetime(
        2030, 1, 1, 1, tzinfo=UTC
    )


@pytest.mark.parametrize("zone", ["America", "Etc", "A" * 10_000, "../../etc/passwd", "", "utc"])
def test_item04_zone_names_come_from_the_iana_list(zone: str) -> None:
    with pytest.raises(CronTimeZoneError, match="unknown time zone"):
        check_time_zone(zone)
    with pytest.raises(CronTimeZoneError):
        CronExpression.parse("0 0 1 * * ?", zone)


def test_item04_real_zones_pass() -> None:
    for zone in ("UTC", "Europe/Paris", "America/Argentina/Buenos_Aires", "Etc/GMT+5"):
        assert check_time_zone(zone) == zone
        assert CronExpression.parse("0 0 1 * * ?", zone).time_zone == zone
