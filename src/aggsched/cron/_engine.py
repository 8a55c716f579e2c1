"""Next fire time, computed the way Quartz's ``CronExpression.getTimeAfter`` computes it.

Quartz walks a lenient ``java.util.GregorianCalendar``: it sets fields (possibly out of
range, e.g. minute 60 or day 32), and every ``get`` re-normalizes them through the time
zone. Its DST behaviour comes entirely from that normalization: a wall time in a spring
gap is read with the pre-transition offset (so 02:30 becomes 03:30), and a wall time in an
autumn overlap is read with the post-transition offset (the second, standard-time
occurrence). To agree with Quartz on every instant, this module keeps the calendar as wall
fields and normalizes at exactly the points where Quartz calls ``get``, then jumps field by
field with ``bisect`` over sorted value tuples (Quartz's ``TreeSet.tailSet``), never second
by second. A zone's offsets come from a table of its transitions, found once per year of
use, so evaluating in a zone with DST costs about what UTC does (``Zone``).

Pure: epoch seconds in, epoch seconds out; the zone rules come from ``zoneinfo``.
"""

from __future__ import annotations

import re
import threading
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo

from aggsched.cron._parse import ParsedFields

Fields = tuple[int, int, int, int, int, int]  # year, month 0-11, day, hour, minute, second

_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_EPOCH_NAIVE = datetime(1970, 1, 1)
_EPOCH_UTC = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_SECOND = timedelta(seconds=1)
_FIXED_KEYS = re.compile(r"(Etc/)?(UTC|UCT|GMT|GMT0|GMT[+-]\d{1,2}|Zulu|Universal|Greenwich)")
_MONTH_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_LOOP_LIMIT = 200_000  # Quartz has no limit; this only guards against pathological cycles
_MAX_LOOP_YEAR = 2999  # Quartz's own "prevent endless loop" bound


def last_day_of_month(month: int, year: int) -> int:
    """Days in ``month`` (1-12) of ``year`` (proleptic Gregorian, like Quartz)."""
    if month == 2 and year % 4 == 0 and (year % 100 != 0 or year % 400 == 0):
        return 29
    return _MONTH_DAYS[month - 1]


def wall_seconds(y: int, mo: int, d: int, h: int, mi: int, s: int) -> int:
    """Lenient fields (any values, month 0-based) to seconds since the epoch, wall clock."""
    carry, mo = divmod(mo, 12)
    days = date(y + carry, mo + 1, 1).toordinal() - _EPOCH_ORDINAL + d - 1
    return days * 86400 + h * 3600 + mi * 60 + s


def split_seconds(w: int) -> Fields:
    """Seconds since the epoch (wall clock) back to normalized fields."""
    days, rem = divmod(w, 86400)
    day = date.fromordinal(days + _EPOCH_ORDINAL)
    h, rem = divmod(rem, 3600)
    mi, s = divmod(rem, 60)
    return day.year, day.month - 1, day.day, h, mi, s


def java_day_of_week(y: int, mo: int, d: int) -> int:
    """``Calendar.DAY_OF_WEEK`` (1 = Sunday ... 7 = Saturday) of normalized fields."""
    return date(y, mo + 1, d).toordinal() % 7 + 1


# Zone offsets are sampled daily when looking for transitions: since 1900 no zone has two
# transitions within two days of each other (checked against every tzdata zone's list).
_PROBE = 86400
_CHUNK_YEARS = 8  # a transition table grows by at least this many years at a time
_TABLE_YEARS = (1900, 2400)  # years a table covers; others read zoneinfo each time
_YEAR = 31_556_952  # mean Gregorian year in seconds (to find the year of an instant)


class _Table(NamedTuple):
    """A zone's transitions over the years ``first..last`` (UTC years)."""

    first: int
    last: int
    utc: tuple[int, ...]  # transition instants, ascending
    off: tuple[int, ...]  # offset from each transition on
    wall: tuple[int, ...]  # wall boundary of each transition (its instant + new offset)
    base: int  # offset before the first transition
    odd_days: frozenset[tuple[int, int, int]]  # local (y, mo 0-11, d) with a gap or overlap

    def extended(self, found: list[tuple[int, int, int]], at_end: bool) -> _Table:
        """With the transitions ``found`` (instant, old offset, new offset) added after
        (``at_end``) or before the ones known."""
        utc = tuple(u for u, _, _ in found)
        off = tuple(new for _, _, new in found)
        wall = tuple(u + new for u, _, new in found)
        odd = set(self.odd_days)
        for u, old, new in found:
            for w in range(u + min(old, new), u + max(old, new), 3600):
                odd.add(split_seconds(w)[:3])
            odd.add(split_seconds(u + max(old, new))[:3])
        if at_end:
            return self._replace(utc=self.utc + utc, off=self.off + off, wall=self.wall + wall,
                                 odd_days=frozenset(odd))  # fmt: skip
        return self._replace(utc=utc + self.utc, off=off + self.off, wall=wall + self.wall,
                             odd_days=frozenset(odd))  # fmt: skip


