"""Parse Quartz 2.3 cron text exactly the way ``org.quartz.CronExpression`` does.

Quartz's parser is lenient in odd places (trailing junk after a value is often ignored,
``L`` in the seconds field is accepted, eight fields are fine) and strict in others. The
scheduler must agree with Quartz on which expressions are valid and what they mean, so this
module re-enacts Quartz's character-by-character walk instead of using a tidy grammar.
Where Java would throw an unchecked exception (``NumberFormatException``,
``StringIndexOutOfBoundsException``...), Quartz reports "Illegal cron expression format";
``_JavaError`` plays that part here.

Pure: text in, a ``ParsedFields`` (sorted value tuples and flags) or a ``CronSyntaxError`` out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SECOND, MINUTE, HOUR, DAY_OF_MONTH, MONTH, DAY_OF_WEEK, YEAR = range(7)
ALL_SPEC = 99  # Quartz's marker for '*' (kept in the sets, like Quartz does)
NO_SPEC = 98  # Quartz's marker for '?'
FIELD_NAMES = ("seconds", "minutes", "hours", "day-of-month", "month", "day-of-week", "year")

_MONTHS = {
    m: i
    for i, m in enumerate(
        ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
    )
}
_DAYS = {d: i + 1 for i, d in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"))}
_L_SPECIAL = re.compile(r"L-[0-9]*W?")
_JAVA_INT = re.compile(r"[+-]?[0-9]+")
_INT_MAX = 2**31 - 1


class CronError(ValueError):
    """Base class of every error this package raises for bad caller input."""


class CronSyntaxError(CronError):
    """The cron text is not a valid Quartz expression.

    ``message`` is modelled on Quartz's own message; ``position`` is a 0-based character
    offset into the original text pointing at the offending part.
    """

    def __init__(self, message: str, position: int) -> None:
        super().__init__(f"{message} (at position {position})")
        self.message = message
        self.position = position


class _ParseError(Exception):
    """Quartz's ``ParseException``: message plus an offset local to the current value."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset


class _JavaError(Exception):
    """An unchecked Java exception Quartz would have wrapped as 'Illegal ... format'."""


@dataclass(frozen=True, slots=True)
class ParsedFields:
    """Quartz's parse result: one sorted tuple per field (markers included) and flags."""

    seconds: tuple[int, ...]
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days_of_month: tuple[int, ...]
    months: tuple[int, ...]
    days_of_week: tuple[int, ...]
    years: tuple[int, ...]
    last_day_of_week: bool
    nth_day_of_week: int
    last_day_of_month: bool
    nearest_weekday: bool
    last_day_offset: int

    @property
    def by_day_of_month(self) -> bool:
        """True when the day-of-month field drives day selection (day-of-week is '?')."""
        return NO_SPEC in self.days_of_week


def _char_at(s: str, i: int) -> str:
    if not 0 <= i < len(s):
        raise _JavaError(f"java.lang.StringIndexOutOfBoundsException: index {i}, length {len(s)}")
    return s[i]


def _substring(s: str, begin: int, end: int) -> str:
    if begin < 0 or end > len(s) or begin > end:
        raise _JavaError(
            f"java.lang.StringIndexOutOfBoundsException: begin {begin}, end {end}, length {len(s)}"
        )
    return s[begin:end]


def shown(text: str, limit: int = 32) -> str:
    """User input as a message echoes it: printable characters as they are, any other
    escaped (a lone surrogate cannot be encoded in a response, a NUL should not be sent
    back), and cut after ``limit`` characters (a 10,000-digit number is not repeated)."""
    head = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text[:limit])
    return head + (f"... ({len(text)} characters)" if len(text) > limit else "")


def _parse_int(text: str) -> int:
    """``Integer.parseInt``: optional sign, ASCII digits, 32-bit range. The digits are
    counted before ``int()`` sees them: Python refuses to convert more than 4,300 digits
    (and converting a huge number is slow), Java just overflows."""
    significant = text.lstrip("+-").lstrip("0")
    if (
        not _JAVA_INT.fullmatch(text)
        or len(significant) > len(str(_INT_MAX))
        or not -(2**31) <= int(text) <= _INT_MAX
    ):
        raise _JavaError(f'java.lang.NumberFormatException: For input string: "{shown(text)}"')
    return int(text)


