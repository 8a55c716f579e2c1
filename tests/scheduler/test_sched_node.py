"""Nodes in this process on real PostgreSQL (metadata and warehouse): downtime misfires,
a fast schedule on a slow cube, transient warehouse errors retried, SQL errors not."""

from __future__ import annotations

import itertools
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from aggsched.config import Settings
from aggsched.cron import CronExpression
from aggsched.engine.node import Node
from aggsched.engine.workers import WorkerOptions, WorkerPool
from aggsched.store import Store, aggregates, batches
from aggsched.store.models import BatchStatus, InstanceStatus
from aggsched.warehouse import open_warehouse
from engine.tpch_project import publish_tpch, slow_repo
from scheduler.sched_helpers import (
    add_schedule,
    all_batches,
    executions,
    make_cubes,
    wait_for,
)

pytestmark = pytest.mark.postgres
EVERY_SECOND = "* * * * * ?"


def settings_for(url: str, **fields: object) -> Settings:
    base = {"database_url": url, "heartbeat_seconds": 0.5, "stale_after_seconds": 3,
            "worker_poll_seconds": 0.3, "scheduler_idle_seconds": 1}  # fmt: skip
    return Settings(**(base | fields))


@pytest.fixture
def store(pg_database: str) -> Store:
    opened = Store.open(pg_database)
    yield opened
    opened.dispose()


def run_node(store: Store, settings: Settings, seconds: float, **parts: bool) -> None:
    node = Node(settings, store, **parts)
    node.start()
    try:
        time.sleep(seconds)
    finally:
        node.stop(grace=30)


@pytest.mark.slow
def test_downtime_gives_one_misfire_per_schedule_then_the_cadence(store: Store) -> None:
    settings = settings_for(store.engine.url.render_as_string(hide_password=False),
                            misfire_threshold_seconds=2)  # fmt: skip
    cubes = make_cubes(store, 5)
    after = datetime.now(UTC)
    jobs = [add_schedule(store, cubes[i % 5], EVERY_SECOND, after=after) for i in range(20)]
    run_node(store, settings, 2.5, workers=False)
    time.sleep(5)  # every node down across five fire times, more than the 2 s threshold
    run_node(store, settings, 2.5, workers=False)

    cron = CronExpression.parse(EVERY_SECOND)
    for job in jobs:
        fired = [e for e in executions(store) if e.job_id == job]
        misfires = [e for e in fired if e.misfire]
        assert len(misfires) == 1, [(e.scheduled_fire_time, e.misfire) for e in fired]
        [missed] = misfires
        before = [
            e.scheduled_fire_time
            for e in fired
            if e.scheduled_fire_time < missed.scheduled_fire_time
        ]
        later = [
            e.scheduled_fire_time
            for e in fired
            if e.scheduled_fire_time > missed.scheduled_fire_time
        ]
        # up to the downtime: every second; the misfire is the first fire missed
        assert before == cron.next_n(after, len(before)) and len(before) >= 2
        assert missed.scheduled_fire_time == cron.next_after(before[-1])
        assert missed.executed_at - missed.scheduled_fire_time > timedelta(seconds=2)
        # then no burst of catch-up fires: the cadence resumes after the misfire ran
        assert later and later == cron.next_n(missed.executed_at, len(later))


@pytest.mark.slow
def test_every_second_on_a_slow_cube_never_builds_twice_at_once(
    store: Store, tpch_postgres: str, sml_tpch: Path, tmp_path: Path
) -> None:
    schema = f"as_agg_{uuid.uuid4().hex[:8]}"
    published = publish_tpch(store, slow_repo(sml_tpch, tmp_path / "repo", 0.0015),
                             tpch_postgres, schema)  # fmt: skip
    cube = published.cubes["Retail TPCH"]
    add_schedule(store, cube, EVERY_SECOND, after=datetime.now(UTC), full_build=False)
    url = store.engine.url.render_as_string(hide_password=False)
    second = Store.open(url, migrate=False)
    nodes = [Node(settings_for(url, node_id=f"n{i}"), s) for i, s in enumerate((store, second))]
    try:
        for node in nodes:
            node.start()
        most_at_once = 0
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:  # sample: never two of the cube's batches running
            running = [b for b in all_batches(store) if b.status == "inprogress"]
            most_at_once = max(most_at_once, len(running))
            time.sleep(0.05)
        for node in nodes:
            node._stop.set()  # stop firing on both nodes before letting builds drain
        for node in nodes:
            node.stop(grace=60)
    finally:
        second.dispose()

    assert most_at_once == 1
    cube_batches = [b for b in all_batches(store) if b.cube_id == cube]
    ran = sorted((b for b in cube_batches if b.start_time), key=lambda b: b.start_time)
    assert len(ran) >= 2 and all(b.status == BatchStatus.DONE.value for b in ran)
    for earlier, later in itertools.pairwise(ran):
        # clocks of two nodes stamp these: allow their skew, never a real overlap
        assert earlier.end_time <= later.start_time + timedelta(milliseconds=50)
    fired = executions(store)
    assert len(fired) >= 6
    coalesced = [e for e in fired if e.coalesced]
    assert coalesced and len(ran) < len(fired)
    ids = {b.id for b in cube_batches}
    assert all(e.batch_id in ids for e in fired)
    assert not [b for b in cube_batches if b.status == "inprogress"]


