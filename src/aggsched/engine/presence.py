"""Node presence: each running node holds a lease ``node/<node id>`` and renews it.

``/metrics`` counts the unexpired ones (``aggsched_nodes_alive``); a node that dies stops
renewing and drops out after ``ttl``, the time after which its batches are recovered too.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

from aggsched.store import Store, leases
from aggsched.store.gauges import NODE_LEASE_PREFIX

log = logging.getLogger(__name__)


class Presence:
    """A thread renewing this node's presence lease every third of its lifetime."""

    def __init__(self, store: Store, node_id: str, ttl: timedelta) -> None:
        self.store = store
        self.node_id = node_id
        self.ttl = ttl
        self.name = f"{NODE_LEASE_PREFIX}{node_id}"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def renew(self) -> None:
        with self.store.session() as s:
            leases.acquire_lease(s, self.name, self.node_id, self.ttl)

    def start(self) -> None:
        self._stop.clear()
        self.renew()
        self._thread = threading.Thread(target=self._loop, name=f"presence-{self.node_id}",
                                        daemon=True)  # fmt: skip
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        try:
            with self.store.session() as s:
                leases.release_lease(s, self.name, self.node_id)
        except Exception:  # the store may be gone at shutdown; the lease expires anyway
            log.warning("node %s: presence lease not released", self.node_id)

    def _loop(self) -> None:
        while not self._stop.wait(self.ttl.total_seconds() / 3):
            try:
                self.renew()
            except Exception:
                log.exception("node %s: renewing the presence lease failed", self.node_id)