def _is_digit(c: str) -> bool:
    return "0" <= c <= "9"


@dataclass(slots=True)
class _Value:
    value: int
    pos: int


class _QuartzParser:
    """Mutable parse state, mirroring the fields of Quartz's ``CronExpression``."""

    def __init__(self, max_year: int) -> None:
        self.max_year = max_year
        self.sets: list[set[int]] = [set() for _ in range(7)]
        self.last_day_of_week = False
        self.nth_day_of_week = 0
        self.last_day_of_month = False
        self.nearest_weekday = False
        self.last_day_offset = 0

    # -- storeExpressionVals -------------------------------------------------------------
    def store(self, s: str, kind: int) -> None:
        """Quartz ``storeExpressionVals(0, s, type)`` (its return value is unused)."""
        c = s[0]
        if "A" <= c <= "Z" and s not in ("L", "LW") and not _L_SPECIAL.fullmatch(s):
            self._store_name(s, kind)
        elif c == "?":
            self._store_no_spec(s, kind)
        elif c in "*/":
            self._store_all(s, kind)
        elif c == "L":
            self._store_last(s, kind)
        elif _is_digit(c):
            self._store_number(s, kind)
        else:
            raise _ParseError(f"Unexpected character: {shown(c)}", 0)

    def _store_name(self, s: str, kind: int) -> None:
        i = 0
        sub = _substring(s, i, i + 3)
        end = -1
        if kind == MONTH:
            start = _MONTHS.get(sub, -1) + 1
            if start <= 0:
                raise _ParseError(f"Invalid Month value: '{shown(sub)}'", i)
            if len(s) > i + 3 and s[i + 3] == "-":
                i += 4
                sub = _substring(s, i, i + 3)
                end = _MONTHS.get(sub, -1) + 1
                if end <= 0:
                    raise _ParseError(f"Invalid Month value: '{shown(sub)}'", i)
        elif kind == DAY_OF_WEEK:
            start = _DAYS.get(sub, -1)
            if start < 0:
                raise _ParseError(f"Invalid Day-of-Week value: '{shown(sub)}'", i)
            if len(s) > i + 3:
                c = s[i + 3]
                if c == "-":
                    i += 4
                    sub = _substring(s, i, i + 3)
                    end = _DAYS.get(sub, -1)
                    if end < 0:
                        raise _ParseError(f"Invalid Day-of-Week value: '{shown(sub)}'", i)
                elif c == "#":
                    i += 4
                    self.nth_day_of_week = self._nth(s[i:], i)
                elif c == "L":
                    self.last_day_of_week = True
        else:
            raise _ParseError(f"Illegal characters for this position: '{shown(sub)}'", i)
        self.add(start, end, 1 if end != -1 else 0, kind)

    @staticmethod
    def _nth(text: str, offset: int) -> int:
        try:
            nth = _parse_int(text)
        except _JavaError:
            nth = 0
        if not 1 <= nth <= 5:
            raise _ParseError("A numeric value between 1 and 5 must follow the '#' option", offset)
        return nth

    def _store_no_spec(self, s: str, kind: int) -> None:
        i = 1
        if i + 1 < len(s) and s[i] != " " and s[i + 1] != "\t":
            raise _ParseError(f"Illegal character after '?': {shown(s[i])}", i)
        if kind not in (DAY_OF_WEEK, DAY_OF_MONTH):
            raise _ParseError("'?' can only be specified for Day-of-Month or Day-of-Week.", i)
        if kind == DAY_OF_WEEK and not self.last_day_of_month:
            dom = self.sets[DAY_OF_MONTH]
            if not dom:
                raise _JavaError("java.util.NoSuchElementException")
            if max(dom) == NO_SPEC:
                raise _ParseError("'?' can only be specified for Day-of-Month -OR- Day-of-Week.", i)
        self.add(NO_SPEC, -1, 0, kind)

    def _store_all(self, s: str, kind: int) -> None:
        c = s[0]
        i = 0
        if c == "*" and len(s) == 1:
            self.add(ALL_SPEC, -1, 0, kind)
            return
        if c == "/" and (len(s) == 1 or s[1] in " \t"):
            raise _ParseError("'/' must be followed by an integer.", 0)
        if c == "*":
            i = 1
        if _char_at(s, i) == "/":
            i += 1
            if i >= len(s):
                raise _ParseError("Unexpected end of string.", i)
            incr = _parse_int(s[i:])  # Quartz's findNextWhiteSpace always runs to the end
            _check_increment(incr, kind, i)  # (Quartz reports an offset past the number)
        else:
            incr = 1
        self.add(ALL_SPEC, -1, incr, kind)

    def _store_last(self, s: str, kind: int) -> None:
        i = 1
        if kind == DAY_OF_MONTH:
            self.last_day_of_month = True
        if kind == DAY_OF_WEEK:
            self.add(7, 7, 0, kind)
        if kind != DAY_OF_MONTH or len(s) <= i:
            return
        if s[i] == "-":
            v = _get_value(0, s, i + 1)
            self.last_day_offset = v.value
            if v.value > 30:
                raise _ParseError("Offset from last day must be <= 30", i + 1)
            i = v.pos
        if len(s) > i and s[i] == "W":
            self.nearest_weekday = True

    def _store_number(self, s: str, kind: int) -> None:
        val = int(s[0])
        i = 1
        if i >= len(s):
            self.add(val, -1, -1, kind)
            return
        if _is_digit(s[i]):
            v = _get_value(val, s, i)
            val, i = v.value, v.pos
        self._check_next(i, s, val, kind)

    # -- checkNext -------------------------------------------------------------------------
    def _check_next(self, i: int, s: str, val: int, kind: int) -> None:
        if i >= len(s):
            self.add(val, -1, -1, kind)
            return
        c = s[i]
        if c == "L":
            if kind != DAY_OF_WEEK:
                raise _ParseError(f"'L' option is not valid here. (pos={i})", i)
            if not 1 <= val <= 7:
                raise _ParseError("Day-of-Week values must be between 1 and 7", -1)
            self.last_day_of_week = True
            self.sets[kind].add(val)
        elif c == "W":
            if kind != DAY_OF_MONTH:
                raise _ParseError(f"'W' option is not valid here. (pos={i})", i)
            self.nearest_weekday = True
            if val == 0:  # Deliberate deviation: Quartz accepts 0W, then loops forever.
                raise _ParseError(
                    "The 'W' option needs a day of the month from 1 to 31 (Quartz accepts "
                    "'0W' but never finds a fire time)",
                    i,
                )
            if val > 31:
                raise _ParseError(
                    "The 'W' option does not make sense with values larger than 31 "
                    "(max number of days in a month)",
                    i,
                )
            self.sets[kind].add(val)
        elif c == "#":
            if kind != DAY_OF_WEEK:
                raise _ParseError(f"'#' option is not valid here. (pos={i})", i)
            self.nth_day_of_week = self._nth(s[i + 1 :], i + 1)
            self.sets[kind].add(val)
        elif c == "-":
            self._range(i, s, val, kind)
        elif c == "/":
            self._step(i, s, val, kind)
        else:
            self.add(val, -1, 0, kind)

    def _range(self, i: int, s: str, val: int, kind: int) -> None:
        i += 1
        end = _parse_int(_char_at(s, i))
        v = end
        i += 1
        if i >= len(s):
            self.add(val, end, 1, kind)
            return
        if _is_digit(s[i]):
            got = _get_value(v, s, i)
            end, i = got.value, got.pos
        if not (i < len(s) and s[i] == "/"):
            self.add(val, end, 1, kind)
            return
        i += 1
        step = _parse_int(_char_at(s, i))
        i += 1
        if i < len(s) and _is_digit(s[i]):
            step = _get_value(step, s, i).value
        self.add(val, end, step, kind)

    def _step(self, i: int, s: str, val: int, kind: int) -> None:
        if i + 1 >= len(s) or s[i + 1] in " \t":
            raise _ParseError("'/' must be followed by an integer.", i)
        i += 1
        step = _parse_int(s[i])
        i += 1
        if i < len(s):
            if not _is_digit(s[i]):
                raise _ParseError(f"Unexpected character '{shown(s[i])}' after '/'", i)
            step = _get_value(step, s, i).value
        _check_increment(step, kind, i)
        self.add(val, -1, step, kind)

    # -- addToSet --------------------------------------------------------------------------
    def add(self, val: int, end: int, incr: int, kind: int) -> None:
        """Quartz ``addToSet``: validate the bounds, then add one value or a stepped range."""
        _check_bounds(val, end, kind)
        target = self.sets[kind]
        if incr in (0, -1) and val != ALL_SPEC:
            target.add(val if val != -1 else NO_SPEC)
            return
        if val == ALL_SPEC and incr <= 0:
            incr = 1
            target.add(ALL_SPEC)
        low, high, modulus = _DEFAULTS[kind] if kind != YEAR else (1970, self.max_year, 0)
        start = low if val in (-1, ALL_SPEC) else val
        stop = high if end == -1 else end
        if stop < start:
            if kind == YEAR:
                raise _JavaError(
                    "java.lang.IllegalArgumentException: Start year must be less than stop year"
                )
            stop += modulus
            for i in range(start, stop + 1, incr):
                value = i % modulus
                target.add(modulus if value == 0 and kind >= DAY_OF_MONTH else value)
            return
        if kind == YEAR:  # years past max_year never fire; don't materialize huge ranges
            stop = min(stop, max(self.max_year + 1, start))
        target.update(range(start, stop + 1, incr))


