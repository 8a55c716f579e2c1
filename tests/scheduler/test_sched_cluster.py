"""Real node processes on one PostgreSQL: exactly-once firing across nodes, a node killed
with SIGKILL mid-run (others keep firing, its in-flight batch is recovered), SIGTERM
during a build (cancelled cleanly, re-queued, no orphan tables)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from aggsched.store import Store, aggregates, batches
from aggsched.store.models import BatchStatus, InstanceStatus
from aggsched.warehouse import open_warehouse
from engine.tpch_project import publish_tpch, slow_repo
from scheduler.sched_helpers import (
    add_schedule,
    all_batches,
    assert_cadence,
    executions,
    fire_times,
    make_cubes,
    wait_for,
)

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
EVERY_3S = "0/3 * * * * ?"


def start_node(
    meta_url: str, node_id: str, logs: Path, *parts: str, **env: str
) -> subprocess.Popen:
    environ = os.environ | {
        "AGGSCHED_DATABASE_URL": meta_url,
        "AGGSCHED_NODE_ID": node_id,
        "AGGSCHED_HOME": str(logs),
        "AGGSCHED_HEARTBEAT_SECONDS": "0.5",
        "AGGSCHED_STALE_AFTER_SECONDS": "3",
        "AGGSCHED_WORKER_POLL_SECONDS": "0.5",
        "AGGSCHED_SCHEDULER_IDLE_SECONDS": "2",
        **env,
    }
    if "scheduler" in parts:
        command = ["scheduler", *(["--with-workers"] if "workers" in parts else [])]
    else:
        command = ["worker"]
    log = (logs / f"{node_id}.log").open("w")
    return subprocess.Popen([sys.executable, "-m", "aggsched.cli", *command], env=environ,
                            stdout=log, stderr=subprocess.STDOUT)  # fmt: skip


def stop(proc: subprocess.Popen, timeout: float = 30) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout)


def batch_of(store: Store, batch_id: uuid.UUID):  # type: ignore[no-untyped-def]
    with store.session() as s:
        batch = batches.get_batch(s, batch_id)
        s.expunge(batch)
        return batch


def instances_of(store: Store, batch_id: uuid.UUID) -> list:
    with store.session() as s:
        rows = aggregates.batch_instances(s, batch_id)
        s.expunge_all()
        return rows


def test_three_nodes_fire_exactly_once_and_survive_a_killed_node(
    pg_database: str, tpch_postgres: str, sml_tpch: Path, tmp_path: Path
) -> None:
    store = Store.open(pg_database)
    schema = f"as_agg_{uuid.uuid4().hex[:8]}"
    nodes: dict[str, subprocess.Popen] = {}
    try:
        published = publish_tpch(store, slow_repo(sml_tpch, tmp_path / "repo", 0.008),
                                 tpch_postgres, schema)  # fmt: skip
        slow_batch = published.queued_batches[0]
        nodes["a"] = start_node(pg_database, "node-a", tmp_path, "scheduler", "workers")
        wait_for(lambda: any(i.status == "inprogress" for i in instances_of(store, slow_batch)),
                 30, "node-a to start building the slow batch")  # fmt: skip
        assert batch_of(store, slow_batch).worker_id.startswith("node-a/")

        cubes = make_cubes(store, 20)
        after = datetime.now(UTC) + timedelta(seconds=1)
        jobs = [add_schedule(store, cubes[i % 20], EVERY_3S, after=after) for i in range(200)]
        for name in ("b", "c"):
            nodes[name] = start_node(pg_database, f"node-{name}", tmp_path, "scheduler", "workers")
        time.sleep(5)
        assert batch_of(store, slow_batch).status == "inprogress"  # still building on node-a
        nodes["a"].kill()  # SIGKILL: no clean-up at all
        assert nodes["a"].wait(10) == -signal.SIGKILL
        killed_at = datetime.now(UTC)

        what = "a live node to recover and re-run the killed node's batch"
        assert wait_for(lambda: batch_of(store, slow_batch).attempts == 2, 30, what)
        done = wait_for(
            lambda: (b := batch_of(store, slow_batch)).status != "inprogress" and b,
            60,
            "the recovered batch to finish",
        )
        assert done.status == BatchStatus.DONE.value, done.message
        assert not done.worker_id or not done.worker_id.startswith("node-a/")
        fire_for = max(killed_at + timedelta(seconds=6), after + timedelta(seconds=33))
        time.sleep(max(0.0, (fire_for - datetime.now(UTC)).total_seconds()))
        until = datetime.now(UTC) - timedelta(seconds=1)
        for name in ("b", "c"):
            assert stop(nodes[name]) == 0
    finally:
        for proc in nodes.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    times = fire_times(store)
    for job in jobs:
        assert_cadence(times.get(job, []), EVERY_3S, after, until)
    fired = [e for e in executions(store) if e.job_id in set(jobs)]
    assert len(fired) >= 200 * 10 and not any(e.misfire for e in fired)
    assert fired[-1].scheduled_fire_time > killed_at  # the others kept firing after the kill
    coalesced = [e for e in fired if e.coalesced]
    assert coalesced and all(e.batch_id for e in fired)

    # the killed node's partial work: failed "worker lost", its tables gone
    lost = [i for i in instances_of(store, slow_batch) if i.status == InstanceStatus.FAILED.value]
    assert lost and all(i.message == "worker lost" for i in lost)
    with store.session() as s:
        active = {i.table_name for d in aggregates.cube_definitions(s, done.cube_id)
                  if (i := aggregates.active_instance(s, d.id))}  # fmt: skip
    with open_warehouse(tpch_postgres) as wh:
        assert set(wh.list_tables(schema, "as_agg_")) == active
    # every batch the nodes ran is closed: nothing stays in progress
    assert not [b for b in all_batches(store) if b.status == "inprogress"]
    store.dispose()


def test_sigterm_during_a_build_cancels_cleanly_and_requeues(
    pg_database: str, tpch_postgres: str, sml_tpch: Path, tmp_path: Path
) -> None:
    store = Store.open(pg_database)
    schema = f"as_agg_{uuid.uuid4().hex[:8]}"
    published = publish_tpch(store, slow_repo(sml_tpch, tmp_path / "repo", 0.02),
                             tpch_postgres, schema)  # fmt: skip
    slow_batch = published.queued_batches[0]
    node = start_node(pg_database, "node-t", tmp_path, "workers",
                      AGGSCHED_SHUTDOWN_GRACE_SECONDS="1")  # fmt: skip
    try:
        wait_for(lambda: any(i.status == "inprogress" for i in instances_of(store, slow_batch)),
                 30, "the build to start")  # fmt: skip
        started = time.monotonic()
        assert stop(node) == 0
        assert time.monotonic() - started < 10  # grace 1 s, then a prompt cancel
    finally:
        if node.poll() is None:
            node.kill()
    batch = batch_of(store, slow_batch)
    assert batch.status == BatchStatus.CANCELLED.value and "shut down" in batch.message
    assert all(i.status != "inprogress" for i in instances_of(store, slow_batch))
    with open_warehouse(tpch_postgres) as wh:
        assert wh.list_tables(schema, "as_agg_") == []  # no orphan table
    requeued = [b for b in all_batches(store) if b.status == "pending"]
    assert [b.cube_id for b in requeued] == [batch.cube_id]
    assert "re-queued" in requeued[0].requested_by
    store.dispose()
