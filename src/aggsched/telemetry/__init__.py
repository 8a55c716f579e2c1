"""Observability: structured logs (structlog) and Prometheus metrics.

At the bottom of the import graph (beside ``config``), so every layer may report through
it; it imports nothing else of aggsched. The engine calls a few hooks (``observe_batch``,
``schedules_fired``, ``query_served``); the API adds request ids and HTTP metrics and
serves ``/metrics``.
"""

from aggsched.telemetry.logs import bind_log_ids, configure_logging, get_logger, log_context
from aggsched.telemetry.metrics import (
    aggregate_finished,
    http_request,
    maintenance_actions,
    observe_batch,
    query_served,
    registry,
    schedules_fired,
)

__all__ = [
    "aggregate_finished",
    "bind_log_ids",
    "configure_logging",
    "get_logger",
    "http_request",
    "log_context",
    "maintenance_actions",
    "observe_batch",
    "query_served",
    "registry",
    "schedules_fired",
]
