"""`aggsched org add` and `aggsched user add`: tenants and logins for the REST API."""

from __future__ import annotations

import sys

import typer

from aggsched.cli.common import console, fail, open_store
from aggsched.store import catalog
from aggsched.store.errors import StoreError
from aggsched.store.models import Role

org_app = typer.Typer(help="Organizations (tenants).", no_args_is_help=True)
user_app = typer.Typer(help="Users of the REST API.", no_args_is_help=True)


@org_app.command("add")
def org_add(
    org_id: str = typer.Argument(..., help="Organization id (1-64 characters)."),
    name: str | None = typer.Option(None, "--name", help="Display name (default: the id)."),
) -> None:
    """Add an organization."""
    with open_store() as store:
        try:
            with store.session() as session:
                catalog.add_org(session, org_id, name)
        except StoreError as exc:
            fail(str(exc))
    console.print(f"organization {org_id!r} added")


def _read_password(from_stdin: bool) -> str:
    """From stdin (first line, for scripts) or prompted twice without echo."""
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    if not password:
        fail("the password must not be empty", 2)
    return password


@user_app.command("add")
def user_add(
    name: str = typer.Argument(..., help="User name (login)."),
    org: str = typer.Option("default", "--org", help="Organization to grant the role in."),
    role: Role = typer.Option(Role.AGGREGATES_VIEW, "--role", help="Role in the organization."),
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="Read the password from the first line of stdin."
    ),
) -> None:
    """Add a user (argon2-hashed password) with a role in an organization; an existing
    user only gets the extra role (the password must match)."""
    password = _read_password(password_stdin)
    with open_store() as store:
        try:
            with store.session() as session:
                catalog.get_org(session, org)
                user = catalog.get_user_by_name(session, name)
                if user is None:
                    user = catalog.add_user(session, name, password)
                elif catalog.verify_password(session, name, password) is None:
                    fail(f"user {name!r} exists and the password does not match")
                catalog.grant_role(session, user.id, org, role)
        except StoreError as exc:
            fail(str(exc))
    console.print(f"user {name!r} has role {role.value} in {org!r}")


def register(app: typer.Typer) -> None:
    app.add_typer(org_app, name="org")
    app.add_typer(user_app, name="user")
