"""Operations over HTTP: running maintenance (roles, dry run, history and detail), and
``/metrics`` after a real build on DuckDB (the series move), open or behind a token."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from api_helpers import ApiEnv, build_env
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from aggsched.api import create_app
from aggsched.config import Settings
from aggsched.engine.builds import BatchRunner
from aggsched.engine.node import Node
from aggsched.engine.presence import Presence
from aggsched.planning.plan import BatchType
from aggsched.planning.query import AttributeRef, Query
from aggsched.store import Store, batches, queue, utcnow
from engine.tpch_project import AGGREGATES, make_repo, publish_tpch
from scheduler.sched_helpers import add_schedule

MAINTENANCE = "/org/default/aggregates/maintenance"
HISTORY = "/org/default/aggregates-creation/builds/history"


def test_maintenance_needs_a_manager_and_a_dry_run_records_nothing(api: ApiEnv) -> None:
    viewer = api.client.post(MAINTENANCE, headers=api.headers("viewer"))
    assert viewer.status_code == 403 and "aggregates_manage" in viewer.json()["status"]["message"]
    dry = api.client.post(MAINTENANCE, params={"dry_run": "true"}, headers=api.headers())
    assert dry.status_code == 200, dry.text
    body = dry.json()["response"]
    assert body["dry_run"] is True and body["batch_id"] == "" and body["status"] == "done"
    assert [i["name"] for i in body["items"]] == [
        "health_check", "stable_views", "stray_tables", "expired_tables", "history",
        "query_log",
    ]  # fmt: skip
    listed = api.client.get(HISTORY, params={"batchType": "maintenance"}, headers=api.headers())
    assert listed.json()["response"]["total"] == 0
    bad = api.client.post(MAINTENANCE, params={"dry_run": "perhaps"}, headers=api.headers())
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "dry_run"


def test_a_run_is_a_maintenance_batch_in_the_history(api: ApiEnv) -> None:
    run = api.client.post(MAINTENANCE, headers=api.headers("manager"))
    assert run.status_code == 200, run.text
    body = run.json()["response"]
    assert body["dry_run"] is False and body["status"] == "done"
    batch_id = body["batch_id"]
    listed = api.client.get(HISTORY, params={"batchType": "maintenance"}, headers=api.headers())
    [entry] = [b for b in listed.json()["response"]["data"] if b["id"] == batch_id]
    # the seed's shape, unchanged: an organization-wide batch has no cube or project
    assert set(entry) == {"batchType", "createDate", "cubeId", "endTime", "estimateTime", "id",
                          "organizationId", "projectId", "startTime", "status"}  # fmt: skip
    assert entry["batchType"] == "maintenance" and entry["status"] == "done"
    assert (
        entry["cubeId"] == ""
        and entry["projectId"] == ""
        and entry["organizationId"] == ("default")
    )
    detail = api.client.get(f"/org/default/aggregates-creation/builds/{batch_id}",
                            headers=api.headers("viewer")).json()["response"]  # fmt: skip
    assert detail["requestedBy"] == "manager" and detail["instances"] == []
    assert [i["name"] for i in detail["maintenance"]] == [i["name"] for i in body["items"]]
    # a build batch has no maintenance record
    other = api.client.get(HISTORY, params={"batchType": "full-rebuild"}, headers=api.headers())
    for b in other.json()["response"]["data"][:1]:
        build = api.client.get(f"/org/default/aggregates-creation/builds/{b['id']}",
                               headers=api.headers()).json()["response"]  # fmt: skip
        assert build["maintenance"] is None

    # while a run is in progress, another is refused (409), and it changes nothing
    with api.store.session() as s:
        running = batches.get_batch(s, uuid.UUID(batch_id))
        running.status = "inprogress"
    try:
        busy = api.client.post(MAINTENANCE, headers=api.headers())
        assert busy.status_code == 409 and "already running" in busy.json()["status"]["message"]
    finally:
        with api.store.session() as s:
            batches.get_batch(s, uuid.UUID(batch_id)).status = "done"


# --- /metrics --------------------------------------------------------------------------


def scrape(client: TestClient, **headers: str) -> dict[tuple[str, tuple], float]:
    reply = client.get("/metrics", headers=headers)
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(reply.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def built_env(tmp_path: Path, sml_tpch: Path, tpch_duckdb: str) -> Iterator[ApiEnv]:
    """An app whose store has the TPC-H project published on DuckDB (not built yet)."""
    store = Store.open(f"sqlite:///{tmp_path / 'meta.db'}")
    settings = Settings(home=tmp_path, database_url=f"sqlite:///{tmp_path / 'meta.db'}")
    aggregates = [a for a in AGGREGATES if a["unique_name"] == "customers_by_region"]
    published = publish_tpch(store, make_repo(sml_tpch, tmp_path / "repo", aggregates),
                             tpch_duckdb)  # fmt: skip
    with TestClient(create_app(settings, store), raise_server_exceptions=False) as client:
        env = ApiEnv(client, store, settings, published.project_id,
                     published.cubes["Retail TPCH"], published.project_id,
                     published.cubes["Retail TPCH"])  # fmt: skip
        env.tokens["batch"] = str(published.queued_batches[0])
        yield env
    store.dispose()


def test_metrics_move_after_a_build_a_fire_and_requests(built_env: ApiEnv) -> None:
    env, client = built_env, built_env.client
    before = scrape(client)
    assert value(before, "aggsched_store_up") == 1
    assert value(before, "aggsched_queue_depth") == 1  # the batch queued at publish
    assert value(before, "aggsched_aggregate_instances", status="pending") >= 1

    runner = BatchRunner(env.store, heartbeat_seconds=0.2)
    batch_id = uuid.UUID(env.tokens["batch"])
    with env.store.session() as s:
        assert queue.claim_batch(s, batch_id, runner.worker_id) is not None
    report = runner.run(batch_id)
    built = [step for step in report.steps if step.status == "active"]
    assert report.status == "done" and built, report.message

    # a query from the aggregate just built, one from the base tables
    service = client.app.state.queries
    from_aggregate = service.run(
        "default", env.cube_id, Query(("m_c_custkey_count",), (AttributeRef("Customer Region"),))
    )
    assert from_aggregate.served_by[0].definition == "customers_by_region"
    from_base = service.run(
        "default", env.cube_id, Query(("m_c_custkey_count",), (AttributeRef("Customer Country"),))
    )
    assert from_base.served_from == "base"

    # a schedule fire through a node's scheduler (injected clock, no threads started)
    now = utcnow()
    add_schedule(env.store, env.cube_id, "0/5 * * * * ?", after=now - timedelta(seconds=10))
    node = Node(env.settings.model_copy(update={"node_id": "metrics-node"}), env.store,
                workers=False, clock=lambda: now + timedelta(seconds=1))  # fmt: skip
    fired = node.scheduler.tick()
    assert fired
    node.scheduler.release_lease()
    presence = Presence(env.store, "metrics-node", timedelta(seconds=30))
    presence.start()
    try:
        client.get("/org/default/aggregates-creation/builds/history")  # 401: no token
        after = scrape(client)
    finally:
        presence.stop()

    kind = BatchType.MATERIALIZE_PENDING.value
    assert (
        value(after, "aggsched_batches_total", batch_type=kind, status="done")
        == value(before, "aggsched_batches_total", batch_type=kind, status="done") + 1
    )
    assert (
        value(after, "aggsched_batch_duration_seconds_count", batch_type=kind)
        == value(before, "aggsched_batch_duration_seconds_count", batch_type=kind) + 1
    )
    step_count = "aggsched_aggregate_build_duration_seconds_count"
    steps = value(after, step_count, mode="full", status="active") - value(
        before, step_count, mode="full", status="active"
    )
    assert steps == len(built)
    rows = value(after, "aggsched_aggregate_rows_built_total") - value(
        before, "aggsched_aggregate_rows_built_total"
    )
    assert rows == sum(step.rows or 0 for step in built) > 0
    assert value(after, "aggsched_schedule_fire_lateness_seconds_count") >= value(
        before, "aggsched_schedule_fire_lateness_seconds_count"
    ) + len(fired)
    for served_by in ("customers_by_region", "base"):
        assert (
            value(after, "aggsched_queries_total", served_by=served_by)
            == value(before, "aggsched_queries_total", served_by=served_by) + 1
        )
        assert value(after, "aggsched_query_duration_seconds_count", served_by=served_by) == (
            value(before, "aggsched_query_duration_seconds_count", served_by=served_by) + 1
        )
    # cluster gauges, read from the store at scrape time
    assert value(after, "aggsched_queue_depth") == len({f.batch_id for f in fired})
    assert value(after, "aggsched_builds_running") == 0
    assert value(after, "aggsched_aggregate_instances", status="active") == len(built)
    assert value(after, "aggsched_aggregate_instances", status="pending") == 0
    assert value(after, "aggsched_nodes_alive") == 1
    assert value(scrape(client), "aggsched_nodes_alive") == 0  # its lease was released
    # HTTP requests by route template, never by raw path
    route = "/org/{orgId}/aggregates-creation/builds/history"
    assert value(after, "aggsched_http_requests_total", method="GET", route=route,
                 status="401") >= 1  # fmt: skip
    assert value(after, "aggsched_http_requests_total", method="GET", route="/metrics",
                 status="200") >= 1  # fmt: skip
    assert not any("/org/default/" in dict(labels).get("route", "") for _, labels in after)


def test_metrics_behind_a_token(tmp_path: Path, sml_tpch: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = build_env(f"sqlite:///{home / 'aggsched.db'}", home, sml_tpch,
                    metrics_token="scrape-me")  # fmt: skip
    api = next(env)
    try:
        assert api.client.get("/metrics").status_code == 401
        wrong = api.client.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and wrong.json()["response"] is None
        assert value(scrape(api.client, Authorization="Bearer scrape-me"), "aggsched_store_up")
        assert api.client.get("/healthz").status_code == 200  # still open
    finally:
        next(env, None)
