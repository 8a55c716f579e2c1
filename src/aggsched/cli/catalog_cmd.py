"""`aggsched publish`, `aggsched connection ...`, `aggsched projects`."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from aggsched.cli.common import (
    JsonOption,
    OrgOption,
    console,
    err_console,
    fail,
    open_store,
    print_json,
    styled,
)
from aggsched.engine.publish import PublishError, publish_path
from aggsched.planning.sqlgen import dialect_name
from aggsched.sml import SourceError
from aggsched.store import aggregates, catalog
from aggsched.store.errors import StoreError
from aggsched.warehouse import WarehouseConfigError, redact_url, validate_url

connection_app = typer.Typer(help="Map SML connections to warehouses.", no_args_is_help=True)


def publish(
    path: Path = typer.Argument(..., help="SML repository: a folder, .zip or .tar.gz."),
    org: str = OrgOption,
    as_json: bool = JsonOption,
    strict: bool = typer.Option(
        False, "--strict", help="Refuse the whole repository when any aggregate is invalid."
    ),
) -> None:
    """Validate an SML repository and publish it: a broken model publishes nothing; an
    aggregate that cannot be built as written is kept as `invalid` with its reason."""
    with open_store() as store:
        try:
            result = publish_path(store, path, org_id=org, published_by="cli", strict=strict)
        except PublishError as exc:
            if as_json:
                print_json({"ok": False, "errors": [_error_dict(e) for e in exc.errors]})
            for error in exc.errors:
                err_console.print(str(error))
            fail(f"{len(exc.errors)} error(s); nothing was published")
        except (SourceError, StoreError, OSError) as exc:
            fail(str(exc))
    if as_json:
        print_json(
            {
                "ok": True,
                "project_id": str(result.project_id),
                "project": result.project,
                "cubes": {k: str(v) for k, v in result.cubes.items()},
                "changes": [
                    {
                        "cube": c.cube,
                        "aggregate": c.definition,
                        "change": c.change.value,
                        "reason": c.reason,
                    }
                    for c in result.changes
                ],
                "queued_batches": [str(b) for b in result.queued_batches],
                "warnings": [_error_dict(w) for w in result.warnings],
            }
        )
        return
    for warning in result.warnings:
        err_console.print(styled(("warning:", "yellow"), f" {warning}"))
    console.print(styled("published project ", (result.project, "bold"), f" ({result.project_id})"))
    for name, cube_id in result.cubes.items():
        console.print(f"  cube {name}: {cube_id}")
    counts: dict[str, int] = {}
    for change in result.changes:
        counts[change.change.value] = counts.get(change.change.value, 0) + 1
    console.print("  aggregates: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
    for change in result.changes:
        if change.reason:
            console.print(
                f"  invalid aggregate {change.cube}/{change.definition}: {change.reason}",
                markup=False, highlight=False,
            )  # fmt: skip
    for batch in result.queued_batches:
        console.print(f"  queued build batch {batch}")


def _error_dict(error: object) -> dict[str, object]:
    return {
        "file": getattr(error, "file", None),
        "line": getattr(error, "line", None),
        "path": getattr(error, "yaml_path", None),
        "message": getattr(error, "message", str(error)),
    }


@connection_app.command("add")
def connection_add(
    name: str = typer.Argument(..., help="The SML connection's unique_name."),
    url: str = typer.Argument(
        ..., help="duckdb:///path/file.duckdb or postgresql://user:${PGPASSWORD}@host/db"
    ),
    aggregate_schema: str = typer.Option("as_agg", help="Schema that receives aggregates."),
    database: str | None = typer.Option(None, help="Override the SML connection's database."),
    schema: str | None = typer.Option(None, help="Override the SML connection's schema."),
    sql_dialect: str | None = typer.Option(
        None,
        "--sql-dialect",
        help="Dialect the model's SQL is written in (snowflake, postgres, databricks, "
        "bigquery, duckdb ...); default: the platform the SML connection's as_connection names.",
    ),
    org: str = OrgOption,
) -> None:
    """Create or replace a connection mapping (secrets stay in ${ENV} placeholders)."""
    try:
        validate_url(url)
    except WarehouseConfigError as exc:
        fail(str(exc), 2)
    try:
        sql_dialect = dialect_name(sql_dialect) if sql_dialect else None
    except ValueError as exc:
        fail(str(exc), 2)
    with open_store() as store, store.session() as s:
        try:
            catalog.get_org(s, org)
            catalog.upsert_connection(
                s, org, name, url, aggregate_schema=aggregate_schema,
                database_override=database, schema_override=schema, sql_dialect=sql_dialect,
            )  # fmt: skip
        except StoreError as exc:
            fail(str(exc))
    console.print(f"connection {name!r} -> {redact_url(url)}")


@connection_app.command("list")
def connection_list(org: str = OrgOption, as_json: bool = JsonOption) -> None:
    """List connection mappings."""
    with open_store() as store, store.session() as s:
        rows = [
            {
                "name": c.name,
                "url": redact_url(c.url),
                "aggregate_schema": c.aggregate_schema,
                "database": c.database_override,
                "schema": c.schema_override,
                "sql_dialect": c.sql_dialect,
            }
            for c in catalog.list_connections(s, org)
        ]
    if as_json:
        print_json(rows)
        return
    table = Table("name", "url", "aggregate schema", "database", "schema", "sql dialect")
    for row in rows:
        table.add_row(*(str(row[k] or "") for k in row))
    console.print(table)


def projects(org: str = OrgOption, as_json: bool = JsonOption) -> None:
    """Projects, cubes and aggregate definitions with the status of their instances."""
    with open_store() as store, store.session() as s:
        data = []
        for project in catalog.list_projects(s, org):
            cubes = []
            for cube in catalog.list_cubes(s, project.id):
                definitions = []
                for d in aggregates.cube_definitions(s, cube.id, include_removed=False):
                    latest = aggregates.definition_instances(s, d.id)
                    active = aggregates.active_instance(s, d.id)
                    definitions.append(
                        {
                            "id": str(d.id),
                            "name": d.unique_name,
                            "type": d.type,
                            "subtype": d.subtype,
                            "blocked": d.blocked,
                            "status": "invalid"
                            if d.invalid_reason
                            else (latest[0].status if latest else None),
                            "invalid_reason": d.invalid_reason,
                            "justification": d.justification,
                            "table": f"{active.table_schema}.{active.table_name}"
                            if active
                            else None,
                            "rows": active.number_of_rows if active else None,
                        }
                    )
                cubes.append(
                    {"id": str(cube.id), "name": cube.unique_name, "aggregates": definitions}
                )
            data.append({"id": str(project.id), "name": project.unique_name, "cubes": cubes})
    if as_json:
        print_json(data)
        return
    for project in data:
        console.print(styled((project["name"], "bold"), f" {project['id']}"))
        for cube in project["cubes"]:
            console.print(styled("  cube ", (cube["name"], "bold"), f" {cube['id']}"))
            table = Table("aggregate", "type", "status", "rows", "table", box=None)
            for d in cube["aggregates"]:
                status = d["status"] + (" (blocked)" if d["blocked"] else "")
                table.add_row(
                    d["name"], d["subtype"], status, str(d["rows"] or ""), d["table"] or ""
                )
            console.print(table)
            for d in cube["aggregates"]:
                if d["invalid_reason"]:
                    console.print(
                        f"    {d['name']} is invalid: {d['invalid_reason']}",
                        markup=False, highlight=False,
                    )  # fmt: skip


def register(app: typer.Typer) -> None:
    app.command()(publish)
    app.command()(projects)
    app.add_typer(connection_app, name="connection")
