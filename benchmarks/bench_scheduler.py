"""Scheduler benchmark: fire lateness at a sustained rate, the knee, and stopping under load.

Schedules fire every 1, 2, 5 or 10 s; the slower ones are spread over the seconds
(``0/2`` and ``1/2``, ``0/5`` ... ``4/5``, ...) so a rate of R fires/s means about R fires
every second, not a burst every tenth. Scheduler nodes are separate processes (workers
off), started as ``aggsched scheduler`` would be, with default settings. For each step a
set of schedules whose fires add up to the rate is activated for a window; afterwards
the recorded executions are compared with the fires due in the window:

- lateness: the execution's ``executed_at`` (when its pass claimed it) minus its
  scheduled fire time, p50/p99/max in ms; "committed p99" adds the time from that claim
  to the pass's commit (read from the nodes' DEBUG pass log), i.e. when the execution
  and its batch became visible to workers and to the API;
- missed: a fire due in the window that was not recorded by the end of the window plus
  1.5 s (a node that falls behind by more misses); doubled: one recorded twice.

Runs, in order:

1. the target: PostgreSQL, 2 nodes, 1,000 fires/s for 60 s, once with the schedules
   spread over 100 cubes and once with 300 of them (every second) on one cube, whose
   fires all coalesce into that cube's pending batch; target p99 <= 50 ms, 0 missed,
   0 doubled;
2. the knee for 1, 2 and 3 PostgreSQL nodes: rising rates, 10 s each, until p99 passes
   50 ms or a fire is missed (the rate where it starts to fall behind);
3. SQLite, 1 node (the lease allows one): the same steps;
4. stopping under load: SIGTERM to a SQLite node firing 1,000/s while behind; the time
   until it exited.

    .venv/bin/python -m benchmarks scheduler
    .venv/bin/python benchmarks/bench_scheduler.py [--window 60] [--step-window 10]
        [--rates 500,1000,1500,2000,3000,4000] [--quick]
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from sqlalchemy import bindparam, insert, select, update

from aggsched.cron import CronExpression
from aggsched.store import Store, catalog
from aggsched.store.models import Execution, Schedule
from aggsched.store.notify import notify_schedules_changed

PG_ADMIN = os.environ.get("AGGSCHED_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
PERIODS = (1, 2, 5, 10)  # seconds between fires
SHARE = {1: 0.4, 2: 0.3, 5: 0.2, 10: 0.1}  # of the fires/s, by period
HOT = 300  # every-second schedules on the one hot cube
CUBES = 100
TARGET_RATE = 1_000
TARGET_P99_MS = 50.0
POOL_RATE = 4_200  # the pool of schedules covers rates up to this


@dataclass(frozen=True)
class Job:
    job_id: uuid.UUID
    expression: str
    period: int


@dataclass
class Pool:
    """Paused schedules to draw from: by period on cubes 1..99, and the hot cube's."""

    by_period: dict[int, list[Job]]
    hot: list[Job]


@dataclass(frozen=True)
class Result:
    rate: int
    expected: int
    missed: int
    doubled: int
    p50: float
    p99: float
    worst: float
    committed_p99: float

    @property
    def held(self) -> bool:
        return not self.missed and not self.doubled and self.p99 <= TARGET_P99_MS

    def line(self, label: str) -> str:
        return (
            f"  {label:<28} {self.rate:>6}/s {self.expected:>7} {self.missed:>7} "
            f"{self.doubled:>7} {self.p50:>8.1f} {self.p99:>8.1f} {self.worst:>8.1f} "
            f"{self.committed_p99:>10.1f}"
        )


HEADER = (
    f"  {'':<28} {'rate':>8} {'expected':>7} {'missed':>7} {'doubled':>7} "
    f"{'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'commit p99':>10}"
)
PASS_LOG = re.compile(r"scheduler pass: .*stamped=(\S+) committed_ms=([0-9.]+)")


def expression(period: int, offset: int) -> str:
    return "* * * * * ?" if period == 1 else f"{offset}/{period} * * * * ?"


def populate(store: Store, pool_rate: int) -> Pool:
    """Paused schedules for rates up to ``pool_rate`` (bulk-inserted, not through the API)."""
    with store.session() as s:
        project = catalog.upsert_project(s, "default", "bench", name="bench")
        cubes = [catalog.upsert_cube(s, project, f"c{i}", f"c{i}").id for i in range(CUBES)]
        project_id = project.id
    now = datetime.now(UTC)
    rows: list[dict[str, object]] = []
    pool = Pool({p: [] for p in PERIODS}, [])

    def add(cube: uuid.UUID, period: int, offset: int, into: list[Job]) -> None:
        text = expression(period, offset)
        job = Job(uuid.uuid4(), text, period)
        into.append(job)
        rows.append({
            "job_id": job.job_id, "org_id": "default", "project_id": project_id,
            "cube_id": cube, "time_expression": text, "time_zone": "UTC",
            "path": "aggregate/create", "full_build": len(rows) % 3 != 0, "active": False,
            "created_at": now, "created_by_user": "bench", "next_fire_at": None,
            "updated_at": now,
        })  # fmt: skip

    for period in PERIODS:
        for i in range(round(pool_rate * SHARE[period] * period)):
            add(cubes[1 + len(rows) % (CUBES - 1)], period, i % period, pool.by_period[period])
    for _ in range(HOT):
        add(cubes[0], 1, 0, pool.hot)
    with store.engine.begin() as connection:
        connection.execute(insert(Schedule), rows)
    return pool


