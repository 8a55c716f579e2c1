"""Building independent aggregates at once (`aggregates.build.parallelConnections`) and
rolling coarse aggregates up from finer ones built in the same batch."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from aggsched.engine.build_context import CancelToken, StepResult
from aggsched.engine.builds import BatchRunner
from aggsched.engine.parallel_steps import parallel_dialect, run_parallel
from aggsched.engine.warehouse_pool import WarehousePool
from aggsched.planning import sqlgen
from aggsched.planning.lattice import build_order, possible_sources
from aggsched.planning.plan import DefinitionState, Step, StepMode
from aggsched.planning.spec import DefinitionSpec
from aggsched.store import Store, aggregates, org_settings
from aggsched.store.models import BatchStatus, InstanceStatus
from aggsched.warehouse import open_warehouse
from engine.test_engine_builds import normalize, run_pending
from engine.tpch_project import make_repo, publish_tpch
from planning.test_planning import CITY, DAY, REGION, REVENUE, STORE_CD, spec


def _steps(specs: list[DefinitionSpec]) -> list[Step]:
    ordered = [specs[i] for i in build_order(specs)]
    return [Step(DefinitionState(uuid.uuid4(), s), StepMode.FULL) for s in ordered]


SPECS = [
    spec("fine", [CITY, REGION, DAY], [REVENUE]),
    spec("day", [DAY], [REVENUE]),
    spec("city", [CITY, REGION], [REVENUE]),
    spec("region", [REGION], [REVENUE]),
    spec("stores_by_day", [DAY], [STORE_CD]),  # distinct count: scans the base tables
    spec("stores_by_region", [REGION], [STORE_CD]),
    spec("total", [], [REVENUE]),
]


class Recorder:
    """A step runner that records what ran at the same time (no warehouse needed: the
    scheduling is what is tested here)."""

    def __init__(self, steps: list[Step], fail: set[str] = frozenset()) -> None:
        self.steps, self.fail = steps, fail
        self.lock = threading.Lock()
        self.running: set[int] = set()
        self.finished: set[int] = set()
        self.started: list[tuple[int, frozenset[int]]] = []
        self.most = 0

    def __call__(self, index: int, pool: WarehousePool) -> StepResult:
        with self.lock:
            self.started.append((index, frozenset(self.finished)))
            self.running.add(index)
            self.most = max(self.most, len(self.running))
        time.sleep(0.05)
        with self.lock:
            self.running.discard(index)
            self.finished.add(index)
        state = self.steps[index].definition
        status = InstanceStatus.FAILED if state.spec.name in self.fail else InstanceStatus.ACTIVE
        return StepResult(state.id, state.spec.name, StepMode.FULL, status)


def _pools(n: int) -> list[WarehousePool]:
    return [WarehousePool(lambda url: pytest.fail("no warehouse is opened")) for _ in range(n)]


def test_steps_start_after_every_step_they_could_roll_up_from():
    steps = _steps(SPECS)
    waits = possible_sources([s.definition.spec for s in steps], list(range(len(steps))))
    recorder = Recorder(steps)
    seen: list[str] = []
    results = run_parallel(steps, recorder, _pools(3), CancelToken(), lambda _: False,
                           lambda r: seen.append(r.name))  # fmt: skip
    assert sorted(r.name for r in results) == sorted(s.name for s in SPECS)
    assert seen == [r.name for r in results]
    for index, done in recorder.started:
        assert waits[index] <= done, steps[index].definition.spec.name
    # the base scans (fine, stores_by_day, stores_by_region) have nothing to wait for
    assert recorder.most >= 2


def test_no_more_at_once_than_connections_and_one_runs_serially():
    steps = _steps(SPECS)
    recorder = Recorder(steps)
    run_parallel(steps, recorder, _pools(1), CancelToken(), lambda _: False)
    assert recorder.most == 1
    assert [i for i, _ in recorder.started] == list(range(len(steps)))


def test_failures_and_cancel_stop_new_steps():
    steps = _steps(SPECS)
    recorder = Recorder(steps, fail={"fine", "stores_by_day", "stores_by_region"})
    failures = lambda done: sum(r.status is InstanceStatus.FAILED for r in done) >= 1  # noqa: E731
    results = run_parallel(steps, recorder, _pools(2), CancelToken(), failures)
    assert 1 <= len(results) < len(steps)
    token = CancelToken()
    token.cancel("stop")
    assert run_parallel(steps, Recorder(steps), _pools(2), token, lambda _: False) == []


def test_a_broken_step_cancels_the_batch_and_raises():
    steps = _steps(SPECS)
    token = CancelToken()

    def broken(index: int, pool: WarehousePool) -> StepResult:
        raise RuntimeError("store down")

    with pytest.raises(RuntimeError, match="store down"):
        run_parallel(steps, broken, _pools(2), token, lambda _: False)
    assert token.cancelled


def test_only_postgres_builds_in_parallel():
    assert parallel_dialect({"postgres"})
    assert not parallel_dialect({"duckdb"}) and not parallel_dialect({"postgres", "spark"})
    assert not parallel_dialect(set())


ROLLUPS = [
    {"unique_name": "li_fine", "label": "fine", "metrics": ["m_Revenue_sum", "m_l_quantity_avg",
     "m_l_discount_std", "m_l_price_max"], "attributes": [
        {"name": "Month", "dimension": "Date Dimension",
         "relationships_path": ["lineitem_Date_Dimension_ItemShip"]},
        {"name": "Year", "dimension": "Date Dimension",
         "relationships_path": ["lineitem_Date_Dimension_ItemShip"]},
        {"name": "Supplier Region", "dimension": "Location - TPCH"},
        {"name": "L_Return_Flag Level", "dimension": "Return Flag"}]},
    {"unique_name": "li_year_region", "label": "coarse 1", "metrics": ["m_Revenue_sum",
     "m_l_quantity_avg", "m_l_discount_std"], "attributes": [
        {"name": "Year", "dimension": "Date Dimension",
         "relationships_path": ["lineitem_Date_Dimension_ItemShip"]},
        {"name": "Supplier Region", "dimension": "Location - TPCH"}]},
    {"unique_name": "li_flag", "label": "coarse 2", "metrics": ["m_l_price_max",
     "m_l_discount_std"], "attributes": [
        {"name": "L_Return_Flag Level", "dimension": "Return Flag"}]},
    {"unique_name": "orders_customer_region", "label": "other fact",
     "metrics": ["m_order_revenue", "m_o_orderkey_count"],
     "attributes": [{"name": "Customer Region", "dimension": "Location - TPCH"}]},
]  # fmt: skip


@pytest.fixture(params=["duckdb", "postgres"])
def warehouse_url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue(f"tpch_{request.param}")


def test_rolled_up_aggregates_equal_builds_from_the_base_tables(sml_tpch, tmp_path, warehouse_url):
    store = Store.open(f"sqlite:///{tmp_path / 'meta.db'}")
    schema = f"as_agg_{uuid.uuid4().hex[:8]}"
    try:
        result = publish_tpch(store, make_repo(sml_tpch, tmp_path / "repo", ROLLUPS),
                              warehouse_url, schema)  # fmt: skip
        with store.session() as s:
            org_settings.set_setting(s, "default", "aggregates.build.parallelConnections", "3")
        report = run_pending(store, result.queued_batches[0], BatchRunner(store))
        assert report.status is BatchStatus.DONE, report.message
        sources = {r.name: r.source for r in report.steps}
        assert sources["li_year_region"] == "li_fine" and sources["li_flag"] == "li_fine"
        assert sources["li_fine"] is None
        with store.session() as s:
            cube = result.cubes["Retail TPCH"]
            defs = {d.unique_name: d for d in aggregates.cube_definitions(s, cube, buildable=True)}
            specs = {n: DefinitionSpec.from_dict(d.spec) for n, d in defs.items()}
            tables = {n: aggregates.active_instance(s, d.id) for n, d in defs.items()}
        with open_warehouse(warehouse_url) as wh:
            target = sqlgen.Target(wh.dialect)
            for name in ("li_year_region", "li_flag", "li_fine", "orders_customer_region"):
                columns = sqlgen.output_columns(specs[name])
                listed = ", ".join(f'"{c}"' for c in columns)
                ours = wh.fetch_all(f'SELECT {listed} FROM "{schema}"."{tables[name].table_name}"')
                base = wh.fetch_all(wh.render(sqlgen.base_select(specs[name], target)))
                assert normalize(ours) == normalize(base), name
                assert tables[name].number_of_rows == len(ours)
    finally:
        store.dispose()
