"""`aggsched query CUBE_ID ...` (answer a semantic query) and `aggsched queries` (the log)."""

from __future__ import annotations

import csv
import sys
from datetime import datetime

import typer
from rich.table import Table
from rich.text import Text

from aggsched.cli.common import (
    JsonOption,
    OrgOption,
    console,
    err_console,
    fail,
    open_store,
    parse_uuid,
    print_json,
)
from aggsched.engine.queries import QueryFailed, QueryRefused, QueryResult, QueryService
from aggsched.planning.query import AttributeRef, OrderBy, Query, QueryError, parse_where
from aggsched.store import queries as query_log
from aggsched.store.errors import StoreError


def _order(text: str) -> OrderBy:
    """`revenue`, `revenue desc` or `-revenue`."""
    text = text.strip()
    if text.startswith("-"):
        return OrderBy(text[1:].strip(), True)
    name, _, direction = text.rpartition(" ")
    if direction.lower() in ("asc", "desc") and name:
        return OrderBy(name.strip(), direction.lower() == "desc")
    return OrderBy(text)


def query(
    cube_id: str = typer.Argument(..., help="Cube id (see `aggsched projects`)."),
    metric: list[str] = typer.Option(..., "--metric", "-m", help="A metric (repeat)."),
    by: list[str] = typer.Option([], "--by", "-b", help="An attribute to group by (repeat)."),
    where: str | None = typer.Option(
        None, "--where", "-w", help="""Filter, e.g. '"Ship Year" = 1995 and revenue > 10'."""
    ),
    order: list[str] = typer.Option([], "--order", help="`name`, `name desc` or `-name`."),
    limit: int = typer.Option(10_000, "--limit", help="Rows to return (at most 100,000)."),
    offset: int = typer.Option(0, "--offset", help="Rows to skip."),
    explain: bool = typer.Option(False, "--explain", help="Print the plan and SQL only."),
    base: bool = typer.Option(False, "--base", help="Answer from the base tables."),
    as_csv: bool = typer.Option(False, "--csv", help="Print CSV."),
    org: str = OrgOption,
    as_json: bool = JsonOption,
) -> None:
    """Answer a semantic query from the best active aggregate (or the base tables)."""
    cube = parse_uuid(cube_id, "cube id")
    try:
        request = Query(
            metrics=tuple(metric), attributes=tuple(AttributeRef(b) for b in by),
            filter=parse_where(where) if where else None,
            order_by=tuple(_order(o) for o in order), limit=limit, offset=offset,
        )  # fmt: skip
    except QueryError as exc:
        fail(f"{exc.field}: {exc.message}", 2)
    with open_store() as store:
        service = QueryService(store)
        try:
            result = service.run(
                org, cube, request, username="cli", explain=explain, use_aggregates=not base
            )
        except QueryRefused as exc:
            fail(f"{exc.field}: {exc}", 2)
        except (QueryFailed, StoreError) as exc:
            fail(str(exc))
        finally:
            service.close()
    _print(result, as_json, as_csv)


def _print(result: QueryResult, as_json: bool, as_csv: bool) -> None:
    served = [
        {"fact": p.fact, "kind": p.kind, "definition": p.definition, "table": p.table}
        for p in result.served_by
    ]
    if as_json:
        print_json(
            {
                "columns": [{"name": n, "type": t} for n, t in result.columns],
                "rows": [list(r) for r in result.rows],
                "served_by": served,
                "served_from": result.served_from,
                "sql": result.sql,
                "duration_ms": round(result.duration_ms, 3),
                "rows_returned": result.rows_returned,
            }
        )
        return
    if as_csv:
        writer = csv.writer(sys.stdout)
        writer.writerow([n for n, _ in result.columns])
        writer.writerows(result.rows)
        return
    if result.explain:
        for part in served:
            console.print(f"{part['fact']}: {_describe(part)}", markup=False, highlight=False)
        typer.echo(result.sql)
        return
    table = Table()
    for name, _type in result.columns:
        table.add_column(Text(name))
    for row in result.rows:
        table.add_row(*(Text("" if v is None else str(v)) for v in row))
    console.print(table)
    where = "; ".join(f"{p['fact']}: {_describe(p)}" for p in served)
    err_console.print(
        f"{result.rows_returned} row(s) in {result.duration_ms:.1f} ms, served by {where}",
        markup=False, highlight=False,
    )  # fmt: skip


def _describe(part: dict[str, object]) -> str:
    if part["kind"] == "base":
        return "the base tables"
    return f"aggregate {part['definition']} ({part['table']})"


def queries(
    cube: str | None = typer.Option(None, "--cube", help="Only this cube id."),
    user: str | None = typer.Option(None, "--user", help="Only this user's queries."),
    served_by: str | None = typer.Option(
        None, "--served-by", help="base, aggregate, mixed or error."
    ),
    since: datetime | None = typer.Option(None, "--since", help="From this time (UTC)."),
    limit: int = typer.Option(50, "--limit", min=1, max=1000),
    org: str = OrgOption,
    as_json: bool = JsonOption,
) -> None:
    """The query log, newest first."""
    cube_id = parse_uuid(cube, "cube id") if cube else None
    with open_store() as store, store.session() as s:
        rows, total = query_log.list_queries(
            s, org, cube_id=cube_id, username=user, served_by=served_by, since=since,
            limit=limit,
        )  # fmt: skip
        data = [
            {
                "id": str(r.id),
                "at": r.created_at.isoformat(),
                "user": r.username,
                "metrics": r.metrics.get("names", []),
                "by": r.attributes.get("names", []),
                "served_by": r.served_by,
                "ms": round(r.duration_ms, 1),
                "rows": r.rows,
                "error": r.error,
            }
            for r in rows
        ]
    if as_json:
        print_json({"total": total, "data": data})
        return
    table = Table("at", "user", "metrics", "by", "served by", "ms", "rows")
    for d in data:
        cells = [
            d["at"][:19], d["user"], ", ".join(d["metrics"]), ", ".join(d["by"]),
            d["served_by"] if not d["error"] else f"error: {d['error'][:60]}", str(d["ms"]),
            str(d["rows"]),
        ]  # fmt: skip
        table.add_row(*(Text(c) for c in cells))
    console.print(table)
    console.print(f"{len(data)} of {total} queries", markup=False)


def register(app: typer.Typer) -> None:
    app.command()(query)
    app.command()(queries)
