"""Building the independent aggregates of a batch at once, on several connections.

PostgreSQL runs each statement of a connection on one backend, so a batch whose base
scans run one after another leaves cores idle; `aggregates.build.parallelConnections`
connections each build an aggregate at a time. A step starts only once every finer step
of the batch it could roll up from (`lattice.possible_sources`) has finished, so it picks
the same source a serial build would — parallelism never trades a roll-up for a scan.
Embedded DuckDB already spreads one query over its own threads, so batches there stay
serial (see `parallel_dialect`).

Each running step has a `WarehousePool` of its own; results are handed back in the
calling thread, in the order the steps finish.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from aggsched.engine.build_context import CancelToken, StepResult
from aggsched.engine.warehouse_pool import WarehousePool
from aggsched.planning import lattice
from aggsched.planning.plan import Step

#: dialects whose aggregates are built on several connections at once
PARALLEL_DIALECTS = frozenset({"postgres"})


def parallel_dialect(dialects: set[str]) -> bool:
    """Whether a batch on warehouses of these dialects may build steps at once."""
    return bool(dialects) and dialects <= PARALLEL_DIALECTS


def run_parallel(
    steps: Sequence[Step],
    run_one: Callable[[int, WarehousePool], StepResult],
    pools: Sequence[WarehousePool],
    token: CancelToken,
    stop: Callable[[list[StepResult]], bool],
    on_done: Callable[[StepResult], None] | None = None,
) -> list[StepResult]:
    """Run `steps` (in build order) with up to `len(pools)` at once; `run_one(index, pool)`
    builds one. No step starts once `token` is cancelled or `stop(results)` says so; the
    running ones finish (or are interrupted by the token). An exception from `run_one`
    (a store failure, not a warehouse error) cancels the others and is raised."""
    waits = lattice.possible_sources([s.definition.spec for s in steps], list(range(len(steps))))
    pending = list(range(len(steps)))
    finished: set[int] = set()
    free = list(pools)
    running: dict[Future[StepResult], tuple[int, WarehousePool]] = {}
    results: list[StepResult] = []
    with ThreadPoolExecutor(max_workers=len(pools), thread_name_prefix="build") as executor:
        while pending or running:
            if token.cancelled or stop(results):
                pending.clear()
            for index in [i for i in pending if waits[i] <= finished][: len(free)]:
                pending.remove(index)
                pool = free.pop()
                running[executor.submit(run_one, index, pool)] = (index, pool)
            if not running:
                break  # unreachable while waits name only earlier steps; never spin
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                index, pool = running.pop(future)
                free.append(pool)
                finished.add(index)
                try:
                    result = future.result()
                except BaseException:
                    token.cancel("the batch broke")
                    raise
                results.append(result)
                if on_done:
                    on_done(result)
    return results
