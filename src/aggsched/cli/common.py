"""What every command shares: settings, the store, printing JSON, failing cleanly.

The consoles print with rich markup off: user data (names with square brackets, MDX like
`[Measures].[X]`, SQL) is printed as it is; styling goes through `Text`/`styled` only.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn, get_args

import typer
from rich.console import Console
from rich.text import Text

from aggsched.config import LogLevel, Settings
from aggsched.store import Store, StoreError
from aggsched.telemetry import configure_logging

# soft_wrap: long lines (errors with paths, SQL) are left to the terminal to wrap, never
# broken with newlines that a copy and paste would keep
console = Console(markup=False, highlight=False, soft_wrap=True)
err_console = Console(stderr=True, markup=False, highlight=False, soft_wrap=True)

OrgOption = typer.Option("default", "--org", help="Organization id.")
JsonOption = typer.Option(False, "--json", help="Print JSON instead of a table.")


@contextmanager
def open_store(settings: Settings | None = None) -> Iterator[Store]:
    """The metadata store of this data directory (migrated on open unless
    ``AGGSCHED_AUTO_MIGRATE`` is off), closed afterwards; a store that cannot be opened
    (schema newer than this code, not upgraded, bad URL) is a clean error."""
    try:
        store = Store.from_settings(settings or Settings())
    except StoreError as exc:
        fail(str(exc))
    try:
        yield store
    finally:
        store.dispose()


def styled(*parts: str | tuple[str, str]) -> Text:
    """Text from plain parts and (text, style) pairs; nothing in the text is markup."""
    return Text.assemble(*parts)


def node_settings(settings: Settings) -> Settings:
    """``settings`` with this process's node id fixed, so the node and its log lines
    name the same node."""
    from aggsched.engine.node import default_node_id

    return settings.model_copy(update={"node_id": settings.node_id or default_node_id()})


def setup_logging(settings: Settings, level: str | None = None) -> None:
    """Structured logs for a long-running command (``AGGSCHED_LOG_FORMAT``/``_LEVEL``)."""
    allowed = get_args(LogLevel)
    if level is not None and level.upper() not in allowed:
        fail(f"--log-level {level!r} is not one of {', '.join(allowed)}", 2)
    configure_logging(settings.log_format, level or settings.log_level, node_id=settings.node_id)


def fail(message: str, code: int = 1) -> NoReturn:
    err_console.print(styled(("error:", "red"), " ", message))
    raise typer.Exit(code)


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


def parse_uuid(value: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        fail(f"{what} {value!r} is not a UUID", 2)
