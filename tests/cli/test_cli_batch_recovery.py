"""A build process killed mid-build never blocks its cube: the next `aggsched build` (or an
execute, or a schedule firing) recovers the batch once its heartbeat is stale, without any
worker running; a live owner is named with its last heartbeat; `aggsched batch recover`
and `aggsched batch cancel` handle a batch by hand. Real processes, real SIGKILL."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aggsched.cli import app
from aggsched.engine.queueing import queue_batch
from aggsched.store import Store, aggregates, batches, catalog
from aggsched.store.models import BatchStatus, BatchType, InstanceStatus
from aggsched.warehouse import duckdb_url, open_warehouse
from engine.tpch_project import make_repo
from sml.helpers import replace_in

STALE = 3.0  # seconds without a heartbeat before a batch counts as lost
STALE_AFTER = timedelta(seconds=STALE)
ENV = {"AGGSCHED_HEARTBEAT_SECONDS": "0.3", "AGGSCHED_STALE_AFTER_SECONDS": str(STALE)}
# customers x every row of KNOB, deduplicated: slow while KNOB is big, exact at any size
SLOW_CUSTOMER = (
    'SELECT DISTINCT c.* FROM "TPCH_SF1"."CUSTOMER" c, "PUBLIC"."KNOB" k '
    'WHERE hash(k.i + c."C_CUSTKEY") % 1000000007 <> 5 OR k.i = 0'
)


def knob(url: str, rows: int) -> None:
    with open_warehouse(url) as wh:
        wh.execute(
            f'CREATE OR REPLACE TABLE "PUBLIC"."KNOB" AS SELECT range AS i FROM range({rows})'
        )


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tpch_duckdb: str) -> dict[str, str]:
    """A data directory, and a private copy of the TPC-H DuckDB file (one writer a file)."""
    source = Path(tpch_duckdb.removeprefix("duckdb://"))
    copy = tmp_path / "tpch.duckdb"
    shutil.copyfile(source, copy)
    values = {"AGGSCHED_HOME": str(tmp_path / "home"), "WAREHOUSE": duckdb_url(copy), **ENV}
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AGGSCHED_DATABASE_URL", raising=False)
    return values


@pytest.fixture
def cli(env: dict[str, str]) -> Callable[..., str]:
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(app, list(args), catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result.stdout if "--json" in args else result.output  # JSON: stdout only

    return run


@pytest.fixture
def cube(cli, env, sml_tpch: Path, tmp_path: Path) -> str:
    """The TPC-H model with one customer aggregate whose dataset is slow while KNOB is big."""
    only = [{"unique_name": "customers_by_region", "metrics": ["m_c_custkey_count"],
             "attributes": [{"name": "Region", "dimension": "Location - TPCH",
                             "relationships_path": ["customer_Customer_-_TPCH"]}]}]  # fmt: skip
    repo = make_repo(sml_tpch, tmp_path / "repo", only)
    replace_in(repo, "datasets/customer.yml", "table: CUSTOMER", f"sql: '{SLOW_CUSTOMER}'")
    knob(env["WAREHOUSE"], 200_000)
    for name in ("Connection - TPCH", "Connection - DateCustom"):
        cli("connection", "add", name, env["WAREHOUSE"], "--aggregate-schema", "as_agg_rec")
    return json.loads(cli("publish", str(repo), "--json"))["cubes"]["Retail TPCH"]


@pytest.fixture
def store(env: dict[str, str]) -> Iterator[Store]:
    store = Store.open(f"sqlite:///{Path(env['AGGSCHED_HOME']) / 'aggsched.db'}")
    yield store
    store.dispose()


def start_build(cube: str, env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "aggsched.cli", "build", cube, "--json"],
            env=os.environ | env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip


def building(store: Store, cube: str, proc: subprocess.Popen, log: Path) -> uuid.UUID:
    """Wait until the process's batch is in progress with its aggregate being built."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        with store.session() as s:
            batch = batches.inprogress_batch(s, uuid.UUID(cube))
            if batch is not None:
                states = {i.status for i in aggregates.batch_instances(s, batch.id)}
                if InstanceStatus.INPROGRESS.value in states:
                    return batch.id
        time.sleep(0.1)
    raise AssertionError(f"the build never started: {log.read_text()}")


def state(store: Store, batch_id: uuid.UUID) -> tuple[str, str | None, list[tuple[str, str]]]:
    with store.session() as s:
        batch = batches.get_batch(s, batch_id)
        instances = [(i.status, i.error or "") for i in aggregates.batch_instances(s, batch_id)]
        return batch.status, batch.worker_id, instances


def kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(10) == -signal.SIGKILL