def choose(pool: Pool, rate: int, hot: bool) -> list[Job]:
    """Schedules whose fires add up to ``rate`` per second, spread over the seconds."""
    chosen = list(pool.hot) if hot else []
    rest = rate - len(chosen)
    for period in PERIODS:
        count = round(rest * SHARE[period] * period)
        if count > len(pool.by_period[period]):
            raise SystemExit(f"the pool covers rates up to {POOL_RATE}/s, not {rate}/s")
        chosen.extend(pool.by_period[period][:count])
    return chosen


def activate(store: Store, chosen: list[Job], start: datetime) -> None:
    """Pause everything, then start ``chosen`` at their first fire after ``start``."""
    firsts = {text: CronExpression.parse(text).next_after(start) for text in
              {j.expression for j in chosen}}  # fmt: skip
    table = Schedule.__table__
    with store.session() as s:
        s.execute(update(Schedule).values(active=False, next_fire_at=None))
        s.execute(
            update(table)
            .where(table.c.job_id == bindparam("b_job"))
            .values(active=True, next_fire_at=bindparam("b_at")),
            [{"b_job": j.job_id, "b_at": firsts[j.expression]} for j in chosen],
        )
        notify_schedules_changed(s)


def pause_all(store: Store) -> None:
    with store.session() as s:
        s.execute(update(Schedule).values(active=False, next_fire_at=None))
        notify_schedules_changed(s)


def commit_times(logs: list[Path]) -> dict[datetime, float]:
    """Claim stamp -> ms from claim to commit, from the nodes' DEBUG pass lines."""
    out: dict[datetime, float] = {}
    for path in logs:
        for match in PASS_LOG.finditer(path.read_text(errors="replace")):
            out[datetime.fromisoformat(match[1])] = float(match[2])
    return out


def measure(
    store: Store, chosen: list[Job], start: datetime, end: datetime, rate: int, logs: list[Path]
) -> Result:
    fires = int((end - start).total_seconds()) + 2  # a 1 s schedule's fires, and more
    cron = {text: CronExpression.parse(text) for text in {j.expression for j in chosen}}
    due = {text: [t for t in c.next_n(start, fires) if t <= end] for text, c in cron.items()}
    expected = {(job.job_id, t) for job in chosen for t in due[job.expression]}
    with store.session() as s:
        rows = s.execute(
            select(Execution.job_id, Execution.scheduled_fire_time, Execution.executed_at).where(
                Execution.scheduled_fire_time > start, Execution.scheduled_fire_time <= end
            )
        ).all()
    seen = Counter((r[0], r[1]) for r in rows)
    late = sorted((r[2] - r[1]).total_seconds() * 1000 for r in rows)
    commits = commit_times(logs)
    visible = sorted((r[2] - r[1]).total_seconds() * 1000 + commits.get(r[2], float("nan"))
                     for r in rows)  # fmt: skip
    return Result(rate, len(expected), len(expected - set(seen)),
                  sum(1 for n in seen.values() if n > 1), pct(late, 0.5), pct(late, 0.99),
                  late[-1] if late else float("nan"), pct(visible, 0.99))  # fmt: skip


def pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def run_step(
    store: Store, pool: Pool, logs: list[Path], rate: int, window: float, *, hot: bool = False
) -> Result:
    chosen = choose(pool, rate, hot)
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
    activate(store, chosen, start)
    end = start + timedelta(seconds=window)
    time.sleep(max(0.0, (end - datetime.now(UTC)).total_seconds()) + 1.5)
    pause_all(store)
    time.sleep(0.5)
    return measure(store, chosen, start, end, rate, logs)


