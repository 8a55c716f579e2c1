"""A real scheduler process far behind on its fires stops promptly on SIGTERM, and what it
fired before stopping is whole: every fire recorded once, in cadence, with its batch, and
each schedule resumes right after its last recorded fire."""

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
from sqlalchemy import func, insert, select

from aggsched.cron import CronExpression
from aggsched.store import Store, catalog
from aggsched.store.models import BuildBatch, Execution, Schedule
from scheduler.sched_helpers import fire_times, make_cubes, wait_for

pytestmark = pytest.mark.slow
EVERY_SECOND = "* * * * * ?"
SCHEDULES = 3_000
BEHIND = timedelta(seconds=40)  # under the 60 s misfire threshold: 40 fires each to catch up


def _count(store: Store) -> int:
    with store.session() as s:
        return int(s.scalar(select(func.count()).select_from(Execution)) or 0)


def test_a_node_behind_on_its_fires_exits_promptly_on_sigterm(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'meta.db'}"
    store = Store.open(url)
    cubes = make_cubes(store, 10)
    first_due = datetime.now(UTC).replace(microsecond=0) - BEHIND
    with store.session() as s:
        project_id = catalog.get_cube_by_id(s, "default", cubes[0]).project_id
        jobs = [uuid.uuid4() for _ in range(SCHEDULES)]
        s.execute(insert(Schedule), [
            {"job_id": job, "org_id": "default", "project_id": project_id,
             "cube_id": cubes[i % len(cubes)], "time_expression": EVERY_SECOND,
             "time_zone": "UTC", "next_fire_at": first_due}
            for i, job in enumerate(jobs)
        ])  # fmt: skip
    environ = os.environ | {
        "AGGSCHED_DATABASE_URL": url,
        "AGGSCHED_HOME": str(tmp_path),
        "AGGSCHED_SCHEDULER_BATCH_SIZE": "200",
    }
    log = (tmp_path / "node.log").open("w")
    node = subprocess.Popen([sys.executable, "-m", "aggsched.cli", "scheduler"], env=environ,
                            stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        wait_for(lambda: _count(store) >= 2 * SCHEDULES, 60, "the node to fire a backlog")
        backlog = SCHEDULES * BEHIND.total_seconds()
        assert _count(store) < backlog / 2, "the node caught up before it could be stopped"
        started = time.monotonic()
        node.send_signal(signal.SIGTERM)
        assert node.wait(30) == 0
        took = time.monotonic() - started
    finally:
        if node.poll() is None:
            node.kill()
            node.wait()
    assert took < 10, f"a node behind on its fires took {took:.1f} s to stop"

    fired = _count(store)
    assert fired < backlog  # it stopped with fires still due: it did not drain them first
    times = fire_times(store)
    cron = CronExpression.parse(EVERY_SECOND)
    with store.session() as s:
        next_at = dict(s.execute(select(Schedule.job_id, Schedule.next_fire_at)).all())
        orphans = s.scalar(
            select(func.count())
            .select_from(Execution)
            .outerjoin(BuildBatch, BuildBatch.id == Execution.batch_id)
            .where(BuildBatch.id.is_(None))
        )
    assert orphans == 0  # every recorded fire has its batch
    cadence = cron.next_n(first_due - timedelta(seconds=1), int(BEHIND.total_seconds()) + 30)
    for job in jobs:
        recorded = times.get(job, [])
        # each schedule's fires so far: its cadence from the first due, no gap, no double
        assert recorded and recorded == cadence[: len(recorded)], job
        # and it resumes right after the last one recorded: nothing lost, nothing redone
        assert next_at[job] == cadence[len(recorded)], job
    store.dispose()
