"""REST API read latency with a big history: builds/history and the scheduler list.

With 1,000,000 batches in the store (100,000 with ``--quick`` or
``AGGSCHED_BENCH_QUICK=1``), on SQLite and on PostgreSQL (when 127.0.0.1:5432 answers),
a real uvicorn server on 127.0.0.1 answers, in the same run:

- the baseline: ``GET /org/default/whoami`` (authenticated, no query of its own);
- builds/history at offset 0, at offset 0 filtered by cube, and at offset N/2 (served
  through the history bookmarks once they are taken: the warm-up waits for them, as a
  server that has been up for a minute has them);
- the scheduler list of a cube holding 1,000 schedules, whole (AtScale's shape) and one
  page of 100 (``limit``, an extension).

It prints p50/p99 latency and requests/s per endpoint, and each p99 as a ratio to the
baseline's p99. Target: <= 3x for history (offset N/2 included) and the whole schedule
list. Rows are bulk-inserted with SQLAlchemy Core (executemany) into a temporary
database, not through the API.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import uvicorn
from fastapi import FastAPI
from sqlalchemy import insert

from aggsched.api import create_app
from aggsched.config import Settings
from aggsched.store import Store, catalog
from aggsched.store.models import BuildBatch, Role, Schedule

PG_ADMIN = os.environ.get("AGGSCHED_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
CUBES = 10
SCHEDULES = 1_000
CHUNK = 20_000
PASSWORD = "bench-pass"


def _setup_catalog(store: Store) -> tuple[uuid.UUID, list[uuid.UUID]]:
    """One project with ``CUBES`` cubes and an admin user."""
    with store.session() as session:
        catalog.ensure_org(session, "default")
        project = catalog.upsert_project(session, "default", "bench", name="bench")
        cubes = [catalog.upsert_cube(session, project, f"cube{i}", f"Cube {i}").id
                 for i in range(CUBES)]  # fmt: skip
        user = catalog.add_user(session, "bench", PASSWORD)
        catalog.grant_role(session, user.id, "default", Role.ADMIN)
        return project.id, cubes


def _batch_rows(project: uuid.UUID, cubes: list[uuid.UUID], start: int, count: int) -> list[dict]:  # type: ignore[type-arg]
    t0 = datetime(2020, 1, 1, tzinfo=UTC)
    rows = []
    for n in range(start, start + count):
        created = t0 + timedelta(seconds=n * 30)
        rows.append({
            "id": uuid.uuid4(), "org_id": "default", "project_id": project,
            "cube_id": cubes[n % len(cubes)], "batch_type": "incremental-rebuild",
            "status": "done", "create_date": created, "start_time": created,
            "end_time": created + timedelta(seconds=5), "estimate_time": 5, "message": "",
            "requested_by": "bench", "attempts": 1, "cancel_requested": False,
        })  # fmt: skip
    return rows


def populate(store: Store, batches: int) -> tuple[uuid.UUID, uuid.UUID]:
    """Bulk-insert the batches and the schedules; returns (project, busy cube)."""
    project, cubes = _setup_catalog(store)
    started = time.perf_counter()
    for start in range(0, batches, CHUNK):
        rows = _batch_rows(project, cubes, start, min(CHUNK, batches - start))
        with store.engine.begin() as connection:
            connection.execute(insert(BuildBatch), rows)
    now = datetime.now(UTC)
    schedules = [
        {"job_id": uuid.uuid4(), "org_id": "default", "project_id": project,
         "cube_id": cubes[0], "time_expression": "0 25 06 ? * *", "time_zone": "UTC",
         "path": "aggregate/create", "full_build": True, "active": True,
         "created_at": now + timedelta(microseconds=i), "created_by_user": "bench",
         "next_fire_at": now + timedelta(days=1), "updated_at": now}
        for i in range(SCHEDULES)
    ]  # fmt: skip
    with store.engine.begin() as connection:
        connection.execute(insert(Schedule), schedules)
        if store.dialect == "postgresql":
            connection.exec_driver_sql("ANALYZE")
        else:
            connection.exec_driver_sql("ANALYZE")
    print(f"  inserted {batches:,} batches + {SCHEDULES} schedules "
          f"in {time.perf_counter() - started:.1f}s")  # fmt: skip
    return project, cubes[0]


@contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    """A real uvicorn server in a thread on a free 127.0.0.1 port."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                            access_log=False)  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def measure(
    client: httpx.Client, url: str, count: int, settle: Callable[[], None] = lambda: None
) -> tuple[float, float, float]:
    """p50 and p99 latency (ms) and requests/s of ``count`` sequential requests, after
    five warm-up requests and ``settle()``."""
    for _ in range(5):
        client.get(url).raise_for_status()
    settle()
    latencies = []
    started = time.perf_counter()
    for _ in range(count):
        t = time.perf_counter()
        response = client.get(url)
        latencies.append((time.perf_counter() - t) * 1000)
        response.raise_for_status()
    elapsed = time.perf_counter() - started
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return statistics.median(latencies), p99, count / elapsed


