"""How far a batch has come, for its progress bar.

A batch attaches an aggregate instance when it starts building it, so while it runs the
batch alone does not say how many are left. The expected set is what the batch type
builds among the cube's definitions now: every buildable one for a rebuild, the pending
ones for ``materialize-pending-instances``; plus whatever the batch already attached. A
finished batch is complete by definition (its bar is full whatever it skipped).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

FINAL_BATCH = frozenset({"done", "failed", "cancelled"})
FINISHED_INSTANCE = frozenset({"active", "failed", "cancelled", "invalid", "deleted"})
REBUILDS = frozenset({"full-rebuild", "incremental-rebuild"})


@dataclass(frozen=True)
class Progress:
    finished: int
    expected: int
    running: bool

    @property
    def percent(self) -> int:
        if not self.running:
            return 100
        if self.expected == 0:
            return 0
        return min(100, round(100 * self.finished / self.expected))


def batch_progress(batch: Mapping[str, Any], definitions: Iterable[Mapping[str, Any]]) -> Progress:
    """``batch``: the API's batch detail; ``definitions``: the cube's definitions."""
    instances = list(batch.get("instances") or [])
    finished = sum(1 for i in instances if i.get("status") in FINISHED_INSTANCE)
    running = batch.get("status") not in FINAL_BATCH
    if not running:
        return Progress(finished, len(instances), False)
    attached = {i.get("definition_id") for i in instances}
    wanted = set()
    for d in definitions:
        if d.get("blocked") or d.get("status") == "invalid":
            continue
        if batch.get("batchType") in REBUILDS or d.get("status") == "pending":
            wanted.add(d.get("id"))
    return Progress(finished, len(attached | wanted), True)
