"""Taking batches back from workers that stopped: re-queue them, or close them when spent.

A worker (or a CLI build) heartbeats while it runs a batch. When its process is killed the
batch stays ``inprogress`` and its cube cannot be built. Every node's housekeeping
recovers such batches once their heartbeat is ``stale_after`` old (`engine.workers`), and
so does any process that needs a cube at once — the CLI build, the execute endpoint, a
scheduler pass (for the cubes it fires) — so a killed build never blocks its cube until
some worker happens to notice. The
instances the lost run left ``inprogress`` become ``failed`` ("worker lost") with their
tables due for dropping; the next batch run drops them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from aggsched.store import aggregates, batches, org_settings, queue, utcnow
from aggsched.store.models import BatchStatus, BuildBatch, Cube
from aggsched.store.notify import notify_batches_queued

WORKER_LOST = "worker lost"


@dataclass(frozen=True)
class Recovered:
    """A batch taken back from a lost worker: re-queued (``pending``) or closed."""

    batch_id: uuid.UUID
    status: str
    instances_failed: int


def recover(
    session: Session,
    org_id: str,
    *,
    stale_before: datetime,
    now: datetime | None = None,
    cube_id: uuid.UUID | None = None,
    batch_id: uuid.UUID | None = None,
) -> list[Recovered]:
    """Recover the organization's in-progress batches (of one cube, or one batch) whose
    last heartbeat is older than ``stale_before``, in the caller's transaction."""
    when = now or utcnow()
    scope = {"org_id": org_id, "cube_id": cube_id, "batch_id": batch_id}
    if not queue.any_stale_batch(session, stale_before=stale_before, **scope):
        return []
    limit = org_settings.get_int_setting(session, org_id, "aggregates.batch.maxAttempts")
    stale = queue.recover_stale_batches(
        session, stale_before=stale_before, max_attempts=max(1, limit), now=when, **scope
    )
    recovered = []
    for batch in stale:
        failed = aggregates.fail_unfinished_instances(session, batch.id, WORKER_LOST, when)
        if batch.status == BatchStatus.PENDING.value:
            batch.message = f"re-queued after attempt {batch.attempts}: {WORKER_LOST}"
        else:
            batch.message = f"{WORKER_LOST}: {batch.message}"
        recovered.append(Recovered(batch.id, batch.status, len(failed)))
    if any(r.status == BatchStatus.PENDING.value for r in recovered):
        notify_batches_queued(session)
    return recovered


def recover_cube(
    session: Session, cube: Cube, stale_after: timedelta, now: datetime | None = None
) -> list[Recovered]:
    """Recover the cube's batch in progress if its owner stopped heartbeating."""
    when = now or utcnow()
    return recover(session, cube.org_id, stale_before=when - stale_after, now=when,
                   cube_id=cube.id)  # fmt: skip


def recover_cubes(
    session: Session, cube_ids: Iterable[uuid.UUID], stale_after: timedelta, now: datetime
) -> list[Recovered]:
    """``recover_cube`` for many cubes (the ones a scheduler pass fires), in one read when
    none has a stale batch."""
    stale_before = now - stale_after
    recovered: list[Recovered] = []
    for org_id, cube_id in sorted(queue.stale_batch_cubes(session, stale_before=stale_before,
                                                          cube_ids=cube_ids)):  # fmt: skip
        recovered += recover(session, org_id, stale_before=stale_before, now=now, cube_id=cube_id)
    return recovered


def describe_owner(batch: BuildBatch, now: datetime | None = None) -> str:
    """`batch B is in progress on W, last heartbeat at T (n s ago)`, for messages."""
    beat = batch.heartbeat_at
    when = now or utcnow()
    if beat is None:
        heard = "no heartbeat yet"
    else:
        heard = f"last heartbeat {beat.isoformat(timespec='seconds')} "
        heard += f"({max(0.0, (when - beat).total_seconds()):.0f} s ago)"
    return f"batch {batch.id} is in progress on {batch.worker_id or 'an unknown worker'}, {heard}"


class NotRecoverable(Exception):
    """The batch cannot be recovered now (not in progress, or its owner is alive)."""


def recover_batch(
    session: Session,
    org_id: str,
    batch_id: uuid.UUID,
    *,
    stale_after: timedelta,
    force: bool = False,
    now: datetime | None = None,
) -> Recovered:
    """Recover one in-progress batch whose owner stopped heartbeating (`force`: whatever
    its heartbeat says — the owner, if alive, notices at its next heartbeat and stops)."""
    when = now or utcnow()
    batch = batches.get_batch(session, batch_id, org_id)
    if batch.status != BatchStatus.INPROGRESS.value:
        raise NotRecoverable(f"build batch {batch_id} is {batch.status}, not in progress")
    # forced: any heartbeat is "stale", even one a skewed clock put in the future
    stale_before = when + timedelta(days=1) if force else when - stale_after
    done = recover(session, org_id, stale_before=stale_before, now=when, batch_id=batch_id)
    if not done:
        raise NotRecoverable(
            f"{describe_owner(batch, when)}: its owner looks alive (recovered when its "
            f"heartbeat is {stale_after.total_seconds():g} s old); use --force if you know "
            "its process is gone"
        )
    return done[0]


def cancel_batch(
    session: Session,
    org_id: str,
    batch_id: uuid.UUID,
    *,
    stale_after: timedelta,
    now: datetime | None = None,
) -> BuildBatch:
    """Cancel a pending batch; ask the owner of an in-progress one to stop, and close it
    at once when that owner stopped heartbeating (nobody would see the request)."""
    when = now or utcnow()
    batches.get_batch(session, batch_id, org_id)
    batch = batches.cancel_or_request(session, batch_id, when)
    if batch.status == BatchStatus.INPROGRESS.value:
        recover(session, org_id, stale_before=when - stale_after, now=when, batch_id=batch_id)
        session.refresh(batch)
    return batch
