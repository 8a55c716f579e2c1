"""`aggsched demo`: a working installation in one command, on the embedded defaults.

TPC-H data (tpchgen-cli) in a DuckDB file (or, with ``--warehouse spark``, in an in-process
Spark whose metastore and tables live in the demo directory), aggsched's own TPC-H SML
project published with its connections, a nightly schedule, the first build queued, and
an admin user. Running it again reuses everything that exists (the data, the password,
the schedule); republishing an unchanged project changes nothing.
"""

from __future__ import annotations

import os
import secrets
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aggsched.config import Settings
from aggsched.engine.publish import publish_path
from aggsched.engine.scheduler import next_fire_time
from aggsched.examples import TPCH_DUCKDB
from aggsched.store import Store, catalog, schedules, utcnow
from aggsched.store.models import DEFAULT_ORG_ID, Role
from aggsched.store.notify import notify_schedules_changed
from aggsched.warehouse import duckdb_url, open_warehouse
from aggsched.warehouse.tpch import default_cache_dir, generate_tpch, load_datecustom, load_tpch

WAREHOUSES = ("duckdb", "spark")
DEMO_SCALE = 0.1
DEMO_USER = "admin"
NIGHTLY = "0 0 2 ? * *"  # 02:00:00 every day, an incremental rebuild after the nightly load


@dataclass(frozen=True)
class DemoInfo:
    warehouse_url: str
    username: str
    password: str
    project_id: uuid.UUID
    cube_id: uuid.UUID
    job_id: uuid.UUID
    queued_batches: list[uuid.UUID]


def _warehouse(demo_dir: Path, scale: float, say: Callable[[str], None]) -> str:
    """The demo DuckDB file, loaded once: built under a temporary name, then renamed,
    so an interrupted first run never leaves a half-loaded warehouse behind."""
    target = demo_dir / "tpch.duckdb"
    if not target.exists():
        say(f"generating TPC-H SF{scale:g} with tpchgen-cli and loading it into {target} ...")
        building = demo_dir / "tpch.loading.duckdb"
        building.unlink(missing_ok=True)
        with open_warehouse(duckdb_url(building)) as wh:
            load_tpch(wh, generate_tpch(scale, default_cache_dir()))
            load_datecustom(wh)
        shutil.move(building, target)
    return duckdb_url(target)


def _spark_warehouse(demo_dir: Path, scale: float, say: Callable[[str], None]) -> str:
    """An in-process Spark (``spark://local[2]/<demo>/spark``) whose metastore and tables
    live in the demo directory; TPC-H is copied there once and registered as external
    Parquet tables, DateCustom loaded; a marker file says the load finished."""
    home = demo_dir / "spark"
    url = f"spark://local[2]{home}"
    done = home / "tpch-loaded"
    if not done.exists():
        say(
            f"generating TPC-H SF{scale:g} with tpchgen-cli and registering it in Spark ({url}) ..."
        )
        data = home / "tpch"
        shutil.rmtree(data, ignore_errors=True)
        shutil.copytree(generate_tpch(scale, default_cache_dir()), data)
        with open_warehouse(url) as wh:
            load_tpch(wh, data)
            load_datecustom(wh)
        done.write_text(f"TPC-H SF{scale:g}\n")
    return url


def _password(demo_dir: Path) -> str:
    """The admin password, generated on the first run and kept (mode 0600)."""
    path = demo_dir / "admin-password"
    if path.exists():
        return path.read_text().strip()
    password = secrets.token_urlsafe(12)
    path.touch(mode=0o600)
    path.write_text(password + "\n")
    return password


def _ensure_admin(store: Store, password: str) -> None:
    with store.session() as s:
        user = catalog.get_user_by_name(s, DEMO_USER) or catalog.add_user(s, DEMO_USER, password)
        catalog.grant_role(s, user.id, DEFAULT_ORG_ID, Role.ADMIN)


def _ensure_schedule(store: Store, project_id: uuid.UUID, cube_id: uuid.UUID) -> uuid.UUID:
    with store.session() as s:
        existing = schedules.list_schedules(s, DEFAULT_ORG_ID, cube_id)
        if existing:
            return existing[0].job_id
        now = utcnow()
        schedule = schedules.create_schedule(
            s,
            org_id=DEFAULT_ORG_ID,
            project_id=project_id,
            cube_id=cube_id,
            time_expression=NIGHTLY,
            next_fire_at=next_fire_time(NIGHTLY, "UTC", now),
            full_build=False,
            created_by_user=DEMO_USER,
            now=now,
        )
        notify_schedules_changed(s)
        return schedule.job_id


def prepare_demo(
    settings: Settings,
    *,
    scale: float = DEMO_SCALE,
    say: Callable[[str], None] = print,
    warehouse: str = "duckdb",
) -> DemoInfo:
    """Set up (or find) the demo installation in `settings.home`; `warehouse` is
    `duckdb` (a file) or `spark` (an in-process Spark, needs `aggsched[spark]` and Java).
    Switching warehouse later re-maps the demo's connections to the other one."""
    if warehouse not in WAREHOUSES:
        raise ValueError(f"unknown demo warehouse {warehouse!r}; expected one of {WAREHOUSES}")
    demo_dir = settings.ensure_home() / "demo"
    demo_dir.mkdir(exist_ok=True)
    if warehouse == "spark":
        url = _spark_warehouse(demo_dir, scale, say)
    else:
        url = _warehouse(demo_dir, scale, say)
    store = Store.from_settings(settings)
    try:
        with store.session() as s:
            for name in ("tpch", "calendar"):
                catalog.upsert_connection(s, DEFAULT_ORG_ID, name, url, aggregate_schema="as_agg")
        result = publish_path(store, TPCH_DUCKDB, env=os.environ, published_by=DEMO_USER)
        cube_id = result.cubes["Sales"]
        password = _password(demo_dir)
        _ensure_admin(store, password)
        job_id = _ensure_schedule(store, result.project_id, cube_id)
    finally:
        store.dispose()
    return DemoInfo(url, DEMO_USER, password, result.project_id, cube_id, job_id,
                    result.queued_batches)  # fmt: skip


def curl_examples(info: DemoInfo, base: str) -> list[str]:
    """One working `curl` per seed endpoint, for the demo's banner."""
    auth = f"TOKEN=$(curl -s -u {info.username}:{info.password} {base}/default/auth)"
    cube = f"{base}/org/default/project/{info.project_id}/cube/{info.cube_id}/aggregates-creation"
    bearer = '-H "Authorization: Bearer $TOKEN"'
    return [
        auth,
        f"curl -s {bearer} '{base}/org/default/aggregates-creation/builds/history?limit=5'",
        f"curl -s {bearer} {cube}/scheduler",
        f"curl -s {bearer} -X POST {cube}/scheduler -H 'Content-Type: application/json' "
        '-d \'{"time_expression": "0 25 06 ? * *", "path": "aggregate/create"}\'',
        f"curl -s {bearer} -X POST {cube}/execute",
        f"curl -s {bearer} {cube}/scheduler/history/jobId/{info.job_id}",
        f"curl -s {bearer} -X DELETE {cube}/scheduler/jobId/<job_id from the POST>",
    ]