def test_the_next_build_recovers_a_killed_builds_batch(cli, env, cube, store, tmp_path):
    proc = start_build(cube, env, tmp_path / "first.log")
    batch_id = building(store, cube, proc, tmp_path / "first.log")
    status, worker, _ = state(store, batch_id)
    assert worker.startswith(f"{socket.gethostname()}-{proc.pid}-")  # the owner's node
    kill(proc)
    knob(env["WAREHOUSE"], 1)  # the rebuild is quick
    started = time.monotonic()
    out = json.loads(cli("build", cube, "--json"))
    assert time.monotonic() - started < STALE + 15
    # the killed batch was taken back (re-queued) and this build ran it to the end
    assert out["batch_id"] == str(batch_id) and out["status"] == "done", out
    rows = {a["aggregate"]: a for a in out["aggregates"]}
    assert {a["status"] for a in rows.values()} == {"active"}
    assert rows["customers_by_region"]["rows"] == 5  # five regions
    status, worker, instances = state(store, batch_id)
    assert status == BatchStatus.DONE.value and str(os.getpid()) in worker
    # the killed run's instance failed ("worker lost"); this run built everything
    assert [i for i in instances if i[0] != "active"] == [("failed", "worker lost")]
    with open_warehouse(env["WAREHOUSE"]) as wh:  # no table of the killed build is left
        tables = set(wh.list_tables("as_agg_rec", "as_agg_"))
    assert tables == {a["table"] for a in rows.values()}


def test_a_live_owner_is_named_and_batch_cancel_stops_it(cli, env, cube, store, tmp_path):
    proc = start_build(cube, env, tmp_path / "first.log")
    try:
        batch_id = building(store, cube, proc, tmp_path / "first.log")
        out = cli("build", cube, code=1)
        assert "already has a batch in progress" in out
        assert f"batch {batch_id} is in progress on {socket.gethostname()}-{proc.pid}-" in out
        assert "last heartbeat" in out and "s ago" in out
        assert f"aggsched batch cancel {batch_id}" in " ".join(out.split())
        assert state(store, batch_id)[0] == BatchStatus.INPROGRESS.value  # left alone
        out = cli("batch", "cancel", str(batch_id))
        assert "cancel requested" in out and str(proc.pid) in out
        assert proc.wait(30) == 1  # it stopped: a cancelled batch is not "done"
    finally:
        if proc.poll() is None:
            kill(proc)
    status, _, instances = state(store, batch_id)
    assert status == BatchStatus.CANCELLED.value
    assert [s for s, _ in instances] == [InstanceStatus.CANCELLED.value]  # cut mid-build
    with open_warehouse(env["WAREHOUSE"]) as wh:
        assert wh.list_tables("as_agg_rec", "as_agg_") == []


def test_batch_recover_and_cancel_by_hand(cli, env, cube, store, tmp_path):
    proc = start_build(cube, env, tmp_path / "first.log")
    batch_id = building(store, cube, proc, tmp_path / "first.log")
    kill(proc)
    out = cli("batch", "recover", str(batch_id), code=1)  # its heartbeat is still fresh
    assert "looks alive" in out and "--force" in out and str(proc.pid) in out
    out = json.loads(cli("batch", "recover", str(batch_id), "--force", "--json"))
    assert (out["batch_id"], out["status"], out["instances_failed"]) == (
        str(batch_id),
        "pending",
        1,
    )
    assert state(store, batch_id)[2] == [(InstanceStatus.FAILED.value, "worker lost")]
    with open_warehouse(env["WAREHOUSE"]) as wh:
        assert wh.list_tables("as_agg_rec", "as_agg_") == []
    assert "not in progress" in cli("batch", "recover", str(batch_id), code=1)
    assert f"batch {batch_id}: cancelled" in cli("batch", "cancel", str(batch_id))
    assert state(store, batch_id)[0] == BatchStatus.CANCELLED.value
    assert "not found" in cli("batch", "cancel", str(uuid.uuid4()), code=1)


def test_execute_or_a_fire_recovers_a_stale_batch_and_joins_it(env, cube, store, tmp_path):
    """What the execute endpoint and the scheduler do (`queue_batch` with `stale_after`)."""
    proc = start_build(cube, env, tmp_path / "first.log")
    batch_id = building(store, cube, proc, tmp_path / "first.log")
    kill(proc)
    with store.session() as s:  # heartbeat still fresh: the request waits behind it
        the_cube = catalog.get_cube_by_id(s, "default", uuid.UUID(cube))
        queued = queue_batch(s, the_cube, BatchType.INCREMENTAL_REBUILD, stale_after=STALE_AFTER)
        assert queued.batch.id != batch_id and not queued.coalesced
    assert state(store, batch_id)[0] == BatchStatus.INPROGRESS.value
    time.sleep(STALE + 0.5)
    with store.session() as s:
        the_cube = catalog.get_cube_by_id(s, "default", uuid.UUID(cube))
        queued = queue_batch(s, the_cube, BatchType.FULL_REBUILD, stale_after=STALE_AFTER)
        # the recovered batch is re-queued, and being the oldest pending one it takes this
        assert queued.batch.id == batch_id and queued.coalesced
        assert queued.batch.status == BatchStatus.PENDING.value
        assert queued.batch.batch_type == BatchType.FULL_REBUILD.value  # upgraded
    status, worker, instances = state(store, batch_id)
    assert (status, worker) == (BatchStatus.PENDING.value, None)
    assert instances == [(InstanceStatus.FAILED.value, "worker lost")]
