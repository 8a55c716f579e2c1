"""`aggsched advise CUBE_ID [--apply]`: demand-defined aggregates from the query log."""

from __future__ import annotations

import typer
from rich.table import Table
from rich.text import Text

from aggsched.cli.common import (
    JsonOption,
    OrgOption,
    console,
    fail,
    open_store,
    parse_uuid,
    print_json,
)
from aggsched.engine.advisor import Advisor, AdvisorFailed, report_json
from aggsched.store.errors import StoreError


def advise(
    cube_id: str = typer.Argument(..., help="Cube id (see `aggsched projects`)."),
    apply: bool = typer.Option(False, "--apply", help="Create and retire (default: dry run)."),
    org: str = OrgOption,
    as_json: bool = JsonOption,
) -> None:
    """Propose aggregates for the queries the cube's users ran (and the ones to retire)."""
    cube = parse_uuid(cube_id, "cube id")
    with open_store() as store:
        try:
            report, batch_id = Advisor(store).advise_and_record(
                org, cube, apply=apply, requested_by="cli"
            )
        except (AdvisorFailed, StoreError) as exc:
            fail(str(exc))
    data = {**report_json(report), "batch_id": str(batch_id)}
    if as_json:
        print_json(data)
        return
    console.print(Text(report.message or "nothing to do"))
    table = Table("aggregate", "grain", "metrics", "est. rows", "benefit", "queries")
    for p in data["proposals"]:
        grain = ", ".join(a["name"] for a in p["attributes"]) or "(all)"
        table.add_row(*(Text(str(c)) for c in (
            p["name"], grain, ", ".join(p["metrics"]), f"{p['estimated_rows']:,.0f}",
            f"{p['estimated_benefit']:,.0f}", len(p["justified_by"]),
        )))  # fmt: skip
    if data["proposals"]:
        console.print(table)
    for r in data["retired"]:
        verb = "retired" if apply else "would retire"
        console.print(Text(f"{verb} {r['name']}: {r['why']}"))
    if not apply and data["proposals"]:
        console.print(Text("dry run: nothing changed (--apply creates them)"))


def register(app: typer.Typer) -> None:
    app.command()(advise)
