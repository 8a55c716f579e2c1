"""Each organization's maintenance fires on its own Quartz schedule (UTC), exactly once per
fire even with two scheduler nodes ticking at the same instant on PostgreSQL; a changed
setting moves the next fire, a disabled one stops it. Time is an injected clock."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from aggsched.engine.maintenance import MaintenanceScheduler
from aggsched.engine.scheduler import Scheduler
from aggsched.store import Store, catalog, org_settings
from aggsched.store import maintenance as records
from aggsched.store.models import BuildBatch

DAY0 = datetime(2030, 3, 1, 3, 59, 0, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _runs(store: Store) -> list[BuildBatch]:
    with store.session() as s:
        rows = list(
            s.scalars(
                select(BuildBatch)
                .where(BuildBatch.batch_type == "maintenance")
                .order_by(BuildBatch.create_date, BuildBatch.org_id)
            )
        )
        s.expunge_all()
        return rows


def _next(store: Store, org: str) -> datetime | None:
    with store.session() as s:
        return records.schedule_rows(s)[(org, "maintenance")].next_fire_at


def test_maintenance_fires_daily_at_four_utc_through_the_scheduler(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'meta.db'}")
    clock = Clock(DAY0)
    maintenance = MaintenanceScheduler(store, node_id="node-a", clock=clock)
    scheduler = Scheduler(store, node_id="node-a", clock=clock, also_due=[maintenance.tick])
    try:
        scheduler.tick()
        assert _runs(store) == []
        assert _next(store, "default") == DAY0.replace(hour=4, minute=0)
        clock.now = DAY0.replace(hour=4, minute=0, second=2)
        scheduler.tick()
        maintenance.wait(30)
        [run] = _runs(store)
        assert run.status == "done" and run.org_id == "default"
        assert run.worker_id == "node-a/maintenance" and run.create_date == clock.now
        assert run.requested_by == "maintenance schedule '0 0 4 * * ?' (UTC)"
        assert [i["name"] for i in run.details["items"]] == [
            "health_check", "stable_views", "stray_tables", "expired_tables", "history",
            "query_log",
        ]  # fmt: skip
        assert _next(store, "default") == datetime(2030, 3, 2, 4, tzinfo=UTC)
        clock.now += timedelta(minutes=5)
        scheduler.tick()  # nothing due: no second run that day
        maintenance.wait(30)
        assert len(_runs(store)) == 1

        # a changed schedule fires from now on; a disabled one does not fire
        with store.session() as s:
            org_settings.set_setting(s, "default", "aggregates.maintenance.schedule",
                                     "0 30 * * * ?")  # fmt: skip
            catalog.ensure_org(s, "acme")
            org_settings.set_setting(s, "acme", "aggregates.maintenance.enabled", "false")
        clock.now += timedelta(seconds=10)  # past the settings re-read interval
        scheduler.tick()
        assert _next(store, "default") == DAY0.replace(hour=4, minute=30)
        assert _next(store, "acme") is None
        clock.now = DAY0.replace(hour=4, minute=30, second=1)
        scheduler.tick()
        maintenance.wait(30)
        assert [r.org_id for r in _runs(store)] == ["default", "default"]
        assert _next(store, "default") == DAY0.replace(hour=5, minute=30)
    finally:
        store.dispose()


def test_invalid_schedules_are_refused_when_set(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'meta.db'}")
    try:
        with pytest.raises(Exception, match="not a Quartz cron expression"), store.session() as s:
            org_settings.set_setting(s, "default", "aggregates.maintenance.schedule", "daily")
        with store.session() as s:
            assert (
                org_settings.get_setting(s, "default", "aggregates.maintenance.schedule")
                == "0 0 4 * * ?"
            )
    finally:
        store.dispose()


@pytest.mark.postgres
def test_two_nodes_fire_each_maintenance_exactly_once(pg_database: str) -> None:
    stores = [Store.open(pg_database), Store.open(pg_database, migrate=False)]
    orgs = ["default", "acme", "globex", "initech"]
    with stores[0].session() as s:
        for org in orgs[1:]:
            catalog.ensure_org(s, org)
        org_settings.set_setting(s, "acme", "aggregates.maintenance.schedule", "0 0 4,16 * * ?")
    clock = Clock(DAY0)
    nodes = [
        MaintenanceScheduler(store, node_id=f"node-{n}", clock=clock, heartbeat_seconds=0.2)
        for n, store in enumerate(stores)
    ]
    days = 6
    midnight = DAY0.replace(hour=0, minute=0)
    try:
        for node in nodes:  # the first tick reads the settings: next fires at 04:00
            node.tick(DAY0)
        for day in range(days):
            for hour in (4, 5, 16):
                clock.now = midnight + timedelta(days=day, hours=hour, seconds=1)
                barrier = threading.Barrier(len(nodes))

                def tick(node: MaintenanceScheduler, barrier=barrier) -> None:
                    barrier.wait()
                    node.tick(clock.now)

                threads = [threading.Thread(target=tick, args=(n,)) for n in nodes]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
                for node in nodes:
                    node.wait(30)
        runs = _runs(stores[0])
        per_org = {org: [r for r in runs if r.org_id == org] for org in orgs}
        assert {org: len(rs) for org, rs in per_org.items()} == {
            "default": days, "acme": 2 * days, "globex": days, "initech": days,
        }  # fmt: skip
        assert all(r.status == "done" for r in runs), [r.message for r in runs]
        fired_at = [(r.org_id, r.create_date) for r in runs]
        assert len(set(fired_at)) == len(fired_at)  # never twice for one fire
        assert {r.worker_id for r in runs} <= {"node-0/maintenance", "node-1/maintenance"}
    finally:
        for store in stores:
            store.dispose()