class Zone:
    """Java's view of one IANA zone: fields of an instant, and instant of wall fields.

    The zone's offset transitions are found once per year of use (sampling ``zoneinfo``
    and bisecting to the second) and kept sorted, so reading an instant or a wall time is
    a ``bisect`` and integer arithmetic instead of building aware datetimes. Wall times
    are converted as Java's lenient calendar does: in a gap the earlier offset applies
    (time moves forward), in an overlap the later one (standard time) -- i.e. below a
    transition's wall boundary (its instant plus the new offset) the old offset holds,
    from it on the new one.
    """

    __slots__ = ("_lock", "_table", "fixed_offset", "key", "tz")

    def __init__(self, key: str) -> None:
        self.key = key
        self.tz = ZoneInfo(key)
        self.fixed_offset: int | None = None
        if _FIXED_KEYS.fullmatch(key):
            offset = self.tz.utcoffset(datetime(2000, 1, 1))
            self.fixed_offset = int(offset.total_seconds()) if offset is not None else 0
        # Zones are shared by every thread: the table is immutable and swapped whole
        # (readers take one reference), and only one thread at a time extends it.
        self._table = _Table(1, 0, (), (), (), 0, frozenset())
        self._lock = threading.Lock()

    # ---------------------------------------------------------------- transitions
    def _offset_of(self, utc: int) -> int:
        offset = datetime.fromtimestamp(utc, self.tz).utcoffset()
        return int(offset.total_seconds()) if offset is not None else 0

    def _scan(self, first: int, last: int) -> tuple[int, list[tuple[int, int, int]]]:
        """Transitions from 1 January ``first`` to 1 January ``last + 1`` (UTC): the offset
        at the start, and (instant, old offset, new offset) of each change."""
        start = int((datetime(first, 1, 1, tzinfo=UTC) - _EPOCH_UTC).total_seconds())
        end = int((datetime(last + 1, 1, 1, tzinfo=UTC) - _EPOCH_UTC).total_seconds())
        base = before = self._offset_of(start)
        found: list[tuple[int, int, int]] = []
        t = start
        while t < end:
            step = min(_PROBE, end - t)
            if self._offset_of(t + step) == before:
                t += step
                continue
            low, high = t, t + step  # the offset changes in (low, high]: bisect to the second
            while high - low > 1:
                mid = (low + high) // 2
                if self._offset_of(mid) == before:
                    low = mid
                else:
                    high = mid
            after = self._offset_of(high)
            found.append((high, before, after))
            before, t = after, high
        return base, found

    def _cover(self, year: int) -> _Table | None:
        """The table, extended to cover ``year`` with a year to spare either side (a few
        years at a time, never leaving a hole: a bisect must not skip an unknown
        transition). None outside ``_TABLE_YEARS``: the caller reads zoneinfo."""
        if not _TABLE_YEARS[0] < year < _TABLE_YEARS[1]:
            return None
        with self._lock:
            table = self._table
            if table.first < year < table.last:
                return table  # another thread extended it meanwhile
            lo, hi = year - 2, year + 2
            if table.first > table.last:  # nothing covered yet
                base, found = self._scan(lo, hi)
                table = _Table(lo, hi, (), (), (), base, frozenset()).extended(found, True)
            if hi > table.last:
                top = max(hi, table.last + _CHUNK_YEARS)
                _, found = self._scan(table.last + 1, top)
                table = table.extended(found, True)._replace(last=top)
            if lo < table.first:
                bottom = min(lo, table.first - _CHUNK_YEARS)
                base, found = self._scan(bottom, table.first - 1)
                table = table.extended(found, False)._replace(first=bottom, base=base)
            self._table = table
            return table

    def offset_at(self, utc: int) -> int:
        """The zone's offset at the instant ``utc``."""
        table = self._table
        year = 1970 + utc // _YEAR
        if not table.first < year < table.last and (table := self._cover(year)) is None:
            return self._offset_of(utc)
        i = bisect_right(table.utc, utc)
        return table.off[i - 1] if i else table.base

    def wall_offset(self, w: int) -> int:
        """The offset Java's lenient calendar gives the wall time ``w`` (see the class)."""
        table = self._table
        year = 1970 + w // _YEAR
        if not table.first < year < table.last and (table := self._cover(year)) is None:
            local = (_EPOCH_NAIVE + timedelta(seconds=w)).replace(tzinfo=self.tz)
            first, second = local.utcoffset(), local.replace(fold=1).utcoffset()
            assert first is not None and second is not None
            return min(first, second) // _ONE_SECOND
        i = bisect_right(table.wall, w)
        return table.off[i - 1] if i else table.base

    # ---------------------------------------------------------------- conversions
    def fields(self, utc: int) -> Fields:
        """Local wall fields of the instant ``utc`` (epoch seconds)."""
        if self.fixed_offset is not None:
            return split_seconds(utc + self.fixed_offset)
        return split_seconds(utc + self.offset_at(utc))

    def wall_to_utc(self, y: int, mo: int, d: int, h: int, mi: int, s: int) -> int:
        """The instant Java's lenient calendar gives wall fields: in a gap the earlier
        offset applies (time moves forward), in an overlap the later one (standard time)."""
        w = wall_seconds(y, mo, d, h, mi, s)
        if self.fixed_offset is not None:
            return w - self.fixed_offset
        return w - self.wall_offset(w)

    def normalizer(self) -> Callable[[int, int, int, int, int, int], Fields]:
        """The function Quartz's ``Calendar.get`` amounts to: re-read fields via the zone.

        Fields that are in range on a day without a gap or overlap come back unchanged,
        as in UTC (the hot path); only the other ones go through the zone.
        """
        if self.fixed_offset is not None:
            return _normalize_plain
        wall_offset, offset_at = self.wall_offset, self.offset_at

        def normalize(y: int, mo: int, d: int, h: int, mi: int, s: int) -> Fields:
            if (
                0 <= s < 60
                and 0 <= mi < 60
                and 0 <= h < 24
                and 0 <= mo < 12
                and d >= 1
                and (d <= 28 or d <= last_day_of_month(mo + 1, y))
                and (table := self._table).first < y < table.last
                and (y, mo, d) not in table.odd_days
            ):
                return y, mo, d, h, mi, s
            w = wall_seconds(y, mo, d, h, mi, s)
            u = w - wall_offset(w)
            return split_seconds(u + offset_at(u))

        return normalize


