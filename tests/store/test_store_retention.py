"""Retention and maintenance records on SQLite and PostgreSQL: what may be pruned, what is
kept whatever its age, what pruning leaves behind; the 0008 migration keeps every link."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from aggsched.store import (
    ConflictError,
    Store,
    aggregates,
    batches,
    catalog,
    queue,
    retention,
    schedules,
    upgrade,
)
from aggsched.store import maintenance as records
from aggsched.store.db import SchemaVersionError, schema_version
from aggsched.store.models import AggregateInstance, BuildBatch, Cube, Execution

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def _batches(store: Store, cube, n: int, status: str = "done", start: datetime = T0) -> list:
    with store.session() as s:
        made = []
        for i in range(n):
            batch = batches.create_batch(
                s, org_id=cube.org_id, project_id=cube.project_id, cube_id=cube.cube_id,
                batch_type="full-rebuild", now=start + timedelta(minutes=i),
            )  # fmt: skip
            batch.status = status
            made.append(batch.id)
        return made


def _runs(store: Store, n: int) -> list[uuid.UUID]:
    """``n`` finished maintenance runs of the default organization, an hour apart."""
    made = []
    for i in range(n):
        with store.session() as s:
            run = records.start_run(s, "default", worker_id="w", requested_by="test",
                                    now=T0 + timedelta(hours=i))  # fmt: skip
            made.append(run.id)
        with store.session() as s:
            end = T0 + timedelta(hours=i, minutes=1)
            records.finish_run(s, run.id, "done", worker_id="w", message="ok",
                               details={"items": []}, now=end)  # fmt: skip
    return made


def test_each_cube_keeps_its_newest_batches_and_open_ones_are_never_pruned(
    store: Store, cube, cube_factory
) -> None:
    other = cube_factory("orders")
    old = _batches(store, cube, 8)
    recent = _batches(store, cube, 2, start=T0 + timedelta(days=200))
    pending = _batches(store, cube, 1, status="pending", start=T0 - timedelta(days=1))
    running = _batches(store, cube, 1, status="inprogress", start=T0 - timedelta(days=2))
    other_old = _batches(store, other, 3)
    runs = _runs(store, 3)
    cutoff = T0 + timedelta(days=100)
    with store.session() as s:
        chosen = set(retention.prunable_batches(s, "default", cutoff, keep_per_cube=4))
        # newest four of the cube: recent[1], recent[0], old[7], old[6]; open ones stay
        assert chosen == set(old[:6])
        # keep two: the cube keeps only its two recent ones, the other cube and the
        # organization's maintenance runs (one more "cube") lose their oldest
        chosen = set(retention.prunable_batches(s, "default", cutoff, keep_per_cube=2))
        assert chosen == set(old) | {other_old[0], runs[0]}
        assert not chosen & set(recent + pending + running)
        # nothing is old before the earliest batch
        assert retention.prunable_batches(s, "default", T0, keep_per_cube=0) == []
        # another organization's batches are never chosen
        catalog.ensure_org(s, "acme")
        assert retention.prunable_batches(s, "acme", cutoff, keep_per_cube=0) == []


def test_pruned_batches_leave_their_instances_and_executions_unlinked(store: Store, cube):
    old = _batches(store, cube, 3)
    with store.session() as s:
        row = s.get(Cube, cube.cube_id)
        definition = aggregates.upsert_definition(
            s, row, unique_name="d", name="d", type="user_defined", subtype="manual",
            fingerprint="f", spec={}, fact_dataset="x", connection_id="c",
        )  # fmt: skip
        instance = aggregates.create_instance(s, definition, batch_id=old[0])
        job = schedules.create_schedule(
            s, org_id="default", project_id=cube.project_id, cube_id=cube.cube_id,
            time_expression="0 0 1 * * ?", next_fire_at=None,
        )  # fmt: skip
        for day in range(3):
            schedules.record_execution(
                s, job, scheduled_fire_time=T0 + timedelta(days=day),
                executed_at=T0 + timedelta(days=day), batch_id=old[day],
            )  # fmt: skip
    with store.session() as s:
        ids = retention.prunable_batches(s, "default", T0 + timedelta(days=1), keep_per_cube=1)
        assert set(ids) == set(old[:2])
        assert retention.delete_batches(s, ids) == 2
        executions = retention.prunable_executions(s, "default", T0 + timedelta(days=10))
        assert len(executions) == 2  # the latest one stays
        assert retention.delete_executions(s, executions) == 2
    with store.session() as s:
        assert {b.id for b in s.query(BuildBatch)} == {old[2]}
        assert s.get(AggregateInstance, instance.id).batch_id is None
        kept = s.query(Execution).one()
        assert kept.scheduled_fire_time == T0 + timedelta(days=2) and kept.batch_id == old[2]


def test_one_maintenance_run_per_organization_and_recovery_never_requeues_it(store: Store):
    with store.session() as s:
        run = records.start_run(s, "default", worker_id="node-a/maintenance",
                                requested_by="t", now=T0)  # fmt: skip
        assert run.cube_id is None and run.project_id is None and run.status == "inprogress"
    with pytest.raises(ConflictError, match="already running"), store.session() as s:
        records.start_run(s, "default", worker_id="node-b/maintenance", requested_by="t")
    with store.session() as s:
        catalog.ensure_org(s, "acme")
        records.start_run(s, "acme", worker_id="node-b/maintenance", requested_by="t")
    # the node running it died: recovery fails the run (no worker could re-run it)
    with store.session() as s:
        stale = queue.recover_stale_batches(
            s, stale_before=T0 + timedelta(minutes=1), max_attempts=5, org_id="default"
        )
        assert [b.id for b in stale] == [run.id]
        assert stale[0].status == "failed" and "stopped responding" in stale[0].message
    with store.session() as s:
        assert queue.claim_next_batch(s, "worker") is None
        records.start_run(s, "default", worker_id="node-c/maintenance", requested_by="t")


def test_schema_newer_than_the_code_is_refused_naming_both(store: Store, store_url: str):
    version = schema_version(store_url)
    assert version.current and version.database == version.code
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    for attempt in (lambda: upgrade(store_url), lambda: Store.open(store_url, migrate=False)):
        with pytest.raises(SchemaVersionError) as refused:
            attempt()
        assert "revision 9999" in str(refused.value) and f"schema {version.code}" in str(
            refused.value
        )
    with store.engine.connect() as conn:  # refused untouched
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "9999"


def test_migration_0008_keeps_every_batch_link(store_url: str) -> None:
    """SQLite rebuilds build_batches; the instances and executions pointing at it must
    keep their batch ids (dropping the old table would fire ON DELETE SET NULL)."""
    upgrade(store_url, "0002")
    engine = Store.open(store_url, migrate=False).engine
    sqlite = engine.dialect.name == "sqlite"
    ids = {k: uuid.uuid4() for k in ("project", "cube", "batch", "definition", "instance",
                                      "job", "execution")}  # fmt: skip
    when = "2024-01-01 00:00:00.000000" if sqlite else T0
    params = {k: (v.hex if sqlite else v) for k, v in ids.items()} | {"t": when}
    inserts = [
        "INSERT INTO projects (id, org_id, unique_name, name, published_at) "
        "VALUES (:project, 'default', 'p', 'p', :t)",
        "INSERT INTO cubes (id, project_id, org_id, unique_name, name, created_at) "
        "VALUES (:cube, :project, 'default', 'c', 'c', :t)",
        "INSERT INTO build_batches (id, org_id, project_id, cube_id, batch_type, status, "
        "create_date, estimate_time, message, requested_by, attempts, cancel_requested) "
        "VALUES (:batch, 'default', :project, :cube, 'full-rebuild', 'done', :t, 0, '', '', "
        "1, false)",
        "INSERT INTO aggregate_definitions (id, org_id, project_id, cube_id, unique_name, "
        "name, type, subtype, fingerprint, spec, fact_dataset, connection_id, incremental, "
        "blocked, created_at, updated_at) VALUES (:definition, 'default', :project, :cube, "
        "'d', 'd', 'user_defined', 'manual', 'f', '{}', 'x', 'c', false, false, :t, :t)",
        "INSERT INTO aggregate_instances (id, definition_id, org_id, cube_id, batch_id, "
        "status, message, created_at, updated_at) VALUES (:instance, :definition, "
        "'default', :cube, :batch, 'active', '', :t, :t)",
        "INSERT INTO schedules (job_id, org_id, project_id, cube_id, time_expression, "
        "time_zone, path, full_build, active, created_at, created_by_user, updated_at) "
        "VALUES (:job, 'default', :project, :cube, '0 0 1 * * ?', 'UTC', 'aggregate/create', "
        "true, true, :t, '', :t)",
        "INSERT INTO executions (id, job_id, org_id, cube_id, scheduled_fire_time, "
        "executed_at, batch_id, misfire, coalesced) VALUES (:execution, :job, 'default', "
        ":cube, :t, :t, :batch, false, false)",
    ]
    with engine.begin() as conn:
        for statement in inserts:
            conn.execute(text(statement), params)
    engine.dispose()
    before = upgrade(store_url)
    assert (before.database, before.code) == ("0002", schema_version(store_url).code)
    store = Store.open(store_url, migrate=False)
    try:
        with store.session() as s:
            assert s.get(AggregateInstance, ids["instance"]).batch_id == ids["batch"]
            assert s.get(Execution, ids["execution"]).batch_id == ids["batch"]
            batch = s.get(BuildBatch, ids["batch"])
            assert batch.cube_id == ids["cube"] and batch.details is None
            # the new batch type is accepted, and the old CHECK on status still holds
            records.start_run(s, "default", worker_id="w", requested_by="t")
        with pytest.raises(Exception, match=r"(?i)check"), store.engine.begin() as conn:
            conn.execute(text("UPDATE build_batches SET status = 'bogus'"))
    finally:
        store.dispose()
