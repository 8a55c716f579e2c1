"""The zone transition tables agree with ``zoneinfo`` itself, second for second, around
every transition of zones with unusual rules, and outside the tables' years."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest

from aggsched.cron import CronExpression
from aggsched.cron._engine import Zone, split_seconds, wall_seconds

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ZONES = [
    "America/New_York",  # ordinary DST
    "Europe/Dublin",  # "negative" DST in tzdata (winter is the odd one)
    "Australia/Lord_Howe",  # 30-minute DST, southern hemisphere
    "Pacific/Apia",  # skipped 30 December 2011 (a 24-hour gap), later DST abolished
    "America/Sao_Paulo",  # DST abolished in 2019
    "Africa/Casablanca",  # switches around Ramadan, several a year
    "Antarctica/Troll",  # two-hour DST
    "Asia/Kolkata",  # no transitions in these years
]
YEARS = [(1995, 1997), (2010, 2013), (2038, 2040), (2120, 2121)]


def seconds(instant: datetime) -> int:
    return int((instant - EPOCH).total_seconds())


def reference_offset(tz: ZoneInfo, utc: int) -> int:
    offset = datetime.fromtimestamp(utc, tz).utcoffset()
    assert offset is not None
    return int(offset.total_seconds())


def reference_wall_to_utc(tz: ZoneInfo, w: int) -> int:
    """Java's lenient reading of a wall time: the smaller of the two fold offsets (the
    earlier one in a gap, the later, standard one in an overlap)."""
    local = (datetime(1970, 1, 1) + timedelta(seconds=w)).replace(tzinfo=tz)
    first, second = local.utcoffset(), local.replace(fold=1).utcoffset()
    assert first is not None and second is not None
    return w - int(min(first, second).total_seconds())


def transitions(tz: ZoneInfo, first: int, last: int) -> list[int]:
    """Instants where the offset changes, found hourly by zoneinfo and bisected."""
    start = seconds(datetime(first, 1, 1, tzinfo=UTC))
    end = seconds(datetime(last + 1, 1, 1, tzinfo=UTC))
    found = []
    for t in range(start, end, 3600):
        if reference_offset(tz, t) != reference_offset(tz, t + 3600):
            low, high = t, t + 3600
            while high - low > 1:
                mid = (low + high) // 2
                low, high = (
                    (mid, high)
                    if reference_offset(tz, mid) == reference_offset(tz, t)
                    else (low, mid)
                )
            found.append(high)
    return found


@pytest.mark.parametrize("key", ZONES)
def test_offsets_and_wall_times_agree_with_zoneinfo_around_every_transition(key: str) -> None:
    tz, zone = ZoneInfo(key), Zone(key)
    checked, seen = 0, 0
    for first, last in YEARS:
        changes = transitions(tz, first, last)
        seen += len(changes)
        probes = {seconds(datetime(first, 7, 1, 12, tzinfo=UTC))}
        for t in changes:
            probes.update(t + d for d in range(-3 * 3600, 3 * 3600 + 1, 900))
            probes.update(t + d for d in (-1, 0, 1))
        for u in sorted(probes):
            assert zone.offset_at(u) == reference_offset(tz, u), (key, u)
            assert zone.fields(u) == split_seconds(u + reference_offset(tz, u)), (key, u)
            w = u + reference_offset(tz, u)  # and every wall time near the transition
            for d in (-3600, -1800, -1, 0, 1, 1800, 3600):
                expected = reference_wall_to_utc(tz, w + d)
                got = zone.wall_to_utc(*split_seconds(w + d))
                assert got == expected, (key, w + d)
            checked += 1
    assert seen or key == "Asia/Kolkata", f"{key}: no transition tried"
    assert checked >= len(YEARS) + seen


def test_a_year_outside_the_tables_reads_zoneinfo() -> None:
    tz, zone = ZoneInfo("America/New_York"), Zone("America/New_York")
    for year in (1850, 2600):
        u = seconds(datetime(year, 7, 4, 12, tzinfo=UTC))
        assert zone.offset_at(u) == reference_offset(tz, u)
        w = wall_seconds(year, 2, 10, 2, 30, 0)  # in March: a gap in the far future
        assert zone.wall_to_utc(*split_seconds(w)) == reference_wall_to_utc(tz, w)


def test_half_hourly_fires_across_half_hour_shifts_stay_on_the_wall_clock() -> None:
    """Every 30 minutes across each of Lord Howe's half-hour shifts of a year: every fire
    is on a :00 or :30 wall time, none twice, and no more than the shift is skipped."""
    cron = CronExpression.parse("0 0/30 * * * ?", "Australia/Lord_Howe")
    tz = ZoneInfo("Australia/Lord_Howe")
    for change in transitions(tz, 2024, 2024):
        start = EPOCH + timedelta(seconds=change - 3 * 3600)
        fires = cron.next_n(start, 12)
        walls = [f.astimezone(tz) for f in fires]
        assert all(w.minute in (0, 30) and w.second == 0 for w in walls)
        assert fires == sorted(set(fires))  # strictly increasing: no fire twice
        gaps = {int((b - a).total_seconds()) for a, b in pairwise(fires)}
        assert gaps <= {1800, 3600}, gaps  # at most the half-hour the gap swallowed