# (first value, last value, wrap-around modulus) per field, as in Quartz's addToSet
_DEFAULTS = {
    SECOND: (0, 59, 60),
    MINUTE: (0, 59, 60),
    HOUR: (0, 23, 24),
    DAY_OF_MONTH: (1, 31, 31),
    MONTH: (1, 12, 12),
    DAY_OF_WEEK: (1, 7, 7),
}

_BOUNDS_MESSAGES = {
    SECOND: "Minute and Second values must be between 0 and 59",
    MINUTE: "Minute and Second values must be between 0 and 59",
    HOUR: "Hour values must be between 0 and 23",
    DAY_OF_MONTH: "Day of month values must be between 1 and 31",
    MONTH: "Month values must be between 1 and 12",
    DAY_OF_WEEK: "Day-of-Week values must be between 1 and 7",
}


def _check_bounds(val: int, end: int, kind: int) -> None:
    if kind == YEAR or val == ALL_SPEC:
        return
    if kind in (DAY_OF_MONTH, DAY_OF_WEEK) and val == NO_SPEC:
        return
    low, high, _ = _DEFAULTS[kind]
    if kind == DAY_OF_WEEK:
        bad = val == 0 or val > high or end > high
    else:
        bad = val < low or val > high or end > high
    if bad:
        raise _ParseError(_BOUNDS_MESSAGES[kind], -1)


