"""Maintenance on real warehouses (DuckDB and PostgreSQL) with real TPC-H aggregates.

Behind aggsched's back a test drops one aggregate table, damages another, ages a replaced
table past its grace period, creates a stray ``as_agg_`` table and unrelated tables (some
with names that differ from ours by one character, some in another schema), and gives
the organization a long history; time is an injected clock 120 days ahead. Maintenance
must fix exactly what it should and leave everything else alone.
"""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import pytest

from aggsched.engine.builds import BatchRunner, build_now
from aggsched.engine.maintenance import AGGREGATE_TABLE, NOT_RUN, ItemResult, run_maintenance
from aggsched.planning.plan import BatchType
from aggsched.store import Store, aggregates, batches, catalog, org_settings, schedules, utcnow
from aggsched.store.errors import ConflictError, InvalidValueError
from aggsched.store.models import AggregateInstance, BatchStatus, BuildBatch, Execution
from aggsched.warehouse import open_warehouse
from engine.tpch_project import AGGREGATES, make_repo, publish_tpch

KEPT = ["customers_by_region", "orders_customer_region"]
STRAY = "as_agg_deadbeef_left_by_crash"
# names that must survive: not ours by one character, or not in an aggregate schema
NEAR_MISSES = [
    "as_agg_deadbee_seven_hex",  # 7 hex digits
    "as_agg_deadbeefx_nine",  # no "_" after the 8 hex digits
    "asXagg_deadbeef_like_trap",  # what LIKE 'as_agg_%' would match
    "as_agg_ghijklmn_not_hex",
    "customer_copy",
]


@pytest.fixture(params=["duckdb", "postgres"])
def warehouse_url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue("tpch_duckdb" if request.param == "duckdb" else "tpch_postgres")


@pytest.fixture
def store(tmp_path) -> Store:
    opened = Store.open(f"sqlite:///{tmp_path / 'meta.db'}")
    yield opened
    opened.dispose()


def _active(store: Store, cube_id: uuid.UUID) -> dict[str, AggregateInstance]:
    with store.session() as s:
        found = {}
        for d in aggregates.cube_definitions(s, cube_id):
            active = aggregates.active_instance(s, d.id)
            if active is not None:
                s.expunge(active)
                found[d.unique_name] = active
        return found


def _statuses(store: Store, cube_id: uuid.UUID) -> dict[str, list[str]]:
    with store.session() as s:
        return {
            d.unique_name: [i.status for i in aggregates.definition_instances(s, d.id)]
            for d in aggregates.cube_definitions(s, cube_id)
        }


def _tables(url: str, schema: str) -> set[str]:
    with open_warehouse(url) as wh:
        return set(wh.list_tables(schema))


def _history(store: Store, cube) -> dict[uuid.UUID, object]:
    """103 more finished batches of the cube, and two schedules with four and one
    executions; with the two real batches that is 105 batches, all 'old' for a clock 120
    days ahead. Returns each schedule's latest execution time."""
    latest = {}
    with store.session() as s:
        base = utcnow() - timedelta(hours=1)
        for n in range(103):
            batch = batches.create_batch(
                s, org_id="default", project_id=cube.project_id, cube_id=cube.id,
                batch_type=BatchType.FULL_REBUILD, now=base + timedelta(seconds=n),
            )  # fmt: skip
            batch.status = [BatchStatus.DONE, BatchStatus.FAILED, BatchStatus.CANCELLED][n % 3]
        for job in range(2):
            schedule = schedules.create_schedule(
                s, org_id="default", project_id=cube.project_id, cube_id=cube.id,
                time_expression="0 0 1 * * ?", next_fire_at=None,
            )  # fmt: skip
            for n in range(4 if job == 0 else 1):
                fired = base + timedelta(days=n)
                schedules.record_execution(s, schedule, scheduled_fire_time=fired,
                                           executed_at=fired)  # fmt: skip
                latest[schedule.job_id] = fired
    return latest