def _normalize_plain(y: int, mo: int, d: int, h: int, mi: int, s: int) -> Fields:
    """Lenient normalization without DST (UTC and fixed offsets): the hot path."""
    if (
        0 <= s < 60
        and 0 <= mi < 60
        and 0 <= h < 24
        and 0 <= mo < 12
        and d >= 1
        and (d <= 28 or d <= last_day_of_month(mo + 1, y))
    ):
        return y, mo, d, h, mi, s
    return split_seconds(wall_seconds(y, mo, d, h, mi, s))


class Evaluator:
    """Quartz's ``getTimeAfter`` for one parsed expression in one zone."""

    __slots__ = ("f", "max_year", "normalize", "zone")

    def __init__(self, fields: ParsedFields, zone: Zone, max_year: int) -> None:
        self.f = fields
        self.zone = zone
        self.max_year = max_year
        self.normalize = zone.normalizer()

    def time_after(self, after: int) -> int | None:
        """First fire instant strictly after ``after`` (epoch seconds), or None if none."""
        after_time = after + 1
        norm = self.normalize
        f = self.f
        secs, mins, hours, months, years = f.seconds, f.minutes, f.hours, f.months, f.years
        y, mo, d, h, mi, s = self.zone.fields(after_time)
        for _ in range(_LOOP_LIMIT):
            y, mo, d, h, mi, s = norm(y, mo, d, h, mi, s)
            if y > _MAX_LOOP_YEAR:
                return None
            # seconds
            k = bisect_left(secs, s)
            if k < len(secs):
                s = secs[k]
            else:
                s = secs[0]
                mi += 1
            y, mo, d, h, mi, s = norm(y, mo, d, h, mi, s)
            # minutes
            k = bisect_left(mins, mi)
            if k < len(mins):
                if mins[k] != mi:
                    y, mo, d, h, mi, s = self._set_hour(y, mo, d, mins[k], h)
                    continue
            else:
                y, mo, d, h, mi, s = self._set_hour(y, mo, d, mins[0], h + 1)
                continue
            # hours
            k = bisect_left(hours, h)
            if k < len(hours):
                if hours[k] != h:
                    y, mo, d, h, mi, s = self._set_hour(y, mo, d, 0, hours[k])
                    continue
            else:
                y, mo, d, h, mi, s = self._set_hour(y, mo, d + 1, 0, hours[0])
                continue
            # days
            jump = self._day(y, mo, d, h, mi, s, after_time)
            if jump is not None:
                y, mo, d, h, mi, s = jump
                continue
            # months
            if y > self.max_year:
                return None
            k = bisect_left(months, mo + 1)
            if k < len(months):
                if months[k] != mo + 1:
                    y, mo, d, h, mi, s = y, months[k] - 1, 1, 0, 0, 0
                    continue
            else:
                y, mo, d, h, mi, s = y + 1, months[0] - 1, 1, 0, 0, 0
                continue
            # years
            k = bisect_left(years, y)
            if k == len(years):
                return None
            if years[k] != y:
                y, mo, d, h, mi, s = years[k], 0, 1, 0, 0, 0
                continue
            return self.zone.wall_to_utc(y, mo, d, h, mi, s)
        return None

    def _set_hour(self, y: int, mo: int, d: int, mi: int, hour: int) -> Fields:
        """Quartz ``setCalendarHour`` after zeroing the seconds: if the hour did not stick
        (a DST gap moved it), ask for the next hour instead."""
        fields = self.normalize(y, mo, d, hour, mi, 0)
        if fields[3] != hour and hour != 24:
            fy, fmo, fd, _, fmi, fs = fields
            return fy, fmo, fd, hour + 1, fmi, fs
        return fields

    def _day(
        self, y: int, mo: int, d: int, h: int, mi: int, s: int, after_time: int
    ) -> Fields | None:
        """Quartz's day-of-month / day-of-week step: the fields to restart from, or None
        when the current day matches."""
        f = self.f
        mon = mo + 1
        if not f.by_day_of_month:
            return self._day_of_week(y, mon, d)
        dom = f.days_of_month
        tmon = mon
        t = -1
        if f.last_day_of_month:
            t = d
            day = last_day_of_month(mon, y) - f.last_day_offset
            if not f.nearest_weekday:
                if t > day:
                    mon += 1
                    if mon > 12:
                        mon, tmon, y = 1, 3333, y + 1
                    day = 1
            else:
                day, w_year = self._nearest_weekday(y, mon, day)
                if self.zone.wall_to_utc(w_year, mon - 1, day, h, mi, s) < after_time:
                    day, mon = 1, mon + 1
        elif f.nearest_weekday:
            t = d
            day, w_year = self._nearest_weekday(y, mon, dom[0])
            if self.zone.wall_to_utc(w_year, mon - 1, day, h, mi, s) < after_time:
                day, mon = dom[0], mon + 1
        else:
            k = bisect_left(dom, d)
            if k < len(dom):
                t = d
                day = dom[k]
                if day > last_day_of_month(mon, y):
                    day, mon = dom[0], mon + 1
            else:
                day, mon = dom[0], mon + 1
        if day != t or mon != tmon:
            return y, mon - 1, day, 0, 0, 0
        return None

    def _nearest_weekday(self, y: int, mon: int, day: int) -> tuple[int, int]:
        """Quartz's 'W' shift of ``day`` (Saturday -> Friday, Sunday -> Monday, never
        leaving the month at its first/last day), plus the year Quartz's scratch calendar
        holds afterwards (it differs when ``day`` is out of range for the month)."""
        ty, tmo, td, _, _, _ = self.normalize(y, mon - 1, day, 0, 0, 0)
        dow = java_day_of_week(ty, tmo, td)
        ldom = last_day_of_month(mon, y)
        if dow == 7:
            day += 2 if day == 1 else -1
        elif dow == 1:
            day += -2 if day == ldom else 1
        return day, ty

    def _day_of_week(self, y: int, mon: int, day: int) -> Fields | None:
        f = self.f
        dows = f.days_of_week
        cdow = java_day_of_week(y, mon - 1, day)
        ldom = last_day_of_month(mon, y)
        if f.last_day_of_week:
            add = _days_until(cdow, dows[0])
            if day + add > ldom:
                return y, mon, 1, 0, 0, 0
            while day + add + 7 <= ldom:
                add += 7
            return (y, mon - 1, day + add, 0, 0, 0) if add > 0 else None
        if f.nth_day_of_week:
            add = _days_until(cdow, dows[0])
            day += add
            week = day // 7 + (1 if day % 7 else 0)
            more = (f.nth_day_of_week - week) * 7
            day += more
            if more < 0 or day > ldom:
                return y, mon, 1, 0, 0, 0
            return (y, mon - 1, day, 0, 0, 0) if more > 0 or add > 0 else None
        k = bisect_left(dows, cdow)
        add = _days_until(cdow, dows[k] if k < len(dows) else dows[0])
        if day + add > ldom:
            return y, mon, 1, 0, 0, 0
        return (y, mon - 1, day + add, 0, 0, 0) if add > 0 else None


def _days_until(current: int, wanted: int) -> int:
    """Quartz's daysToAdd: days from weekday ``current`` forward to ``wanted``."""
    if current < wanted:
        return wanted - current
    if current > wanted:
        return wanted + 7 - current
    return 0


def utc_seconds(instant: datetime) -> int:
    """Whole epoch seconds of an aware datetime (floored, like Quartz dropping millis)."""
    return int((instant - datetime(1970, 1, 1, tzinfo=UTC)) // _ONE_SECOND)
