"""Which definitions a batch builds, how (full or incremental) and in what order.

The order puts finer grains first so the executor can roll coarser aggregates up from
them (see `lattice`). Which source an aggregate is actually built from is decided while the
batch runs, from the row counts of what has been built by then (`choose_source`).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from aggsched.planning.lattice import build_order
from aggsched.planning.spec import DefinitionSpec


class BatchType(StrEnum):
    """DESIGN.md's batch types (shared with the store, which keeps them as text)."""

    MATERIALIZE_PENDING = "materialize-pending-instances"
    INCREMENTAL_REBUILD = "incremental-rebuild"
    FULL_REBUILD = "full-rebuild"
    #: not a build: one organization's maintenance run, recorded as a batch (no cube)
    MAINTENANCE = "maintenance"
    #: not a build: one advisor run on a cube (what it proposed, created and retired)
    ADVISOR = "advisor"

    @property
    def is_build(self) -> bool:
        """A batch a worker builds (the others are records of runs made elsewhere)."""
        return self not in (BatchType.MAINTENANCE, BatchType.ADVISOR)


class StepMode(StrEnum):
    FULL = "full"
    INCREMENTAL = "incremental"


@dataclass(frozen=True)
class ActiveInstance:
    id: uuid.UUID
    table_schema: str
    table_name: str
    rows: int
    watermark: str | None


@dataclass(frozen=True)
class DefinitionState:
    """A definition as the planner needs it: its spec and its current active instance."""

    id: uuid.UUID
    spec: DefinitionSpec
    active: ActiveInstance | None = None
    blocked: bool = False


@dataclass(frozen=True)
class Step:
    definition: DefinitionState
    mode: StepMode


def _mode(batch_type: BatchType, state: DefinitionState) -> StepMode | None:
    if batch_type is BatchType.MATERIALIZE_PENDING:
        return StepMode.FULL if state.active is None else None
    if batch_type is BatchType.FULL_REBUILD:
        return StepMode.FULL
    incremental_ok = (
        state.spec.incremental is not None
        and state.active is not None
        and state.active.watermark is not None
    )
    return StepMode.INCREMENTAL if incremental_ok else StepMode.FULL


def plan_batch(batch_type: BatchType, states: Sequence[DefinitionState]) -> list[Step]:
    """The steps of a batch in build order; blocked definitions are left out."""
    steps = [
        Step(state, mode)
        for state in states
        if not state.blocked and (mode := _mode(batch_type, state)) is not None
    ]
    order = build_order([s.definition.spec for s in steps])
    return [steps[i] for i in order]


def active_sources_allowed(batch_type: BatchType) -> bool:
    """Only a batch that adds missing aggregates may roll up from existing active ones;
    a rebuild must read fresh data, so it rolls up only from what it rebuilt itself."""
    return batch_type is BatchType.MATERIALIZE_PENDING