def test_maintenance_fixes_what_it_must_and_nothing_else(store, sml_tpch, tmp_path, warehouse_url):
    schema = f"as_agg_{uuid.uuid4().hex[:8]}"
    other = f"other_{uuid.uuid4().hex[:8]}"
    aggregates = [a for a in AGGREGATES if a["unique_name"] in KEPT]
    result = publish_tpch(store, make_repo(sml_tpch, tmp_path / "repo", aggregates),
                          warehouse_url, schema)  # fmt: skip
    cube_id = result.cubes["Retail TPCH"]
    runner = BatchRunner(store, heartbeat_seconds=0.2)
    with store.session() as s:
        assert batches.get_batch(s, result.queued_batches[0]).status == "pending"
        cube = catalog.get_cube_by_id(s, "default", cube_id)
        s.expunge(cube)
    first = build_now(store, runner, "default", cube_id, BatchType.MATERIALIZE_PENDING)
    assert first.status is BatchStatus.DONE, first.message
    replaced = _active(store, cube_id)["system_customer_all"]
    rebuilt = build_now(store, runner, "default", cube_id, BatchType.FULL_REBUILD)
    assert rebuilt.status is BatchStatus.DONE, rebuilt.message
    active = _active(store, cube_id)
    missing, damaged = active["customers_by_region"], active["orders_customer_region"]
    # behind aggsched's back: a table dropped, a table damaged, a replaced table aged past
    # its grace period, a stray table of ours, and tables that are not ours
    with open_warehouse(warehouse_url) as wh:
        cascade = " CASCADE" if warehouse_url.startswith("postgres") else ""  # its view
        wh.execute(f'DROP TABLE "{schema}"."{missing.table_name}"{cascade}')
        wh.execute(f'DELETE FROM "{schema}"."{damaged.table_name}" WHERE 1 = 1')
        wh.execute(f'CREATE TABLE "{schema}"."{STRAY}" AS SELECT 1 AS x')
        for name in NEAR_MISSES:
            wh.execute(f'CREATE TABLE "{schema}"."{name}" AS SELECT 1 AS x')
        wh.ensure_schema(other)
        wh.execute(f'CREATE TABLE "{other}"."as_agg_cafebabe_not_an_agg_schema" AS SELECT 1 AS x')
    assert AGGREGATE_TABLE.fullmatch(STRAY) and not any(
        AGGREGATE_TABLE.fullmatch(n) for n in NEAR_MISSES
    )
    with store.session() as s:
        old = s.get(AggregateInstance, replaced.id)
        assert old.status == "deleted" and old.table_dropped_at is None
        old.drop_after = utcnow() - timedelta(seconds=1)
    latest = _history(store, cube)
    later = utcnow() + timedelta(days=120)
    before_tables = _tables(warehouse_url, schema)
    before_statuses = _statuses(store, cube_id)

    # a dry run reports every change and makes none
    dry = run_maintenance(store, "default", dry_run=True, clock=lambda: later)
    counts = {item.name: item.count for item in dry.items}
    assert counts == {"health_check": 2, "stable_views": 0, "stray_tables": 1,
                      "expired_tables": 1, "history": 3 + 5, "query_log": 0}, dry.items  # fmt: skip
    assert dry.batch_id is None and dry.status is BatchStatus.DONE
    assert _tables(warehouse_url, schema) == before_tables
    assert _statuses(store, cube_id) == before_statuses
    with store.session() as s:
        assert s.query(BuildBatch).filter_by(batch_type="maintenance").count() == 0

    report = run_maintenance(store, "default", clock=lambda: later, requested_by="test")
    assert report.status is BatchStatus.DONE, report.message
    items = {item.name: item for item in report.items}
    # the two invalidated definitions have no active table left: their views go too
    assert {n: i.count for n, i in items.items()} == {**counts, "stable_views": 2}

    # health check: the missing and the damaged instance are invalid, with the reason,
    # and their definitions wait for the next batch; the rest stays active
    with store.session() as s:
        gone = s.get(AggregateInstance, missing.id)
        broken = s.get(AggregateInstance, damaged.id)
        assert gone.status == broken.status == "invalid"
        assert f"{missing.table_name} is missing" in gone.message
        assert gone.table_dropped_at is not None
        assert f"has 0 rows, {damaged.number_of_rows} recorded" in broken.message
        assert broken.drop_after is not None and broken.table_dropped_at is None
    statuses = _statuses(store, cube_id)
    assert statuses["customers_by_region"][:2] == ["pending", "invalid"]
    assert statuses["orders_customer_region"][:2] == ["pending", "invalid"]
    still = _active(store, cube_id)
    assert set(still) == set(active) - {"customers_by_region", "orders_customer_region"}
    assert all(still[n].id == active[n].id for n in still)

    # tables: the stray and the expired one are gone; the damaged one waits for its grace
    # period; every table that is not ours is untouched
    after = _tables(warehouse_url, schema)
    assert before_tables - after == {STRAY, replaced.table_name}
    assert set(NEAR_MISSES) <= after and damaged.table_name in after
    assert _tables(warehouse_url, other) == {"as_agg_cafebabe_not_an_agg_schema"}
    with store.session() as s:
        assert s.get(AggregateInstance, replaced.id).table_dropped_at is not None

    # history: each cube keeps its newest 100 batches, each schedule its latest execution
    with store.session() as s:
        cube_batches = s.query(BuildBatch).filter_by(cube_id=cube_id).all()
        assert len(cube_batches) == 100
        assert {first.batch_id, rebuilt.batch_id} <= {b.id for b in cube_batches}
        assert {e.job_id: e.executed_at for e in s.query(Execution).all()} == latest

    # the run is a maintenance batch, with what each item did
    with store.session() as s:
        run = batches.get_batch(s, report.batch_id)
        assert run.batch_type == "maintenance" and run.status == "done"
        assert run.cube_id is None and run.project_id is None
        assert run.requested_by == "test" and run.create_date == later
        recorded = {i["name"]: i for i in run.details["items"]}
        assert recorded["stray_tables"]["actions"] == [
            f"dropped stray table {schema}.{STRAY} on {recorded_url(warehouse_url)}"
        ]
        assert recorded["history"]["count"] == 8
        assert "health_check: 2 change(s)" in run.message

    # the cube's next batch builds the invalidated definitions again
    again = build_now(store, runner, "default", cube_id, BatchType.MATERIALIZE_PENDING)
    assert sorted(r.name for r in again.steps) == sorted(KEPT)
    assert again.status is BatchStatus.DONE, again.message
    rebuilt_now = _active(store, cube_id)
    for name in KEPT:
        assert rebuilt_now[name].table_name in _tables(warehouse_url, schema)

    # a second run finds nothing left to do
    second = run_maintenance(store, "default", clock=lambda: later + timedelta(minutes=1))
    assert {i.name: i.count for i in second.items}["stray_tables"] == 0
    assert {i.name: i.count for i in second.items}["health_check"] == 0


