"""`aggsched serve` (and the demo): the REST API and the web console, plus this node's
scheduler and workers."""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from types import FrameType

import typer

from aggsched.config import Settings

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
log = logging.getLogger(__name__)


def _record_signal(signum: int, _frame: FrameType | None) -> None:
    log.info("signal %d: stopping the scheduler and workers gracefully", signum)


def run_server(
    settings: Settings,
    host: str,
    port: int,
    *,
    log_level: str = "info",
    scheduler: bool = True,
    workers: bool = True,
    on_ready: Callable[[], None] | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM; then stop firing and claiming, give running builds the
    grace period to finish, cancel what is left, and close the store."""
    import uvicorn

    from aggsched.cli.common import node_settings, setup_logging
    from aggsched.engine.node import Node
    from aggsched.engine.scheduler import LeaseHeldError
    from aggsched.store import Store, StoreError
    from aggsched.web import create_app

    settings = node_settings(settings)
    setup_logging(settings)
    try:
        store = Store.from_settings(settings)
    except StoreError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    node = Node(settings, store, scheduler=scheduler, workers=workers)
    try:
        node.start()
    except LeaseHeldError as exc:
        store.dispose()
        typer.echo(f"error: {exc} (use --no-scheduler, or PostgreSQL for several nodes)", err=True)
        raise typer.Exit(1) from exc
    # uvicorn stops on SIGINT/SIGTERM and then re-raises the signal to the handler it found;
    # a handler that only records it lets the node stop gracefully below.
    previous = {sig: signal.signal(sig, _record_signal) for sig in STOP_SIGNALS}
    try:
        if on_ready:
            on_ready()
        # log_config=None: uvicorn's records, the access log included, go through ours
        uvicorn.run(create_app(settings, store), host=host, port=port, log_level=log_level,
                    log_config=None)  # fmt: skip
    finally:
        node.stop()
        store.dispose()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8080, "--port", min=1, max=65535, help="Port to listen on."),
    log_level: str = typer.Option("info", "--log-level", help="uvicorn log level."),
    no_scheduler: bool = typer.Option(False, "--no-scheduler", help="Do not fire schedules."),
    no_workers: bool = typer.Option(False, "--no-workers", help="Do not run build workers."),
) -> None:
    """Serve the REST API, the scheduler and build workers (settings: AGGSCHED_*)."""
    run_server(
        Settings(), host, port, log_level=log_level,
        scheduler=not no_scheduler, workers=not no_workers,
    )  # fmt: skip


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
