"""Next fire time, computed the way Quartz's ``CronExpression.getTimeAfter`` computes it.

Quartz walks a lenient ``java.util.GregorianCalendar``: it sets fields (possibly out of
range, e.g. minute 60 or day 32), and every ``get`` re-normalizes them through the time
zone. Its DST behaviour comes entirely from that normalization: a wall time in a spring
gap is read with the pre-transition offset (so 02:30 becomes 03:30), and a wall time in an
autumn overlap is read with the post-transition offset (the second, standard-time
occurrence). To agree with Quartz on every instant, this module keeps the calendar as wall
fields and normalizes at exactly the points where Quartz calls ``get``, then jumps field by
field with ``bisect`` over sorted value tuples (Quartz's ``TreeSet.tailSet``), never second
by second.

Pure: epoch seconds in, epoch seconds out; the zone rules come from ``zoneinfo``.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from aggsched.cron._parse import ParsedFields

Fields = tuple[int, int, int, int, int, int]  # year, month 0-11, day, hour, minute, second

_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_EPOCH_NAIVE = datetime(1970, 1, 1)
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


class Zone:
    """Java's view of one IANA zone: fields of an instant, and instant of wall fields."""

    __slots__ = ("fixed_offset", "key", "tz")

    def __init__(self, key: str) -> None:
        self.key = key
        self.tz = ZoneInfo(key)
        self.fixed_offset: int | None = None
        if _FIXED_KEYS.fullmatch(key):
            offset = self.tz.utcoffset(datetime(2000, 1, 1))
            self.fixed_offset = int(offset.total_seconds()) if offset is not None else 0

    def fields(self, utc: int) -> Fields:
        """Local wall fields of the instant ``utc`` (epoch seconds)."""
        if self.fixed_offset is not None:
            return split_seconds(utc + self.fixed_offset)
        dt = datetime.fromtimestamp(utc, self.tz)
        return dt.year, dt.month - 1, dt.day, dt.hour, dt.minute, dt.second

    def wall_to_utc(self, y: int, mo: int, d: int, h: int, mi: int, s: int) -> int:
        """The instant Java's lenient calendar gives wall fields: in a gap the earlier
        offset applies (time moves forward), in an overlap the later one (standard time)."""
        w = wall_seconds(y, mo, d, h, mi, s)
        if self.fixed_offset is not None:
            return w - self.fixed_offset
        local = (_EPOCH_NAIVE + timedelta(seconds=w)).replace(tzinfo=self.tz)
        first = local.utcoffset()
        second = local.replace(fold=1).utcoffset()
        assert first is not None and second is not None
        return w - min(first, second) // _ONE_SECOND

    def normalizer(self) -> Callable[[int, int, int, int, int, int], Fields]:
        """The function Quartz's ``Calendar.get`` amounts to: re-read fields via the zone."""
        if self.fixed_offset is not None:
            return _normalize_plain
        to_utc, fields = self.wall_to_utc, self.fields

        def normalize(y: int, mo: int, d: int, h: int, mi: int, s: int) -> Fields:
            return fields(to_utc(y, mo, d, h, mi, s))

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