def recorded_url(url: str) -> str:
    from aggsched.warehouse import redact_url

    return redact_url(url)


def test_a_building_cube_is_not_checked_and_runs_do_not_overlap(
    store, sml_tpch, tmp_path, tpch_duckdb
):
    schema = f"as_agg_{uuid.uuid4().hex[:8]}"
    aggregates = [a for a in AGGREGATES if a["unique_name"] == "customers_by_region"]
    result = publish_tpch(store, make_repo(sml_tpch, tmp_path / "repo", aggregates),
                          tpch_duckdb, schema)  # fmt: skip
    cube_id = result.cubes["Retail TPCH"]
    runner = BatchRunner(store, heartbeat_seconds=0.2)
    assert build_now(store, runner, "default", cube_id, BatchType.MATERIALIZE_PENDING).status == (
        BatchStatus.DONE
    )
    table = _active(store, cube_id)["customers_by_region"].table_name
    with open_warehouse(tpch_duckdb) as wh:
        wh.execute(f'DROP TABLE "{schema}"."{table}"')
    with store.session() as s:  # a build of the cube is in progress
        cube = catalog.get_cube_by_id(s, "default", cube_id)
        batch = batches.create_batch(s, org_id="default", project_id=cube.project_id,
                                     cube_id=cube_id, batch_type="full-rebuild")  # fmt: skip
        batch.status = "inprogress"
        batch.worker_id = "someone"
    report = run_maintenance(store, "default")
    health = next(i for i in report.items if i.name == "health_check")
    assert health.count == 0
    assert any("its cube is building" in note for note in health.notes)
    assert _active(store, cube_id)["customers_by_region"].table_name == table

    # one run per organization at a time
    with store.session() as s:
        running = batches.get_batch(s, report.batch_id)
        running.status = "inprogress"
        running.end_time = None
    with pytest.raises(ConflictError, match="already running"):
        run_maintenance(store, "default")
    dry = run_maintenance(store, "default", dry_run=True)  # a dry run changes nothing
    assert dry.batch_id is None


def test_an_unreachable_warehouse_is_a_problem_not_a_crash(store, sml_tpch, tmp_path):
    with store.session() as s:
        catalog.upsert_connection(s, "default", "Connection - TPCH",
                                  "postgresql://nobody@127.0.0.1:1/none")  # fmt: skip
        project = catalog.upsert_project(s, "default", "p", name="p")
        catalog.upsert_cube(s, project, "c", "c")
        org_settings.set_setting(s, "default", "aggregates.maintenance.batchRetentionDays", "0")
    report = run_maintenance(store, "default")
    stray = next(i for i in report.items if i.name == "stray_tables")
    assert stray.problems and "cannot list as_agg" in stray.problems[0]
    assert report.status is BatchStatus.FAILED
    with store.session() as s:
        run = batches.get_batch(s, report.batch_id)
        assert run.status == "failed" and "stray_tables: 0 change(s), 1 problem(s)" in run.message


def test_a_cancelled_run_stops_after_its_current_item(store):
    seen = []

    def ask_to_cancel(ctx):
        with ctx.store.session() as s:
            [run] = s.query(BuildBatch).filter_by(batch_type="maintenance").all()
            batches.cancel_or_request(s, run.id)
        time.sleep(0.6)  # the run's heartbeat (0.1 s) notices the request
        seen.append("first")
        return ItemResult("first")

    def never(ctx):
        seen.append("second")
        return ItemResult("second")

    report = run_maintenance(store, "default", heartbeat_seconds=0.1,
                             items=[("first", ask_to_cancel), ("second", never)])  # fmt: skip
    assert seen == ["first"] and report.status is BatchStatus.CANCELLED
    assert report.items[1].problems == [NOT_RUN]
    with store.session() as s:
        assert batches.get_batch(s, report.batch_id).status == "cancelled"
        # and no worker can be handed a maintenance batch to build
        with pytest.raises(InvalidValueError, match="not one of"):
            batches.create_batch(s, org_id="default", project_id=None, cube_id=None,
                                 batch_type="maintenance")  # fmt: skip
