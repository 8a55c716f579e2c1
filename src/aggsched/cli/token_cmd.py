"""`aggsched token create|list|revoke`: long-lived API tokens for scripts.

The tokens `GET /{orgId}/auth` issues last an hour (a browser session); a nightly job
needs one that lasts, as AtScale's 90-day API tokens do. The token is printed once, alone
on stdout (``TOKEN=$(aggsched token create --user etl)``); only its hash is stored.
"""

from __future__ import annotations

from datetime import UTC, datetime

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
from aggsched.store import catalog, tokens
from aggsched.store.errors import StoreError
from aggsched.store.models import ApiToken

token_app = typer.Typer(help="Long-lived API tokens for scripts.", no_args_is_help=True)


def _when(value: datetime | None) -> str:
    return "" if value is None else value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _as_dict(row: ApiToken, username: str) -> dict[str, str]:
    return {
        "id": str(row.id), "user": username, "org": row.org_id, "name": row.name,
        "status": tokens.token_status(row), "created_at": _when(row.created_at),
        "expires_at": _when(row.expires_at), "revoked_at": _when(row.revoked_at),
    }  # fmt: skip


@token_app.command("create")
def token_create(
    user: str = typer.Option(..., "--user", help="User the token acts as."),
    days: int = typer.Option(90, "--days", min=1, max=tokens.MAX_DAYS, help="Lifetime."),
    org: str = OrgOption,
    name: str = typer.Option("", "--name", help="What the token is for."),
) -> None:
    """Create a token for USER in ORG (the user's roles there apply); print it once."""
    with open_store() as store:
        try:
            with store.session() as session:
                catalog.get_org(session, org)
                found = catalog.get_user_by_name(session, user)
                if found is None or not catalog.roles_for(session, found.id, org):
                    fail(f"no user {user!r} with a role in organization {org!r}")
                created = tokens.create_token(
                    session, user=found, org_id=org, days=days, name=name, created_by="cli"
                )
                info = _as_dict(created.row, user)
        except StoreError as exc:
            fail(str(exc))
    typer.echo(created.secret)
    err_console.print(
        f"token {info['id']} for {user!r} in {org!r}, expires {info['expires_at']}; "
        "keep it now, it is not shown again",
        highlight=False,
        markup=False,
    )


@token_app.command("list")
def token_list(
    org: str | None = typer.Option(None, "--org", help="Only this organization."),
    as_json: bool = JsonOption,
) -> None:
    """Every API token (never the token itself): user, organization, status, expiry."""
    with open_store() as store, store.session() as session:
        rows = [_as_dict(row, username) for row, username in tokens.list_tokens(session, org)]
    if as_json:
        print_json(rows)
        return
    table = Table(box=None)
    table.add_column("id", no_wrap=True, min_width=36)  # whole: `token revoke` needs it
    for header in ("user", "org", "name", "status", "expires"):
        table.add_column(header)
    for r in rows:
        cells = (r["id"], r["user"], r["org"], r["name"], r["status"], r["expires_at"])
        table.add_row(*(Text(cell) for cell in cells))
    console.print(table)


@token_app.command("revoke")
def token_revoke(token_id: str = typer.Argument(..., help="Token id (from `token list`).")) -> None:
    """Revoke a token; requests with it are refused from now on."""
    parsed = parse_uuid(token_id, "token id")
    with open_store() as store:
        try:
            with store.session() as session:
                tokens.revoke_token(session, parsed)
        except StoreError as exc:
            fail(str(exc))
    console.print(f"token {parsed} revoked", highlight=False, markup=False)


def register(app: typer.Typer) -> None:
    app.add_typer(token_app, name="token")