_INCREMENT_LIMITS = {
    SECOND: (59, 60),
    MINUTE: (59, 60),
    HOUR: (23, 24),
    DAY_OF_MONTH: (31, 31),
    DAY_OF_WEEK: (7, 7),
    MONTH: (12, 12),
}


def _check_increment(incr: int, kind: int, offset: int) -> None:
    limit = _INCREMENT_LIMITS.get(kind)
    if limit is not None and incr > limit[0]:
        raise _ParseError(f"Increment > {limit[1]} : {incr}", offset)


def _get_value(v: int, s: str, i: int) -> _Value:
    """Quartz ``getValue``: append the digits at ``i`` to ``v``; pos past them (quirky)."""
    c = _char_at(s, i)
    digits = str(v)
    while _is_digit(c):
        digits += c
        i += 1
        if i >= len(s):
            break
        c = s[i]
    return _Value(_parse_int(digits), i if i < len(s) else i + 1)


# -- tokenizing with positions ------------------------------------------------------------
def _split_keep_offsets(text: str, delimiters: str) -> list[tuple[str, int]]:
    """``StringTokenizer`` semantics (empty pieces dropped), remembering each start offset."""
    pieces: list[tuple[str, int]] = []
    start = None
    for i, c in enumerate(text):
        if c in delimiters:
            if start is not None:
                pieces.append((text[start:i], start))
                start = None
        elif start is None:
            start = i
    if start is not None:
        pieces.append((text[start:], start))
    return pieces


def _java_trim(token: str, offset: int) -> tuple[str, int]:
    """``String.trim()``: drop chars <= U+0020 at both ends, tracking the new offset."""
    lead = 0
    while lead < len(token) and token[lead] <= " ":
        lead += 1
    tail = len(token)
    while tail > lead and token[tail - 1] <= " ":
        tail -= 1
    return token[lead:tail], offset + lead