@contextmanager
def nodes(
    url: str, count: int, **env: str
) -> Iterator[tuple[list[subprocess.Popen[bytes]], list[Path]]]:
    """``count`` scheduler processes (``aggsched scheduler``, default settings, DEBUG log
    to a file each); on exit each gets SIGTERM and must be gone within 10 s."""
    home = Path(tempfile.mkdtemp(prefix="aggsched-bench-sched-"))
    environ = os.environ | {"AGGSCHED_DATABASE_URL": url, "AGGSCHED_HOME": str(home), **env}
    logs = [home / f"node-{i}.log" for i in range(count)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "aggsched.cli", "scheduler", "--log-level", "DEBUG"],
            env=environ | {"AGGSCHED_NODE_ID": f"bench-{i}"},
            stdout=subprocess.DEVNULL,
            stderr=log.open("w"),
        )
        for i, log in enumerate(logs)
    ]
    deadline = time.monotonic() + 120
    while not all("started" in log.read_text(errors="replace") for log in logs):
        if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
            raise RuntimeError(f"scheduler nodes did not start (logs: {home})")
        time.sleep(0.2)
    time.sleep(1.5)  # their LISTEN connections come up just after "started"
    try:
        yield procs, logs
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                print(f"  a node did not exit within 10 s of SIGTERM (log: {home})")


def knee(
    store: Store, pool: Pool, url: str, count: int, rates: list[int], window: float, **env: str
) -> str:
    held = 0
    with nodes(url, count, **env) as (_, logs):
        for rate in rates:
            result = run_step(store, pool, logs, rate, window)
            print(result.line(f"{count} node(s)"), flush=True)
            if not result.held:
                return f"{count} node(s): held {held}/s; falls behind at {rate}/s"
            held = rate
    return f"{count} node(s): held every rate tried, up to {held}/s"


@contextmanager
def pg_database() -> Iterator[str]:
    name = f"aggsched_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def target(url: str, window: float) -> list[Result]:
    store = Store.open(url)
    pool = populate(store, POOL_RATE)
    print(f"\nPostgreSQL, 2 nodes, {TARGET_RATE} fires/s for {window:.0f} s "
          f"(target p99 <= {TARGET_P99_MS:.0f} ms, 0 missed, 0 doubled)")  # fmt: skip
    print(HEADER)
    results = []
    try:
        with nodes(url, 2) as (_, logs):
            for hot, label in ((False, f"spread over {CUBES} cubes"),
                               (True, f"{HOT} schedules on one cube")):  # fmt: skip
                result = run_step(store, pool, logs, TARGET_RATE, window, hot=hot)
                print(result.line(label) + ("  PASS" if result.held else "  FAIL"), flush=True)
                results.append(result)
    finally:
        store.dispose()
    return results


def knees(
    label: str, url: str, counts: list[int], rates: list[int], window: float, **env: str
) -> None:
    store = Store.open(url)
    pool = populate(store, POOL_RATE)
    print(f"\n{label}: the knee, {window:.0f} s per rate, spread over {CUBES} cubes")
    print(HEADER)
    try:
        summary = [knee(store, pool, url, count, rates, window, **env) for count in counts]
    finally:
        store.dispose()
    for line in summary:
        print(f"{label} knee, {line}")


def sigterm_under_load(url: str) -> None:
    """A SQLite node 60 s behind on 1,000 fires/s gets SIGTERM: seconds until it exits."""
    store = Store.open(url)
    pool = populate(store, 1_100)
    chosen = choose(pool, TARGET_RATE, hot=False)
    activate(store, chosen, datetime.now(UTC) - timedelta(seconds=50))  # 50 s behind
    with nodes(url, 1) as ([proc], _):
        time.sleep(1.0)
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(60)
        took = time.monotonic() - started
    with store.session() as s:
        fired = len(s.scalars(select(Execution.id)).all())
    store.dispose()
    print(f"\nSIGTERM under load (SQLite, 1,000 fires/s, 50 s behind, {fired} fires made): "
          f"exited with {code} after {took:.2f} s")  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=float, default=60.0, help="seconds at the target")
    parser.add_argument("--step-window", type=float, default=10.0, help="seconds per knee step")
    parser.add_argument("--rates", default="500,1000,1500,2000,3000,4000", help="knee steps")
    parser.add_argument("--nodes", default="1,2,3", help="PostgreSQL node counts for the knee")
    parser.add_argument("--quick", action="store_true", help="10 s at the target, 5 s steps")
    args = parser.parse_args(argv or [])  # ``python -m benchmarks`` passes none
    window, step = (10.0, 5.0) if args.quick else (args.window, args.step_window)
    rates = [int(r) for r in args.rates.split(",")]
    counts = [int(n) for n in args.nodes.split(",")]
    with pg_database() as url:
        target(url, window)
    with pg_database() as url:
        knees("PostgreSQL", url, counts, rates, step)
    with tempfile.TemporaryDirectory() as tmp:
        # SQLite cannot tell another process that this one activated schedules: the node
        # sees them at its safety poll, so it polls every second here (in a real
        # deployment the API runs in the node's process and wakes it at once)
        knees("SQLite", f"sqlite:///{tmp}/bench.db", [1], rates, step,
              AGGSCHED_SCHEDULER_IDLE_SECONDS="1")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        sigterm_under_load(f"sqlite:///{tmp}/stop.db")


if __name__ == "__main__":
    main(sys.argv[1:])
