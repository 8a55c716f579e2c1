"""A schedule's expression as people read it: plain English, the next fires in its own
time zone, and for a bad expression the parser's message under the position it names.

Validation is the API's own (``next_fire``: the field-count rule and Quartz's parser), so
what the console calls valid is exactly what ``POST .../scheduler`` accepts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from aggsched.api.errors import ApiError
from aggsched.api.routers.schedules import next_fire
from aggsched.cron import CronError, CronExpression, CronSyntaxError
from aggsched.web.format import zone

FIRES_SHOWN = 5
MAX_EXPRESSION = 255
_POSITION = re.compile(r"\(at position (\d+)\)\s*$")


@dataclass(frozen=True)
class CronCheck:
    """The outcome of checking one expression in one zone."""

    expression: str
    time_zone: str
    valid: bool
    description: str = ""
    fires: list[datetime] = field(default_factory=list)  # aware, in the schedule's zone
    message: str = ""
    position: int | None = None  # where in ``expression`` the problem is
    field_name: str = "time_expression"

    @property
    def caret_line(self) -> str:
        """Spaces up to the position and a caret, to print under the expression."""
        if self.position is None:
            return ""
        return " " * min(self.position, len(self.expression)) + "^"


def position_of(problem: str) -> int | None:
    """The position in the API's ``"... (at position N)"`` problem text."""
    found = _POSITION.search(problem)
    return int(found.group(1)) if found else None


def without_position(problem: str) -> str:
    return _POSITION.sub("", problem).strip()


def failure(expression: str, time_zone: str, problem: str, field_name: str) -> CronCheck:
    """A check that failed with the API's problem text for ``field_name``."""
    if field_name == "time_expression":
        return CronCheck(
            expression, time_zone, False, message=without_position(problem),
            position=position_of(problem),
        )  # fmt: skip
    return CronCheck(expression, time_zone, False, message=problem, field_name=field_name)


def check(expression: str, time_zone: str, now: datetime) -> CronCheck:
    """Validate as the API does; describe and list the next fires when valid."""
    zone_name = time_zone.strip() or "UTC"
    if not expression.strip():
        return CronCheck(
            expression, zone_name, False, message="required (a Quartz cron expression)"
        )
    if len(expression) > MAX_EXPRESSION:
        return CronCheck(
            expression, zone_name, False,
            message=f"at most {MAX_EXPRESSION} characters", position=MAX_EXPRESSION,
        )  # fmt: skip
    try:
        next_fire(expression, zone_name, now)
    except ApiError as exc:
        problem = exc.errors[0] if exc.errors else None
        name = problem.field if problem else "time_expression"
        return failure(expression, zone_name, problem.problem if problem else exc.message, name)
    return describe(expression, zone_name, now)


def describe(expression: str, time_zone: str, now: datetime, count: int = FIRES_SHOWN) -> CronCheck:
    """A stored (valid) expression: its description and next ``count`` fires."""
    try:
        cron = CronExpression.parse(expression, time_zone)
    except CronSyntaxError as exc:
        return CronCheck(expression, time_zone, False, message=exc.message, position=exc.position)
    except CronError as exc:
        return CronCheck(expression, time_zone, False, message=str(exc), field_name="time_zone")
    local = zone(time_zone)
    fires = [moment.astimezone(local) for moment in cron.next_n(now, count)]
    return CronCheck(expression, time_zone, True, description=cron.describe(), fires=fires)
