"""Catalog round trips: orgs, users, connections, projects, cubes, definitions, instances."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.exc import IntegrityError

from aggsched.store import ConflictError, InvalidValueError, NotFoundError, Store, aggregates
from aggsched.store import api_views as views
from aggsched.store import catalog as cat
from aggsched.store.models import AggregateInstance, InstanceStatus, Role


def _definition(session, store_cube, name: str = "agg_sales_by_nation"):
    cube = cat.get_cube(session, store_cube.org_id, store_cube.project_id, store_cube.cube_id)
    return aggregates.upsert_definition(
        session, cube, unique_name=name, name=name.replace("_", " "),
        type="system_defined", subtype="prediction_defined", fingerprint="f" * 40,
        spec={"attributes": ["n_name"], "metrics": ["sum_sales"]},
        fact_dataset="lineitem", connection_id="tpch_wh",
    )  # fmt: skip


def test_orgs_add_ensure_and_conflict(store: Store) -> None:
    with store.session() as session:
        cat.add_org(session, "acme", "Acme Inc")
        assert cat.ensure_org(session, "acme").name == "Acme Inc"
        assert cat.ensure_org(session, "beta").name == "beta"
        assert [o.id for o in cat.list_orgs(session)] == ["acme", "beta", "default"]
    with pytest.raises(ConflictError, match="acme"), store.session() as session:
        cat.add_org(session, "acme")
    with pytest.raises(NotFoundError, match="nope"), store.session() as session:
        cat.get_org(session, "nope")


def test_password_hashing_and_roles(store: Store) -> None:
    with store.session() as session:
        user = cat.add_user(session, "alice", "s3cret!")
        assert user.password_hash.startswith("$argon2")
        assert "s3cret!" not in user.password_hash
        cat.grant_role(session, user.id, "default", Role.ADMIN)
        cat.grant_role(session, user.id, "default", "aggregates_view")
        cat.grant_role(session, user.id, "default", "admin")  # idempotent
    with store.session() as session:
        assert cat.verify_password(session, "alice", "s3cret!") is not None
        assert cat.verify_password(session, "alice", "wrong") is None
        assert cat.verify_password(session, "bob", "s3cret!") is None
        assert cat.roles_for(session, user.id, "default") == {Role.ADMIN, Role.AGGREGATES_VIEW}
        with pytest.raises(InvalidValueError, match="superuser"):
            cat.grant_role(session, user.id, "default", "superuser")
    with pytest.raises(ConflictError, match="alice"), store.session() as session:
        cat.add_user(session, "alice", "other")


def test_connections_upsert_list_get_delete(store: Store) -> None:
    with store.session() as session:
        first = cat.upsert_connection(session, "default", "tpch_wh", "duckdb:///${DATA}/w.db")
        again = cat.upsert_connection(
            session, "default", "tpch_wh", "postgresql://wh/db", aggregate_schema="aggs"
        )
        assert again.id == first.id
    with store.session() as session:
        conn = cat.get_connection(session, "default", "tpch_wh")
        assert (conn.url, conn.aggregate_schema) == ("postgresql://wh/db", "aggs")
        assert [c.name for c in cat.list_connections(session, "default")] == ["tpch_wh"]
        cat.delete_connection(session, "default", "tpch_wh")
    with store.session() as session:
        assert cat.list_connections(session, "default") == []
        with pytest.raises(NotFoundError, match="tpch_wh"):
            cat.get_connection(session, "default", "tpch_wh")


def test_projects_and_cubes_are_scoped_to_their_org(store: Store, cube) -> None:
    with store.session() as session:
        cat.add_org(session, "other")
        again = cat.upsert_project(session, "default", "tpch_project", name="TPC-H", version="2")
        assert again.id == cube.project_id and again.version == "2"
        with pytest.raises(NotFoundError):
            cat.get_project(session, "other", cube.project_id)
        with pytest.raises(NotFoundError):
            cat.get_cube(session, "other", cube.project_id, cube.cube_id)
        with pytest.raises(NotFoundError):
            cat.get_cube(session, "default", uuid.uuid4(), cube.cube_id)
        found = cat.get_cube(session, "default", cube.project_id, cube.cube_id)
        cat.mark_cube_deleted(session, found)
        assert cat.list_cubes(session, cube.project_id) == []
        with pytest.raises(NotFoundError):
            cat.get_cube(session, "default", cube.project_id, cube.cube_id)
        revived = cat.upsert_cube(session, again, "tpch", "TPC-H")
        assert revived.id == cube.cube_id and revived.deleted_at is None


def test_definitions_upsert_list_block(store: Store, cube) -> None:
    with store.session() as session:
        ids = [_definition(session, cube, f"agg_{i}").id for i in range(5)]
        again = _definition(session, cube, "agg_0")
        assert again.id == ids[0]
        assert again.spec == {"attributes": ["n_name"], "metrics": ["sum_sales"]}
    with store.session() as session:
        rows, total = views.list_definitions(session, "default", cube_id=cube.cube_id, limit=2)
        assert total == 5 and len(rows) == 2
        blocked = aggregates.set_definition_blocked(session, "default", ids[1], True)
        assert blocked.blocked is True
        aggregates.mark_definition_removed(session, blocked)
        _, total = views.list_definitions(
            session, "default", project_id=cube.project_id, status="invalid"
        )
        assert total == 1  # the removed one
        assert len(aggregates.cube_definitions(session, cube.cube_id, include_removed=False)) == 4
        with pytest.raises(InvalidValueError, match="definition type"):
            _definition_bad_type(session, cube)
        with pytest.raises(InvalidValueError, match="limit"):
            views.list_definitions(session, "default", limit=0)


def _definition_bad_type(session, cube) -> None:
    found = cat.get_cube(session, cube.org_id, cube.project_id, cube.cube_id)
    aggregates.upsert_definition(
        session, found, unique_name="x", name="x", type="magic", subtype="manual",
        fingerprint="f", spec={}, fact_dataset="f", connection_id="c",
    )  # fmt: skip


def test_second_active_instance_is_rejected_by_the_database(store: Store, cube) -> None:
    with store.session() as session:
        definition = _definition(session, cube)
        first = aggregates.create_instance(session, definition)
        second = aggregates.create_instance(session, definition)
        aggregates.activate_instance(session, first.id)
    with pytest.raises(IntegrityError), store.session() as session:
        row = session.get(AggregateInstance, second.id)
        row.status = InstanceStatus.ACTIVE.value  # bypass activate_instance on purpose
        session.flush()
    with store.session() as session:
        assert aggregates.active_instance(session, definition.id).id == first.id


def test_activation_swaps_and_schedules_the_old_table_drop(store: Store, cube) -> None:
    now = datetime(2024, 5, 1, 12, tzinfo=UTC)
    with store.session() as session:
        definition = _definition(session, cube)
        old = aggregates.create_instance(session, definition, table_name="as_agg_old")
        new = aggregates.create_instance(session, definition, table_name="as_agg_new")
        assert aggregates.activate_instance(session, old.id, now=now) is None
    with store.session() as session:
        replaced = aggregates.activate_instance(
            session, new.id, grace=timedelta(minutes=5), now=now
        )
        assert replaced is not None and replaced.id == old.id
    with store.session() as session:
        old_row = aggregates.get_instance(session, "default", old.id)
        assert old_row.status == "deleted"
        assert old_row.drop_after == now + timedelta(minutes=5)
        assert aggregates.active_instance(session, definition.id).id == new.id
        assert aggregates.instances_to_drop(session, now + timedelta(minutes=4)) == []
        due = aggregates.instances_to_drop(session, now + timedelta(minutes=5))
        assert [i.id for i in due] == [old.id]
        aggregates.mark_table_dropped(session, old.id, now=now + timedelta(minutes=6))
        assert aggregates.instances_to_drop(session, now + timedelta(hours=1)) == []


def test_failed_activation_leaves_the_old_instance_active(store: Store, cube) -> None:
    with store.session() as session:
        definition = _definition(session, cube)
        old = aggregates.create_instance(session, definition)
        new = aggregates.create_instance(session, definition)
        aggregates.activate_instance(session, old.id)
    with pytest.raises(RuntimeError), store.session() as session:
        aggregates.activate_instance(session, new.id)
        raise RuntimeError("warehouse rename failed")
    with store.session() as session:
        assert aggregates.active_instance(session, definition.id).id == old.id
        assert aggregates.get_instance(session, "default", new.id).status == "pending"


def test_instance_status_updates_and_listing(store: Store, cube) -> None:
    start = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    with store.session() as session:
        definition = _definition(session, cube)
        inst = aggregates.create_instance(session, definition)
        aggregates.set_instance_status(
            session, inst.id, "failed", error="boom", number_of_rows=0,
            materialization_start_time=start, build_duration=1.5,
        )  # fmt: skip
        aggregates.create_instance(session, definition)
        with pytest.raises(InvalidValueError, match="activate_instance"):
            aggregates.set_instance_status(session, inst.id, "active")
        with pytest.raises(InvalidValueError, match="colour"):
            aggregates.set_instance_status(session, inst.id, "failed", colour="red")
    with store.session() as session:
        failed, total = views.list_instances(session, "default", status="failed")
        assert total == 1 and failed[0].error == "boom"
        assert failed[0].materialization_start_time == start
        _, total = views.list_instances(session, "default", cube_id=cube.cube_id)
        assert total == 2
        with pytest.raises(NotFoundError):
            aggregates.get_instance(session, "elsewhere", inst.id)


@pytest.mark.postgres
def test_racing_activations_leave_exactly_one_active(pg_database: str) -> None:
    """Two transactions activate different new instances: one wins, one gets a conflict."""
    import threading

    store = Store.open(pg_database)
    try:
        with store.session() as session:
            project = cat.upsert_project(session, "default", "p", name="p")
            cube = cat.upsert_cube(session, project, "c", "c")
            definition = aggregates.upsert_definition(
                session, cube, unique_name="a", name="a", type="user_defined",
                subtype="manual", fingerprint="f", spec={}, fact_dataset="f",
                connection_id="w",
            )  # fmt: skip
            old, new1, new2 = (aggregates.create_instance(session, definition) for _ in range(3))
            aggregates.activate_instance(session, old.id)
        first_done = threading.Event()
        release = threading.Event()

        def first() -> None:
            with store.session() as session:
                aggregates.activate_instance(session, new1.id)
                first_done.set()
                release.wait(10)

        thread = threading.Thread(target=first)
        thread.start()
        assert first_done.wait(10)
        threading.Timer(0.3, release.set).start()  # commit while the second one waits
        with pytest.raises(ConflictError, match="active instance"), store.session() as session:
            aggregates.activate_instance(session, new2.id)
        thread.join(10)
        with store.session() as session:
            active, total = views.list_instances(session, "default", status="active")
            assert total == 1 and active[0].id == new1.id
            assert aggregates.get_instance(session, "default", old.id).status == "deleted"
    finally:
        store.dispose()


def test_estimates_come_from_each_definitions_latest_successful_build(store: Store, cube) -> None:
    from aggsched.engine.queueing import estimate_seconds

    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    with store.session() as session:
        built = _definition(session, cube, "built")
        never = _definition(session, cube, "never")
        for minutes, seconds, status in ((1, 40.0, "deleted"), (2, 2.5, "failed"), (3, 3.2, None)):
            inst = aggregates.create_instance(session, built)
            aggregates.set_instance_status(
                session, inst.id, status or "inprogress", build_duration=seconds,
                materialization_end_time=t0 + timedelta(minutes=minutes),
            )  # fmt: skip
            if status is None:
                aggregates.activate_instance(session, inst.id)
        durations = aggregates.last_build_seconds(session, cube.cube_id)
        assert durations[built.id] == (3.2, True)  # the latest success, not the failure
        assert durations[never.id] == (0.0, False)
        assert estimate_seconds(session, cube.cube_id, "full-rebuild") == 4
        assert estimate_seconds(session, cube.cube_id, "materialize-pending-instances") == 0
