"""What every command shares: settings, the store, printing JSON, failing cleanly."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import typer
from rich.console import Console

from aggsched.config import Settings
from aggsched.store import Store

console = Console()
err_console = Console(stderr=True)

OrgOption = typer.Option("default", "--org", help="Organization id.")
JsonOption = typer.Option(False, "--json", help="Print JSON instead of a table.")


@contextmanager
def open_store(settings: Settings | None = None) -> Iterator[Store]:
    """The metadata store of this data directory (migrated on open), closed afterwards."""
    store = Store.from_settings(settings or Settings())
    try:
        yield store
    finally:
        store.dispose()


def fail(message: str, code: int = 1) -> NoReturn:
    err_console.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(code)


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


def parse_uuid(value: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        fail(f"{what} {value!r} is not a UUID", 2)
