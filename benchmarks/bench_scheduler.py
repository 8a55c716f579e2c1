"""Scheduler benchmark: fire lateness and the highest sustained fire rate, no miss/double.

10,000 schedules of mixed expressions (every 1, 2, 5, 10 s) on 100 cubes. For rising
target rates, a subset whose fires add up to that many per second is active for a window
while scheduler nodes (separate processes; workers off) fire them. Lateness is the
recorded claim time minus the scheduled fire time; a miss is a fire due in the window
that was not recorded; a double is one recorded twice. PostgreSQL runs 2 nodes, SQLite 1.

    .venv/bin/python benchmarks/bench_scheduler.py [--window 6] [--rates 50,100,200,400]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from sqlalchemy import select, update

from aggsched.cron import CronExpression
from aggsched.store import Store, catalog, schedules
from aggsched.store.models import Execution, Schedule
from aggsched.store.notify import notify_schedules_changed

PG_ADMIN = os.environ.get("AGGSCHED_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
EXPRESSIONS = {
    "* * * * * ?": 1.0,
    "0/2 * * * * ?": 0.5,
    "0/5 * * * * ?": 0.2,
    "0/10 * * * * ?": 0.1,
}
SCHEDULES = 10_000
NODE_CODE = (
    "from aggsched.config import Settings; from aggsched.engine.node import Node; "
    "from aggsched.store import Store; s = Settings(); "
    "st = Store.open(s.resolved_database_url, migrate=False); "
    "Node(s, st, scheduler=True, workers=False).run_forever()"
)


def populate(store: Store) -> list[tuple[uuid.UUID, str]]:
    """10,000 paused schedules, expressions cycling through the mix."""
    kinds = list(EXPRESSIONS)
    with store.session() as s:
        project = catalog.upsert_project(s, "default", "bench", name="bench")
        cubes = [catalog.upsert_cube(s, project, f"c{i}", f"c{i}") for i in range(100)]
        made = []
        for i in range(SCHEDULES):
            cube = cubes[i % len(cubes)]
            schedule = schedules.create_schedule(
                s, org_id="default", project_id=project.id, cube_id=cube.id,
                time_expression=kinds[i % len(kinds)], next_fire_at=None, active=False,
            )  # fmt: skip
            made.append((schedule.job_id, schedule.time_expression))
    return made


def activate(store: Store, chosen: list[tuple[uuid.UUID, str]], start: datetime) -> None:
    with store.session() as s:
        s.execute(update(Schedule).values(active=False, next_fire_at=None))
        for job_id, text in chosen:
            first = CronExpression.parse(text).next_after(start)
            s.execute(
                update(Schedule)
                .where(Schedule.job_id == job_id)
                .values(active=True, next_fire_at=first)
            )
        notify_schedules_changed(s)


def pick(made: list[tuple[uuid.UUID, str]], rate: float) -> list[tuple[uuid.UUID, str]]:
    chosen, total = [], 0.0
    for job in made:
        if total >= rate:
            break
        chosen.append(job)
        total += EXPRESSIONS[job[1]]
    return chosen


def measure(store: Store, chosen: list[tuple[uuid.UUID, str]], start: datetime, end: datetime):
    expected = {
        (job, t)
        for job, text in chosen
        for t in CronExpression.parse(text).next_n(start, 100)
        if t <= end
    }
    with store.session() as s:
        rows = s.execute(
            select(Execution.job_id, Execution.scheduled_fire_time, Execution.executed_at).where(
                Execution.scheduled_fire_time > start, Execution.scheduled_fire_time <= end
            )
        ).all()
    seen = Counter((r[0], r[1]) for r in rows)
    late = sorted((r[2] - r[1]).total_seconds() * 1000 for r in rows)
    missed = len(expected - set(seen))
    doubled = sum(1 for n in seen.values() if n > 1)
    return len(expected), missed, doubled, late


def pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def start_nodes(url: str, count: int, home: Path) -> list[subprocess.Popen]:
    env = os.environ | {
        "AGGSCHED_DATABASE_URL": url,
        "AGGSCHED_HOME": str(home),
        "AGGSCHED_SCHEDULER_IDLE_SECONDS": "2",
        "AGGSCHED_MAX_CONCURRENT_BUILDS": "0",
        "AGGSCHED_SCHEDULER_BATCH_SIZE": "500",
    }
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    return [
        subprocess.Popen(
            [sys.executable, "-c", NODE_CODE], env=env | {"AGGSCHED_NODE_ID": f"b{i}"}, **quiet
        )
        for i in range(count)
    ]


def run_backend(label: str, url: str, nodes: int, rates: list[int], window: float) -> None:
    store = Store.open(url)
    made = populate(store)
    procs = start_nodes(url, nodes, Path(tempfile.mkdtemp()))
    time.sleep(2)
    best = 0
    print(f"\n{label}: {SCHEDULES} schedules, {nodes} node(s)")
    print(f"{'fires/s':>8} {'expected':>9} {'missed':>7} {'doubled':>8} "
          f"{'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")  # fmt: skip
    try:
        for rate in rates:
            chosen = pick(made, rate)
            start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
            activate(store, chosen, start)
            time.sleep(window + 1.5)
            end = start + timedelta(seconds=window)
            expected, missed, doubled, late = measure(store, chosen, start, end)
            print(f"{rate:>8} {expected:>9} {missed:>7} {doubled:>8} {pct(late, 0.5):>8.1f} "
                  f"{pct(late, 0.99):>8.1f} {(late[-1] if late else 0):>8.1f}")  # fmt: skip
            if missed or doubled:
                break
            best = rate
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(30)
        store.dispose()
    print(f"{label}: highest sustained rate without a miss or a double: {best} fires/s")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=float, default=6.0, help="seconds per rate step")
    parser.add_argument("--rates", default="50,100,200,400,800", help="fires/s steps")
    args = parser.parse_args(argv)
    rates = [int(r) for r in args.rates.split(",")]
    name = f"aggsched_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        run_backend("PostgreSQL", PG_ADMIN.rsplit("/", 1)[0] + "/" + name, 2, rates, args.window)
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    with tempfile.TemporaryDirectory() as tmp:
        run_backend("SQLite", f"sqlite:///{tmp}/bench.db", 1, rates, args.window)


if __name__ == "__main__":
    main()
