"""`aggsched serve`: run the REST API with uvicorn."""

from __future__ import annotations

import typer

from aggsched.config import Settings


def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8080, "--port", min=1, max=65535, help="Port to listen on."),
    log_level: str = typer.Option("info", "--log-level", help="uvicorn log level."),
) -> None:
    """Serve the AtScale-compatible REST API (settings from AGGSCHED_* variables)."""
    import uvicorn

    from aggsched.api import create_app

    app = create_app(Settings())
    uvicorn.run(app, host=host, port=port, log_level=log_level)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
