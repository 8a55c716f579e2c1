"""``aggsched cron next|check`` through the real Typer app."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from itertools import pairwise

from typer.testing import CliRunner

from aggsched.cli import app

runner = CliRunner()


def test_next_prints_the_next_three_instants_after_now() -> None:
    before = datetime.now(UTC)
    result = runner.invoke(app, ["cron", "next", "0 25 06 ? * *", "--count", "3"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 3
    times = [datetime.strptime(x, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC) for x in lines]
    assert all((t.hour, t.minute, t.second) == (6, 25, 0) for t in times)
    assert before < times[0] <= before + timedelta(days=1)
    assert [b - a for a, b in pairwise(times)] == [timedelta(days=1)] * 2


def test_next_with_after_zone_and_json() -> None:
    result = runner.invoke(
        app,
        [
            "cron",
            "next",
            "0 0 9 ? * MON-FRI",
            "--tz",
            "Europe/Paris",
            "--after",
            "2026-11-27T12:00:00Z",
            "--count",
            "2",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == ["2026-11-30T08:00:00Z", "2026-12-01T08:00:00Z"]


def test_next_after_without_offset_is_utc_and_default_count_is_one() -> None:
    result = runner.invoke(app, ["cron", "next", "0 0 12 * * ?", "--after", "2026-01-01T12:00"])
    assert result.exit_code == 0, result.output
    assert result.stdout == "2026-01-02T12:00:00Z\n"


def test_next_reports_an_ended_schedule() -> None:
    result = runner.invoke(
        app, ["cron", "next", "0 0 0 1 1 ? 2020", "--after", "2026-01-01T00:00:00Z", "--json"]
    )
    assert result.exit_code == 0
    assert json.loads(result.stdout) == []


def test_next_rejects_a_bad_after() -> None:
    result = runner.invoke(app, ["cron", "next", "0 0 0 * * ?", "--after", "yesterday"])
    assert result.exit_code == 2
    assert "ISO-8601" in result.output


def test_check_describes_a_valid_expression() -> None:
    result = runner.invoke(app, ["cron", "check", "0 */5 * ? * MON-FRI", "--tz", "Europe/Paris"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == (
        "At second 0 of every 5th minute, Monday through Friday, in Europe/Paris"
    )


def test_check_points_a_caret_at_the_error() -> None:
    result = runner.invoke(app, ["cron", "check", "0 0 0 ? * 8"])
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert "Day-of-Week values must be between 1 and 7" in lines[0]
    assert lines[1] == "  0 0 0 ? * 8"
    assert lines[2] == "  " + " " * 10 + "^"


def test_invalid_expression_and_unknown_zone_exit_2() -> None:
    bad = runner.invoke(app, ["cron", "next", "0 0 0 * * *"])
    assert bad.exit_code == 2
    assert "day-of-week AND a day-of-month" in bad.stderr
    zone = runner.invoke(app, ["cron", "check", "0 0 0 * * ?", "--tz", "Mars/Base"])
    assert zone.exit_code == 2
    assert "unknown time zone 'Mars/Base'" in zone.stderr
