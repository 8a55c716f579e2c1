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
    from aggsched.cli import (
        admin_cmd,
        build_cmd,
        catalog_cmd,
        cron_cmd,
        demo_cmd,
        node_cmd,
        server_cmd,
        token_cmd,
    )

    for module in (
        demo_cmd, catalog_cmd, build_cmd, server_cmd, node_cmd, admin_cmd, cron_cmd, token_cmd,
    ):  # fmt: skip
        module.register(app)


_register_all()
