"""``GET /metrics``: Prometheus text format, open like ``/healthz`` or behind a token.

The process's counters and histograms (``aggsched.telemetry.metrics``, every process's in
multi-process mode) plus cluster-wide gauges read from the metadata DB at scrape time.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Header, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from aggsched import telemetry
from aggsched.api.auth import unauthorized
from aggsched.store import Store, utcnow
from aggsched.store.gauges import read_gauges

router = APIRouter(tags=["system"])


class StoreGauges(Collector):
    """Gauges counted in the metadata DB when scraped (the same from every node)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily("aggsched_store_up", "1 when the metadata DB answered.")
        try:
            with self.store.session() as s:
                g = read_gauges(s, utcnow())
        except Exception:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield GaugeMetricFamily(
            "aggsched_queue_depth", "Batches waiting for a worker.", value=g.queued_batches
        )
        yield GaugeMetricFamily(
            "aggsched_builds_running", "Build batches in progress.", value=g.running_builds
        )
        yield GaugeMetricFamily(
            "aggsched_maintenance_running", "Maintenance runs in progress.",
            value=g.running_maintenance,
        )  # fmt: skip
        instances = GaugeMetricFamily(
            "aggsched_aggregate_instances", "Aggregate instances by status.", labels=["status"]
        )
        for status, count in sorted(g.instances.items()):
            instances.add_metric([status], count)
        yield instances
        yield GaugeMetricFamily(
            "aggsched_nodes_alive", "Nodes holding a live presence lease.", value=g.nodes_alive
        )


def store_registry(store: Store) -> CollectorRegistry:
    """A registry of the store gauges for one app (not the global one: apps come and go)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreGauges(store))
    return registry


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                     "description": "Prometheus text exposition format"}},
)  # fmt: skip
def metrics(request: Request, authorization: Annotated[str | None, Header()] = None) -> Response:
    """Prometheus metrics. When ``AGGSCHED_METRICS_TOKEN`` is set, the scraper must send
    ``Authorization: Bearer <token>``."""
    token = request.app.state.settings.metrics_token
    if token:
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), token.encode()):
            raise unauthorized("GET /metrics needs the metrics bearer token")
    body = generate_latest(telemetry.registry()) + generate_latest(request.app.state.gauges)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
