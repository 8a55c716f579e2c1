"""`aggsched build CUBE_ID`: run one batch in the foreground, or show its plan."""

from __future__ import annotations

import signal
from datetime import timedelta
from types import FrameType

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from aggsched.cli.common import (
    JsonOption,
    OrgOption,
    console,
    err_console,
    fail,
    open_store,
    parse_uuid,
    print_json,
    styled,
)
from aggsched.config import Settings
from aggsched.engine.builds import BatchRunner, CancelToken, build_now, preview_batch
from aggsched.planning.plan import BatchType, Step
from aggsched.store.errors import StoreError
from aggsched.store.models import InstanceStatus


def build(
    cube_id: str = typer.Argument(..., help="Cube id (see `aggsched projects`)."),
    full: bool = typer.Option(False, "--full", help="Rebuild every aggregate from scratch."),
    pending_only: bool = typer.Option(
        False, "--pending-only", help="Only build aggregates that have no active table."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan; change nothing."),
    org: str = OrgOption,
    as_json: bool = JsonOption,
) -> None:
    """Build a cube's aggregates now: incremental where possible (default), or --full."""
    cube = parse_uuid(cube_id, "cube id")
    kind = BatchType.INCREMENTAL_REBUILD
    if full:
        kind = BatchType.FULL_REBUILD
    elif pending_only:
        kind = BatchType.MATERIALIZE_PENDING
    settings = Settings()
    with open_store(settings) as store:
        try:
            if dry_run:
                _print_plan(preview_batch(store, org, cube, kind), as_json)
                return
            report = _run(store, org, cube, kind, as_json, settings)
        except StoreError as exc:
            fail(str(exc))
    rows = [
        {
            "aggregate": r.name,
            "mode": r.mode.value,
            "source": r.source or "base tables",
            "status": r.status.value,
            "rows": r.rows,
            "seconds": round(r.seconds, 3),
            # only a built aggregate has a table: a failed build's was dropped (or, built in
            # place, rolled back into the active instance's table)
            "table": r.table if r.status is InstanceStatus.ACTIVE else None,
            "error": r.error,
        }
        for r in report.steps
    ]
    if as_json:
        print_json({"batch_id": str(report.batch_id), "status": report.status.value,
                    "message": report.message, "aggregates": rows})  # fmt: skip
    else:
        table = Table("aggregate", "mode", "source", "rows", "seconds", "status")
        for r in rows:
            colour = "green" if r["status"] == "active" else "red"
            table.add_row(
                r["aggregate"], r["mode"], r["source"], str(r["rows"] or ""),
                f"{r['seconds']:.2f}", styled((r["status"], colour)),
            )  # fmt: skip
        console.print(table)
        for r in rows:
            if r["error"]:
                console.print(styled((r["aggregate"], "red"), ": ", r["error"]))
        console.print(styled(f"batch {report.batch_id}: ", (report.status.value, "bold")))
    if report.status.value != "done":
        raise typer.Exit(1)


def _run(store, org: str, cube, kind: BatchType, quiet: bool, settings: Settings):  # type: ignore[no-untyped-def]
    token = CancelToken()

    def on_signal(_sig: int, _frame: FrameType | None) -> None:
        token.cancel("interrupted from the command line")

    previous = signal.signal(signal.SIGINT, on_signal)
    progress = Progress(
        TextColumn("{task.description}", markup=False), BarColumn(),
        TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(), console=console,
        disable=quiet, transient=True,
    )  # fmt: skip
    task = progress.add_task("building", total=None)

    def on_plan(steps: list[Step]) -> None:
        progress.update(task, total=len(steps))

    def on_step(result) -> None:  # type: ignore[no-untyped-def]
        progress.update(task, advance=1, description=result.name)

    runner = BatchRunner(store, on_plan=on_plan, on_step=on_step,
                         heartbeat_seconds=settings.heartbeat_seconds)  # fmt: skip
    stale_after = timedelta(seconds=settings.stale_after_seconds)
    try:
        with progress:
            return build_now(store, runner, org, cube, kind, token=token,
                             stale_after=stale_after, on_wait=err_console.print)  # fmt: skip
    finally:
        signal.signal(signal.SIGINT, previous)


def _print_plan(steps, as_json: bool) -> None:  # type: ignore[no-untyped-def]
    if as_json:
        print_json(
            [
                {"order": i, "aggregate": s.name, "mode": s.mode.value,
                 "source": s.source or "base tables", "sql": s.sql, "problem": s.problem}
                for i, s in enumerate(steps, 1)
            ]
        )  # fmt: skip
        return
    if not steps:
        console.print("nothing to build")
    for i, step in enumerate(steps, 1):
        source = step.source or "base tables"
        console.print(styled((f"{i}. {step.name}", "bold"), f" ({step.mode.value}, from {source})"))
        if step.problem:
            console.print(styled("   ", (step.problem, "red")))
        else:
            # SQL as is, one statement a line, never wrapped (a wrap inside a string literal
            # would change the values of pasted SQL): the terminal soft-wraps it
            typer.echo(f"{step.sql};")


def register(app: typer.Typer) -> None:
    app.command()(build)
