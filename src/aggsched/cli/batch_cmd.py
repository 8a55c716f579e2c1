"""`aggsched batch recover|cancel BATCH_ID`: take a batch back from a lost owner, or stop it."""

from __future__ import annotations

from datetime import timedelta

import typer

from aggsched.cli.common import (
    JsonOption,
    OrgOption,
    console,
    fail,
    open_store,
    parse_uuid,
    print_json,
)
from aggsched.config import Settings
from aggsched.engine.builds import drop_expired_tables
from aggsched.engine.recovery import NotRecoverable, cancel_batch, recover_batch
from aggsched.store.errors import StoreError
from aggsched.warehouse import WarehouseError, open_warehouse

batch_app = typer.Typer(help="Recover or cancel a build batch.", no_args_is_help=True)


@batch_app.command("recover")
def recover(
    batch_id: str = typer.Argument(..., help="Batch id (see the build history)."),
    force: bool = typer.Option(
        False, "--force", help="Recover it even though its owner's heartbeat is recent."
    ),
    org: str = OrgOption,
    as_json: bool = JsonOption,
) -> None:
    """Take an in-progress batch back from an owner that stopped (its process was killed):
    its unfinished aggregates fail ("worker lost"), their tables are dropped, and the batch
    is re-queued (or failed once it has used its attempts), as workers do on their own."""
    batch = parse_uuid(batch_id, "batch id")
    settings = Settings()
    with open_store(settings) as store:
        try:
            with store.session() as s:
                done = recover_batch(
                    s, org, batch, stale_after=timedelta(seconds=settings.stale_after_seconds),
                    force=force,
                )  # fmt: skip
        except (NotRecoverable, StoreError) as exc:
            fail(str(exc))
        try:
            dropped = drop_expired_tables(store, open_warehouse)
        except WarehouseError:
            dropped = 0  # the next build drops them
    if as_json:
        failed = done.instances_failed
        print_json({"batch_id": str(batch), "status": done.status,
                    "instances_failed": failed, "tables_dropped": dropped})  # fmt: skip
        return
    then = "a worker or `aggsched build` runs it" if done.status == "pending" else "closed"
    console.print(
        f"batch {batch}: {done.status} ({then}); {done.instances_failed} unfinished "
        f"aggregate(s) failed (worker lost), {dropped} table(s) dropped"
    )


@batch_app.command("cancel")
def cancel(
    batch_id: str = typer.Argument(..., help="Batch id (see the build history)."),
    org: str = OrgOption,
    as_json: bool = JsonOption,
) -> None:
    """Cancel a pending batch, or stop one in progress: its owner stops at its next
    heartbeat, and a batch whose owner is gone is closed at once."""
    batch = parse_uuid(batch_id, "batch id")
    settings = Settings()
    with open_store(settings) as store:
        try:
            with store.session() as s:
                row = cancel_batch(
                    s, org, batch, stale_after=timedelta(seconds=settings.stale_after_seconds)
                )
                status, worker = row.status, row.worker_id
        except StoreError as exc:
            fail(str(exc))
    if as_json:
        print_json({"batch_id": str(batch), "status": status})
        return
    if status == "inprogress":
        console.print(f"batch {batch}: cancel requested; {worker} stops it at its next heartbeat")
    else:
        console.print(f"batch {batch}: {status}")


def register(app: typer.Typer) -> None:
    app.add_typer(batch_app, name="batch")
