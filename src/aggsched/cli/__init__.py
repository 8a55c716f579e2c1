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


@app.callback()
def _check_settings() -> None:
    # every command starts here: an invalid AGGSCHED_* setting stops it, named, with the
    # values it accepts, before anything runs
    from aggsched.cli.common import fail
    from aggsched.config import ConfigError, load_settings

    try:
        load_settings()
    except ConfigError as exc:
        fail(str(exc), 2)


def _register_all() -> None:
    from aggsched.cli import (
        admin_cmd,
        advise_cmd,
        batch_cmd,
        build_cmd,
        catalog_cmd,
        config_cmd,
        cron_cmd,
        db_cmd,
        demo_cmd,
        maintenance_cmd,
        node_cmd,
        query_cmd,
        server_cmd,
        token_cmd,
    )

    for module in (
        demo_cmd, catalog_cmd, build_cmd, batch_cmd, query_cmd, server_cmd, node_cmd,
        admin_cmd, cron_cmd, config_cmd, db_cmd, maintenance_cmd, advise_cmd, token_cmd,
    ):  # fmt: skip
        module.register(app)


_register_all()
