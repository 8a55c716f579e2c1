"""``aggsched cron``: check a Quartz expression and list its next fire times.

Lets people try a ``time_expression`` before they POST a schedule, and see exactly when it
will fire (in UTC, the API's convention) and what it means in words.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated

import typer

from aggsched.cron import CronError, CronExpression, CronSyntaxError

EXIT_INVALID = 2

cron_app = typer.Typer(
    name="cron",
    help="Quartz cron expressions: validate, describe, list next fire times.",
    no_args_is_help=True,
)

ExprArg = Annotated[str, typer.Argument(help='Quartz expression, e.g. "0 25 06 ? * *".')]
TzOpt = Annotated[str, typer.Option("--tz", help="IANA time zone the expression runs in.")]


def register(app: typer.Typer) -> None:
    """Add the ``cron`` command group to the root CLI."""
    app.add_typer(cron_app, name="cron")


def _format(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_after(text: str | None) -> datetime:
    """``--after`` as an instant: ISO-8601; a time without offset is taken as UTC."""
    if text is None:
        return datetime.now(UTC)
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not an ISO-8601 date-time (e.g. 2026-11-30T06:25:00Z)",
            param_hint="--after",
        ) from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _load(expr: str, tz: str) -> CronExpression:
    """Parse, or print where the expression is wrong and exit with status 2."""
    try:
        return CronExpression.parse(expr, tz)
    except CronSyntaxError as exc:
        typer.echo(f"invalid cron expression: {exc.message}", err=True)
        typer.echo(f"  {expr}", err=True)
        typer.echo("  " + " " * exc.position + "^", err=True)
    except CronError as exc:
        typer.echo(f"invalid: {exc}", err=True)
    raise typer.Exit(EXIT_INVALID)


@cron_app.command("next")
def next_command(
    expr: ExprArg,
    tz: TzOpt = "UTC",
    after: Annotated[
        str | None, typer.Option("--after", help="Start instant, ISO-8601 (default: now).")
    ] = None,
    count: Annotated[int, typer.Option("--count", "-n", min=1, max=10_000)] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
) -> None:
    """Print the next fire times (UTC, ISO-8601), one per line."""
    cron = _load(expr, tz)
    times = [_format(t) for t in cron.next_n(_parse_after(after), count)]
    if as_json:
        typer.echo(json.dumps(times))
        return
    for line in times:
        typer.echo(line)
    if not times:
        typer.echo("(no further fire times: the schedule has ended)", err=True)


@cron_app.command("check")
def check_command(expr: ExprArg, tz: TzOpt = "UTC") -> None:
    """Validate the expression and describe it in plain English."""
    typer.echo(_load(expr, tz).describe())