def _java_upper(text: str) -> str:
    upper = text.upper()
    return upper if len(upper) == len(text) else text.translate(_ASCII_UPPER)


_ASCII_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _check_token(token: str, kind: int) -> None:
    """Quartz's whole-field checks, made before the field's values are parsed."""
    if "L" in token and len(token) > 1 and "," in token:
        if kind == DAY_OF_MONTH:
            raise _ParseError(
                "Support for specifying 'L' and 'LW' with other days of the month is not "
                "implemented",
                -1,
            )
        if kind == DAY_OF_WEEK:
            raise _ParseError(
                "Support for specifying 'L' with other days of the week is not implemented", -1
            )
    if kind == DAY_OF_WEEK and token.count("#") > 1:
        raise _ParseError('Support for specifying multiple "nth" days is not implemented.', -1)


def parse_fields(text: str, max_year: int) -> ParsedFields:
    """Parse ``text`` like Quartz 2.3.2; raise ``CronSyntaxError`` where Quartz would fail.

    ``max_year`` is Quartz's ``MAX_YEAR`` (current year + 100 when Quartz was loaded): it
    bounds the years ``*`` expands to and the years a schedule may fire in.
    """
    upper = _java_upper(text)
    parser = _QuartzParser(max_year)
    tokens = _split_keep_offsets(upper, " \t")[:7]
    for kind, (raw, raw_offset) in enumerate(tokens):
        token, offset = _java_trim(raw, raw_offset)
        _run(lambda t=token, k=kind: _check_token(t, k), offset, len(text))
        for value, value_offset in _split_keep_offsets(token, ","):
            _run(lambda v=value, k=kind: parser.store(v, k), offset + value_offset, len(text))
    if len(tokens) < 6:
        raise CronSyntaxError("Unexpected end of expression.", len(text))
    if len(tokens) == 6:
        parser.add(ALL_SPEC, -1, 0, YEAR)
    sets = parser.sets
    dom_spec = NO_SPEC not in sets[DAY_OF_MONTH]
    dow_spec = NO_SPEC not in sets[DAY_OF_WEEK]
    if dom_spec == dow_spec:
        raise CronSyntaxError(
            "Support for specifying both a day-of-week AND a day-of-month parameter is not "
            "implemented.",
            tokens[DAY_OF_WEEK][1],
        )
    fields = ParsedFields(
        *(tuple(sorted(s)) for s in sets),
        last_day_of_week=parser.last_day_of_week,
        nth_day_of_week=parser.nth_day_of_week,
        last_day_of_month=parser.last_day_of_month,
        nearest_weekday=parser.nearest_weekday,
        last_day_offset=parser.last_day_offset,
    )
    _check_evaluable(fields, tokens)
    return fields


def _run(action: object, offset: int, text_length: int) -> None:
    """Run one Quartz parse step, turning its failures into positioned syntax errors."""
    try:
        action()  # type: ignore[operator]
    except _ParseError as exc:
        position = offset + exc.offset if exc.offset >= 0 else offset
        raise CronSyntaxError(exc.message, min(position, text_length)) from None
    except _JavaError as exc:
        raise CronSyntaxError(f"Illegal cron expression format ({exc})", offset) from None


def _check_evaluable(fields: ParsedFields, tokens: list[tuple[str, int]]) -> None:
    """Reject fields left empty (e.g. ``L`` in the seconds field, or ``,``).

    Quartz accepts these at parse time but throws ``NoSuchElementException`` the first time
    it computes a fire time, so for a scheduler they are just as invalid.
    """
    required = [SECOND, MINUTE, HOUR, MONTH]
    if fields.by_day_of_month:
        if not fields.last_day_of_month:
            required.append(DAY_OF_MONTH)
    else:
        required.append(DAY_OF_WEEK)
    for kind in required:
        if not _field(fields, kind):
            raise CronSyntaxError(
                "Illegal cron expression format (java.util.NoSuchElementException): "
                f"the {FIELD_NAMES[kind]} field has no values",
                tokens[kind][1],
            )


def _field(fields: ParsedFields, kind: int) -> tuple[int, ...]:
    return (
        fields.seconds,
        fields.minutes,
        fields.hours,
        fields.days_of_month,
        fields.months,
        fields.days_of_week,
        fields.years,
    )[kind]
