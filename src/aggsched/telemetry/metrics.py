"""Prometheus metrics that happen in this process: counters and histograms, and the hooks
the engine calls to move them.

Gauges that describe the whole cluster (queue depth, running builds, instances by status,
nodes alive) are not kept here: ``/metrics`` reads them from the metadata DB when it is
scraped (``api.routers.metrics``), so every node reports the same, current values.

Multi-process servers: when ``PROMETHEUS_MULTIPROC_DIR`` is set before the process starts,
prometheus-client writes these series to files there and ``/metrics`` merges every
process's files (``registry()``).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Protocol

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, multiprocess

from aggsched.telemetry.logs import log_context

log = logging.getLogger("aggsched.telemetry")

BUILD_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600)
STEP_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
LATENESS_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 10, 60, 300)
QUERY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

BATCHES = Counter(
    "aggsched_batches", "Batches this process ran to an end, by type and final status.",
    ["batch_type", "status"],
)  # fmt: skip
BATCH_SECONDS = Histogram(
    "aggsched_batch_duration_seconds", "Wall time of a batch run, by type.",
    ["batch_type"], buckets=BUILD_BUCKETS,
)  # fmt: skip
AGGREGATE_SECONDS = Histogram(
    "aggsched_aggregate_build_duration_seconds",
    "Wall time of one aggregate's build, by mode (full/incremental) and outcome status.",
    ["mode", "status"], buckets=STEP_BUCKETS,
)  # fmt: skip
ROWS_BUILT = Counter(
    "aggsched_aggregate_rows_built", "Rows in the aggregate tables that became active."
)
FIRES = Counter(
    "aggsched_schedule_fires", "Schedule fires this process recorded.", ["misfire", "coalesced"]
)
FIRE_LATENESS = Histogram(
    "aggsched_schedule_fire_lateness_seconds",
    "How long after its scheduled time a fire was recorded.", buckets=LATENESS_BUCKETS,
)  # fmt: skip
MAINTENANCE_ACTIONS = Counter(
    "aggsched_maintenance_actions",
    "Changes maintenance made (tables dropped, instances invalidated, rows pruned), by item.",
    ["item"],
)  # fmt: skip
QUERIES = Counter("aggsched_queries", "Semantic queries answered, by what served them.",
                  ["served_by"])  # fmt: skip
QUERY_SECONDS = Histogram(
    "aggsched_query_duration_seconds", "Semantic query latency, by what served them.",
    ["served_by"], buckets=QUERY_BUCKETS,
)  # fmt: skip
HTTP_REQUESTS = Counter(
    "aggsched_http_requests", "HTTP requests, by method, route template and status code.",
    ["method", "route", "status"],
)  # fmt: skip
HTTP_SECONDS = Histogram(
    "aggsched_http_request_duration_seconds", "HTTP request latency, by method and route.",
    ["method", "route"],
)  # fmt: skip


def registry() -> CollectorRegistry:
    """The registry to expose: every process's series in multi-process mode, else this
    process's default registry."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
        return merged
    return REGISTRY


class StepOutcome(Protocol):
    """What the hooks read from one built aggregate (``engine.builds.StepResult``)."""

    mode: Any
    status: Any
    seconds: float
    rows: int | None


class Firing(Protocol):
    """What the hooks read from one schedule fire (``engine.scheduler.Firing``)."""

    scheduled_fire_time: datetime
    executed_at: datetime
    misfire: bool
    coalesced: bool


class BatchObserver:
    """Measures one batch run; ``finished`` records it (see ``observe_batch``)."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.recorded = False

    def finished(self, batch_type: str, status: str, steps: Iterable[StepOutcome] = ()) -> None:
        seconds = time.monotonic() - self.started
        self.recorded = True
        BATCHES.labels(batch_type=str(batch_type), status=str(status)).inc()
        BATCH_SECONDS.labels(batch_type=str(batch_type)).observe(seconds)
        for step in steps:
            aggregate_finished(str(step.mode), str(step.status), step.seconds, step.rows)
        log.info("batch finished", extra={"batch_type": str(batch_type), "status": str(status),
                                          "seconds": round(seconds, 3)})  # fmt: skip


@contextmanager
def observe_batch(batch_id: object) -> Iterator[BatchObserver]:
    """Around one batch run: its id is on every log line inside, and the run is counted
    (an exception that escapes counts as status ``error``)."""
    observer = BatchObserver()
    with log_context(batch_id=batch_id):
        try:
            yield observer
        except BaseException:
            if not observer.recorded:
                observer.finished("unknown", "error")
            raise


def aggregate_finished(mode: str, status: str, seconds: float, rows: int | None) -> None:
    AGGREGATE_SECONDS.labels(mode=mode, status=status).observe(max(0.0, seconds))
    if status == "active" and rows:
        ROWS_BUILT.inc(rows)


def schedules_fired(firings: Iterable[Firing]) -> None:
    """Count fires and how late each was recorded (``Scheduler(on_fired=...)``); one
    counter increment per kind of fire, not per fire (a pass reports hundreds)."""
    kinds: dict[tuple[bool, bool], int] = {}
    for firing in firings:
        late = (firing.executed_at - firing.scheduled_fire_time).total_seconds()
        FIRE_LATENESS.observe(max(0.0, late))
        kind = (firing.misfire, firing.coalesced)
        kinds[kind] = kinds.get(kind, 0) + 1
    for (misfire, coalesced), count in kinds.items():
        FIRES.labels(misfire=str(misfire).lower(), coalesced=str(coalesced).lower()).inc(count)


def maintenance_actions(item: str, count: int) -> None:
    if count:
        MAINTENANCE_ACTIONS.labels(item=item).inc(count)


def query_served(served_by: str, seconds: float) -> None:
    """One semantic query answered (``served_by``: an aggregate, or ``base``)."""
    QUERIES.labels(served_by=served_by).inc()
    QUERY_SECONDS.labels(served_by=served_by).observe(max(0.0, seconds))


def http_request(method: str, route: str, status: int, seconds: float) -> None:
    HTTP_REQUESTS.labels(method=method, route=route, status=str(status)).inc()
    HTTP_SECONDS.labels(method=method, route=route).observe(max(0.0, seconds))
