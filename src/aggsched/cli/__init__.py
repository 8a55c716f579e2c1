"""The ``aggsched`` command line.

One module per command group; each exposes ``register(app)`` so this file only wires them.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    name="aggsched",
    help="Aggregate-build scheduler for semantic layers (AtScale-compatible).",
    no_args_is_help=True,
    add_completion=False,
)


def _register_all() -> None:
    from aggsched.cli import build_cmd, catalog_cmd, cron_cmd

    cron_cmd.register(app)
    catalog_cmd.register(app)
    build_cmd.register(app)
    from aggsched.cli import server_cmd

    server_cmd.register(app)
    from aggsched.cli import admin_cmd

    admin_cmd.register(app)
    from aggsched.cli import node_cmd

    node_cmd.register(app)


_register_all()
