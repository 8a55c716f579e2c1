"""`aggsched build CUBE_ID`: run one batch in the foreground, or show its plan."""

from __future__ import annotations

import signal
from types import FrameType

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.syntax import Syntax
from rich.table import Table

from aggsched.cli.common import (
    JsonOption,
    OrgOption,
    console,
    fail,
    open_store,
    parse_uuid,
    print_json,
)
from aggsched.engine.builds import BatchRunner, CancelToken, build_now, preview_batch
from aggsched.planning.plan import BatchType, Step
from aggsched.store.errors import StoreError


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
    with open_store() as store:
        try:
            if dry_run:
                _print_plan(preview_batch(store, org, cube, kind), as_json)
                return
            report = _run(store, org, cube, kind, as_json)
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
            "table": r.table,
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
                f"{r['seconds']:.2f}", f"[{colour}]{r['status']}[/{colour}]",
            )  # fmt: skip
        console.print(table)
        for r in rows:
            if r["error"]:
                console.print(f"[red]{r['aggregate']}[/red]: {r['error']}", highlight=False)
        console.print(f"batch {report.batch_id}: [bold]{report.status.value}[/bold]")
    if report.status.value != "done":
        raise typer.Exit(1)


def _run(store, org: str, cube, kind: BatchType, quiet: bool):  # type: ignore[no-untyped-def]
    token = CancelToken()

    def on_signal(_sig: int, _frame: FrameType | None) -> None:
        token.cancel("interrupted from the command line")

    previous = signal.signal(signal.SIGINT, on_signal)
    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(), console=console, disable=quiet, transient=True,
    )  # fmt: skip
    task = progress.add_task("building", total=None)

    def on_plan(steps: list[Step]) -> None:
        progress.update(task, total=len(steps))

    def on_step(result) -> None:  # type: ignore[no-untyped-def]
        progress.update(task, advance=1, description=result.name)

    runner = BatchRunner(store, on_plan=on_plan, on_step=on_step)
    try:
        with progress:
            return build_now(store, runner, org, cube, kind, token=token)
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
        console.print(
            f"[bold]{i}. {step.name}[/bold] ({step.mode.value}, from "
            f"{step.source or 'base tables'})"
        )
        if step.problem:
            console.print(f"   [red]{step.problem}[/red]", highlight=False)
        else:
            console.print(Syntax(step.sql or "", "sql", word_wrap=True))


def register(app: typer.Typer) -> None:
    app.command()(build)
