"""`aggsched db`: the metadata database's schema version, and upgrading it explicitly."""

from __future__ import annotations

import typer

from aggsched.cli.common import console, fail
from aggsched.config import Settings
from aggsched.store import StoreError
from aggsched.store.db import schema_version, upgrade

db_app = typer.Typer(help="The metadata database's schema.", no_args_is_help=True)


def _url(settings: Settings) -> str:
    if not settings.database_url:
        settings.ensure_home()
    return settings.resolved_database_url


@db_app.command("upgrade")
def upgrade_command() -> None:
    """Apply the migrations this aggsched has to the metadata DB (AGGSCHED_DATABASE_URL);
    a database already at this version is left as it is."""
    try:
        before = upgrade(_url(Settings()))
    except StoreError as exc:
        fail(str(exc))
    if before.current:
        console.print(f"schema already at {before.code}", markup=False)
    else:
        console.print(f"schema upgraded from {before.database or 'empty'} to {before.code}",
                      markup=False)  # fmt: skip


@db_app.command("version")
def version_command() -> None:
    """The database's schema revision and the one this aggsched runs on."""
    try:
        version = schema_version(_url(Settings()))
    except StoreError as exc:
        fail(str(exc))
    state = "up to date" if version.current else "needs `aggsched db upgrade`"
    console.print(f"database {version.database or 'empty'}, code {version.code}: {state}",
                  markup=False)  # fmt: skip


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")
