"""Shared GROUPING SETS scans: several aggregates built from one staged scan."""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass

from sqlglot import exp

from aggsched.engine.build_context import (
    BatchContext,
    BuildRefused,
    BuildSettings,
    Built,
    CancelToken,
    read_watermark,
    where_to_build,
)
from aggsched.engine.warehouse_pool import WarehousePool
from aggsched.planning import lattice, sharedscan, sqlgen
from aggsched.planning.plan import (
    Step,
    StepMode,
)
from aggsched.planning.spec import DefinitionSpec
from aggsched.warehouse import (
    WarehouseError,
)


@dataclass
class SharedGroup:
    """Aggregates built from one shared scan, staged in a temporary table of the batch's
    connection (gone with the connection, so a crash leaves nothing behind)."""

    members: list[int]
    specs: list[DefinitionSpec]
    name: str
    scan: sharedscan.SharedScan | None = None
    stage: exp.Table | None = None
    watermark: str | None = None
    tried: bool = False

    def split_query(self, spec: DefinitionSpec) -> exp.Select:
        assert self.scan is not None and self.stage is not None
        mask = self.scan.masks[self.specs.index(spec)]
        return sharedscan.split_select(spec, self.scan, self.stage, mask)


class SharedScans:
    """Plans and runs the shared scans of a batch (see `planning.sharedscan`)."""

    def __init__(
        self,
        ctx: BatchContext,
        steps: list[Step],
        built: list[lattice.Candidate[Built]],
        enabled: bool = True,
    ) -> None:
        self.ctx = ctx
        self.by_step: dict[int, SharedGroup] = {}
        if not enabled:
            return
        specs = [s.definition.spec for s in steps]
        for n, members in enumerate(sharedscan.shared_groups(specs, built)):
            members = [i for i in members if steps[i].mode is StepMode.FULL]
            if len(members) > 1:
                name = f"as_agg_stage_{ctx.batch_id.hex[:8]}_{n}"
                group = SharedGroup(members, [specs[i] for i in members], name)
                self.by_step.update(dict.fromkeys(members, group))

    def prepare(
        self, index: int, pool: WarehousePool, settings: BuildSettings, token: CancelToken
    ) -> SharedGroup | None:
        """The step's group, its staging table built on first use (None: build alone)."""
        group = self.by_step.get(index)
        if group is None or group.tried:
            return group
        group.tried = True
        try:
            union = sharedscan.union_spec(group.specs)
            where = where_to_build(union, self.ctx.connections)
            wh = pool.get(where.url)
            scan = sharedscan.grouping_select(group.specs, where.target)
            stage = sqlgen.table(group.name)
            with token.watching(wh):
                if union.incremental is not None:
                    group.watermark = read_watermark(union, where, wh)
                wh.create_temporary_table_as(
                    group.name, scan.query, timeout=settings.timeout_seconds
                )
        except (WarehouseError, BuildRefused, sqlgen.SqlGenerationError):
            return None  # each member scans the base tables on its own (and fails alone)
        group.scan, group.stage = scan, stage
        return group

    def drop_all(self, pool: WarehousePool) -> None:
        """Drop staging tables a stopped batch left (they would outlive it on a kept
        connection)."""
        for index, group in self.by_step.items():
            if index == group.members[-1]:
                self.done(index, pool, force=True)

    def done(self, index: int, pool: WarehousePool, force: bool = False) -> None:
        """Drop the staging table once its last member is built."""
        group = self.by_step.get(index)
        if group is None or group.stage is None or (index != group.members[-1] and not force):
            return
        union = sharedscan.union_spec(group.specs)
        with suppress(WarehouseError, BuildRefused):
            wh = pool.get(where_to_build(union, self.ctx.connections).url)
            wh.drop_table(None, group.name)
        group.stage = None
