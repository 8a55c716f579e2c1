"""`aggsched scheduler` and `aggsched worker`: run the scheduler or the build workers alone.

Both read the same Settings (``AGGSCHED_*``) and store as `aggsched serve`, so a cluster
can be any mix of API servers, scheduler nodes and worker nodes on one PostgreSQL. They
run until SIGTERM/SIGINT, then stop gracefully (builds get the grace period to finish).
"""

from __future__ import annotations

import typer

from aggsched.cli.common import node_settings, setup_logging
from aggsched.config import Settings
from aggsched.engine.node import Node
from aggsched.engine.scheduler import LeaseHeldError
from aggsched.store import Store
from aggsched.store.errors import StoreError

GraceOption = typer.Option(
    None, "--grace", min=0, help="Seconds running builds may finish after SIGTERM "
    "(default AGGSCHED_SHUTDOWN_GRACE_SECONDS)."
)  # fmt: skip
LogLevelOption = typer.Option(
    None, "--log-level", help="DEBUG, INFO, WARNING or ERROR (default AGGSCHED_LOG_LEVEL)."
)


def _run(
    settings: Settings,
    *,
    scheduler: bool,
    workers: bool,
    grace: float | None,
    log_level: str | None = None,
) -> None:
    if grace is not None:
        settings = settings.model_copy(update={"shutdown_grace_seconds": grace})
    settings = node_settings(settings)
    setup_logging(settings, log_level)
    try:
        store = Store.from_settings(settings)
    except StoreError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    try:
        node = Node(settings, store, scheduler=scheduler, workers=workers)
        typer.echo(f"node {node.node_id}: {store.dialect} metadata DB; Ctrl-C or SIGTERM stops")
        node.run_forever()
    except LeaseHeldError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    finally:
        store.dispose()


def scheduler_command(
    with_workers: bool = typer.Option(
        False, "--with-workers", help="Also run build workers in this process."
    ),
    grace: float | None = GraceOption,
    log_level: str | None = LogLevelOption,
) -> None:
    """Run the scheduler: fire due schedules (several nodes may share one PostgreSQL)
    and each organization's maintenance."""
    _run(Settings(), scheduler=True, workers=with_workers, grace=grace, log_level=log_level)


def worker_command(
    concurrency: int | None = typer.Option(
        None,
        "--concurrency",
        min=1,
        help="Builds at once (default AGGSCHED_MAX_CONCURRENT_BUILDS).",
    ),
    grace: float | None = GraceOption,
    log_level: str | None = LogLevelOption,
) -> None:
    """Run build workers: claim queued batches and build them."""
    settings = Settings()
    if concurrency is not None:
        settings = settings.model_copy(update={"max_concurrent_builds": concurrency})
    _run(settings, scheduler=False, workers=True, grace=grace, log_level=log_level)


def register(app: typer.Typer) -> None:
    app.command("scheduler")(scheduler_command)
    app.command("worker")(worker_command)
