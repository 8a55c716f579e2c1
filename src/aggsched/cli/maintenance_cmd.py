"""`aggsched maintenance run`: an organization's aggregate maintenance, now."""

from __future__ import annotations

from dataclasses import asdict

import typer

from aggsched.cli.common import JsonOption, OrgOption, console, fail, open_store, print_json
from aggsched.engine.maintenance import run_maintenance
from aggsched.store import StoreError

maintenance_app = typer.Typer(help="Aggregate maintenance.", no_args_is_help=True)


@maintenance_app.command("run")
def run_command(
    org: str = OrgOption,
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Report what would be done; change nothing, record nothing."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Health-check the active aggregate tables, drop stray and expired tables, prune old
    history; recorded as a `maintenance` batch (exit 1 when an item had a problem)."""
    with open_store() as store:
        try:
            report = run_maintenance(store, org, dry_run=dry_run, requested_by="cli")
        except StoreError as exc:
            fail(str(exc))
    if as_json:
        print_json({"batch_id": str(report.batch_id or ""), "org_id": report.org_id,
                    "dry_run": report.dry_run, "status": report.status.value,
                    "items": [asdict(i) for i in report.items]})  # fmt: skip
    else:
        title = "dry run" if dry_run else f"batch {report.batch_id}: {report.status.value}"
        console.print(f"maintenance of {org!r} ({title})", markup=False)
        for item in report.items:
            console.print(f"  {item.name}: {item.count} change(s)", markup=False)
            for line in item.actions:
                console.print(f"    - {line}", markup=False, highlight=False)
            for line in item.problems:
                console.print(f"    ! {line}", markup=False, highlight=False)
            for line in item.notes:
                console.print(f"    . {line}", markup=False, highlight=False)
    if any(item.problems for item in report.items):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(maintenance_app, name="maintenance")
