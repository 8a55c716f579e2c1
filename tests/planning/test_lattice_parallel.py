"""Which finer steps a step waits for when a batch builds several at once.

Exhaustive over every grain of three attributes and several metric mixes: a step that
starts once its `possible_sources` are built picks the same source as a serial build.
"""

from __future__ import annotations

import itertools

from aggsched.planning.lattice import (
    Candidate,
    build_order,
    can_derive,
    choose_sources,
    possible_sources,
)
from planning.test_planning import CITY, DAY, QTY_AVG, QTY_STD, REGION, REVENUE, STORE_CD, spec

METRIC_MIXES = [[REVENUE], [REVENUE, QTY_AVG], [QTY_STD], [STORE_CD], [REVENUE, QTY_STD]]
GRAINS = [list(c) for n in range(4) for c in itertools.combinations([CITY, REGION, DAY], n)]
SPECS = [
    spec(f"s{i}_{j}", grain, metrics)
    for i, grain in enumerate(GRAINS)
    for j, metrics in enumerate(METRIC_MIXES)
]


def rows_of(index: int) -> int:
    """Row counts that vary independently of the grain, so the smallest source is not
    always the coarsest."""
    return 1 + (index * 7919) % 101


def test_waits_name_only_earlier_steps_that_can_serve():
    order = build_order(SPECS)
    waits = possible_sources(SPECS, order)
    position = {i: p for p, i in enumerate(order)}
    for i, wait in enumerate(waits):
        assert all(position[j] < position[i] for j in wait)  # never a deadlock
        earlier = {j for j in order[: position[i]]}
        servers = {j for j in earlier if can_derive(SPECS[i], SPECS[j])}
        assert wait == servers


def test_a_step_started_after_its_waits_picks_the_serial_source():
    order = build_order(SPECS)
    waits = possible_sources(SPECS, order)
    for pos, i in enumerate(order):
        serial = [Candidate(j, SPECS[j], rows_of(j)) for j in order[:pos]]
        parallel = [Candidate(j, SPECS[j], rows_of(j)) for j in sorted(waits[i])]
        chosen = [s and s.key for s in choose_sources(SPECS[i], serial)]
        assert [s and s.key for s in choose_sources(SPECS[i], parallel)] == chosen


def test_independent_grains_do_not_wait():
    base = [spec("day", [DAY], [REVENUE]), spec("region", [REGION], [REVENUE])]
    assert possible_sources(base, build_order(base)) == [set(), set()]
    distinct = [spec("fine", [CITY, REGION], [STORE_CD]), spec("coarse", [REGION], [STORE_CD])]
    assert possible_sources(distinct, build_order(distinct)) == [set(), set()]
    rollup = [spec("coarse", [REGION], [REVENUE]), spec("fine", [CITY, REGION], [REVENUE])]
    assert possible_sources(rollup, build_order(rollup)) == [{1}, set()]