def pool(store: Store) -> WorkerPool:
    options = WorkerOptions(max_concurrent=1, heartbeat_seconds=0.5, poll_seconds=0.2)
    return WorkerPool(store, node_id="pool", options=options)


def terminate_running_build(warehouse_url: str) -> int:
    """Kill the warehouse connection running the slow build (a real dropped connection)."""
    with open_warehouse(warehouse_url) as wh:
        row = wh.fetch_one(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND state = 'active' AND query ILIKE '%pg_sleep%'"
        )
        if row is None:
            return 0
        wh.fetch_one(f"SELECT pg_terminate_backend({int(row[0])})")
        return int(row[0])


def test_a_dropped_warehouse_connection_is_retried_and_the_build_succeeds(
    store: Store, tpch_postgres: str, sml_tpch: Path, tmp_path: Path
) -> None:
    schema = f"as_agg_{uuid.uuid4().hex[:8]}"
    published = publish_tpch(store, slow_repo(sml_tpch, tmp_path / "repo", 0.001),
                             tpch_postgres, schema)  # fmt: skip
    workers = pool(store)
    workers.start()
    try:
        killed = wait_for(lambda: terminate_running_build(tpch_postgres), 20, "the build to run")
        batch_id = published.queued_batches[0]
        wait_for(lambda: _closed(store, batch_id), 60, "the batch to finish")
    finally:
        workers.stop(grace=60)
    assert killed
    with store.session() as s:
        done = batches.get_batch(s, batch_id)
        assert done.status == BatchStatus.DONE.value, done.message
        instances = aggregates.batch_instances(s, done.id)
        assert instances and all(i.status == InstanceStatus.ACTIVE.value for i in instances)


def test_a_sql_error_is_not_retried(
    store: Store, tpch_postgres: str, sml_tpch: Path, tmp_path: Path
) -> None:
    schema = f"as_agg_{uuid.uuid4().hex[:8]}"
    repo = slow_repo(sml_tpch, tmp_path / "repo", 0)
    dataset = repo / "datasets" / "customer.yml"
    text = dataset.read_text(encoding="utf-8")
    assert text.count('"CUSTOMER" c') == 2  # the generic and the PostgreSQL dialect SQL
    dataset.write_text(text.replace('"CUSTOMER" c', '"NO_SUCH_TABLE" c'), encoding="utf-8")
    published = publish_tpch(store, repo, tpch_postgres, schema)
    workers = pool(store)
    workers.start()
    try:
        batch_id = published.queued_batches[0]
        wait_for(lambda: _closed(store, batch_id), 30, "the batch to finish")
    finally:
        workers.stop(grace=30)
    with store.session() as s:
        failed = [i for i in aggregates.batch_instances(s, batch_id)
                  if i.status == InstanceStatus.FAILED.value]  # fmt: skip
        everything = [(i.status, i.error) for i in aggregates.batch_instances(s, batch_id)]
        assert failed, everything
        assert all("no_such_table" in (i.error or "").lower() for i in failed)
        # one attempt each: a retry would have waited at least its 0.5 s backoff
        assert all(i.build_duration is not None and i.build_duration < 0.5 for i in failed)


def _closed(store: Store, batch_id: uuid.UUID) -> bool:
    with store.session() as s:
        return batches.get_batch(s, batch_id).status not in ("pending", "inprogress")


@pytest.mark.slow
@pytest.mark.parametrize("per_connection", [1, 2])
def test_the_per_connection_limit_bounds_builds_on_one_warehouse(
    store: Store, tpch_postgres: str, sml_tpch: Path, tmp_path: Path, per_connection: int
) -> None:
    """Two cubes on the same connections, two workers: with a per-connection limit of 1
    they build one after the other; with 2, side by side."""
    from aggsched.engine.publish import publish_path
    from sml.helpers import replace_in

    schema = f"as_agg_{uuid.uuid4().hex[:8]}"
    first = publish_tpch(store, slow_repo(sml_tpch, tmp_path / "a", 0.001), tpch_postgres, schema)
    other = slow_repo(sml_tpch, tmp_path / "b", 0.001)
    replace_in(other, "catalog.yml", "unique_name: tpc-h", "unique_name: tpc-h-second")
    second = publish_path(store, other)
    queued = [*first.queued_batches, *second.queued_batches]
    assert len(queued) == 2
    options = WorkerOptions(max_concurrent=2, max_per_connection=per_connection,
                            heartbeat_seconds=0.5, poll_seconds=0.1)  # fmt: skip
    workers = WorkerPool(store, node_id="limits", options=options)
    workers.start()
    most_at_once = 0
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(_closed(store, b) for b in queued):
            running = [b for b in all_batches(store) if b.status == "inprogress"]
            most_at_once = max(most_at_once, len(running))
            time.sleep(0.05)
    finally:
        workers.stop(grace=60)
    assert all(_closed(store, b) for b in queued)
    assert most_at_once == per_connection
