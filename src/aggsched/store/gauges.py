"""Cluster-wide gauges read at scrape time (``/metrics``): queue, builds, instances, nodes.

Counted from the metadata DB each time, so every node reports the same current values
(alert on ``max``, not ``sum``, across nodes). Each count is served by an index or is
over a small table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from aggsched.store.leases import live_holders
from aggsched.store.models import AggregateInstance, BatchStatus, BatchType, BuildBatch

NODE_LEASE_PREFIX = "node/"
#: the instance statuses reported (deleted ones only grow, and are history)
INSTANCE_STATUSES = ("active", "pending", "inprogress", "invalid", "failed")


@dataclass(frozen=True)
class ClusterGauges:
    queued_batches: int
    running_builds: int
    running_maintenance: int
    instances: dict[str, int] = field(default_factory=dict)
    nodes_alive: int = 0


def read_gauges(session: Session, now: datetime) -> ClusterGauges:
    open_batches = session.execute(
        select(BuildBatch.status, BuildBatch.batch_type, func.count())
        .where(BuildBatch.status.in_([BatchStatus.PENDING.value, BatchStatus.INPROGRESS.value]))
        .group_by(BuildBatch.status, BuildBatch.batch_type)
    ).all()
    queued = running = maintenance = 0
    for status, batch_type, count in open_batches:
        if status == BatchStatus.PENDING.value:
            queued += count
        elif batch_type == BatchType.MAINTENANCE.value:
            maintenance += count
        else:
            running += count
    instances = dict.fromkeys(INSTANCE_STATUSES, 0)
    rows = session.execute(
        select(AggregateInstance.status, func.count())
        .where(AggregateInstance.status.in_(INSTANCE_STATUSES))
        .group_by(AggregateInstance.status)
    )
    for status, count in rows:
        instances[status] = count
    nodes = len(live_holders(session, NODE_LEASE_PREFIX, now))
    return ClusterGauges(queued, running, maintenance, instances, nodes)