def run_backend(name: str, url: str, batches: int, requests: int) -> None:
    print(f"\n== {name}: {batches:,} batches ==")
    home = Path(tempfile.mkdtemp(prefix="aggsched-bench-api-"))
    store = Store.open(url)
    project, cube = populate(store, batches)
    settings = Settings(home=home, database_url=url)
    history = "/org/default/aggregates-creation/builds/history"
    cube_base = f"/org/default/project/{project}/cube/{cube}/aggregates-creation"
    targets = [
        ("trivial (whoami)", "/org/default/whoami"),
        ("history offset 0", f"{history}?limit=10"),
        ("history cube filter", f"{history}?limit=10&cubeId={cube}"),
        (f"history offset {batches // 2:,}", f"{history}?limit=10&offset={batches // 2}"),
        (f"history cube offset {batches // 20:,}",
         f"{history}?limit=10&cubeId={cube}&offset={batches // 20}"),
        (f"scheduler list ({SCHEDULES})", f"{cube_base}/scheduler"),
        ("scheduler list limit 100", f"{cube_base}/scheduler?limit=100&offset=500"),
    ]  # fmt: skip
    app = create_app(settings, store)
    ratios = {}
    with serve(app) as base, httpx.Client(base_url=base, timeout=120) as client:
        token = client.get("/default/auth", auth=("bench", PASSWORD)).text
        client.headers["Authorization"] = f"Bearer {token}"
        baseline = None
        for label, path in targets:
            p50, p99, rps = measure(client, path, requests, app.state.bookmarks.wait_idle)
            baseline = baseline or p99
            ratios[label] = p99 / baseline
            print(f"  {label:28s} p50 {p50:8.2f} ms  p99 {p99:8.2f} ms  {rps:8.1f} req/s  "
                  f"p99 ratio {p99 / baseline:5.2f}x")  # fmt: skip
    worst_history = max(v for k, v in ratios.items() if k.startswith("history"))
    print(f"  {name}: worst history p99 ratio {worst_history:.2f}x, whole schedule list "
          f"{ratios[f'scheduler list ({SCHEDULES})']:.2f}x (target <= 3x)")  # fmt: skip
    store.dispose()


@contextmanager
def pg_database() -> Iterator[str | None]:
    """A temporary PostgreSQL database, or None when the server does not answer."""
    try:
        import psycopg

        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3)
    except Exception as exc:
        print(f"\n(PostgreSQL skipped: {exc})")
        yield None
        return
    name = f"aggsched_bench_{uuid.uuid4().hex[:10]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    quick = "--quick" in args or os.environ.get("AGGSCHED_BENCH_QUICK") == "1"
    batches = 100_000 if quick else 1_000_000
    requests = 200
    print("bench_api: p99 of each endpoint vs the trivial authenticated endpoint "
          "(target <= 3x, history offset N/2 and the whole schedule list included)")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="aggsched-bench-sqlite-") as tmp:
        run_backend("SQLite", f"sqlite:///{tmp}/bench.db", batches, requests)
    with pg_database() as url:
        if url:
            run_backend("PostgreSQL", url, batches, requests)


if __name__ == "__main__":
    main()
