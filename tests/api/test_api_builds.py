"""Builds history (paging, filters, ordering, bad input), batch detail and cancel."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from api_helpers import ApiEnv

from aggsched.store import aggregates, batches
from aggsched.store.models import BatchStatus

HISTORY = "/org/default/aggregates-creation/builds/history"
T0 = datetime(2025, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def batch_ids(api: ApiEnv) -> list[uuid.UUID]:
    """Five closed batches on the second project's cube, one minute apart."""
    ids = []
    with api.store.session() as session:
        for minute in range(5):
            batch = batches.create_batch(
                session, org_id="default", project_id=api.other_project_id,
                cube_id=api.other_cube_id, batch_type="full-rebuild",
                now=T0 + timedelta(minutes=minute),
            )  # fmt: skip
            batch.status = BatchStatus.DONE.value if minute % 2 else BatchStatus.FAILED.value
            ids.append(batch.id)
    return ids


def test_history_newest_first_paged(api: ApiEnv, batch_ids: list[uuid.UUID]) -> None:
    params = {"cubeId": str(api.other_cube_id), "batchType": "full-rebuild", "limit": 2}
    first = api.client.get(HISTORY, params=params, headers=api.headers()).json()["response"]
    assert [b["id"] for b in first["data"]] == [str(batch_ids[4]), str(batch_ids[3])]
    assert first["total"] == 5 and first["limit"] == 2 and first["offset"] == 0
    assert first["data"][0]["createDate"] == "2025-01-01T00:04:00.000000Z"
    page3 = api.client.get(HISTORY, params={**params, "offset": 4}, headers=api.headers())
    assert [b["id"] for b in page3.json()["response"]["data"]] == [str(batch_ids[0])]


def test_history_filters(api: ApiEnv, batch_ids: list[uuid.UUID]) -> None:
    failed = api.client.get(
        HISTORY, params={"status": "failed", "projectId": str(api.other_project_id)},
        headers=api.headers(),
    ).json()["response"]  # fmt: skip
    assert {b["id"] for b in failed["data"]} >= {str(batch_ids[i]) for i in (0, 2, 4)}
    assert all(b["status"] == "failed" for b in failed["data"])
    pulled = api.client.get(HISTORY, params={"force_pull": "true"}, headers=api.headers())
    assert pulled.json()["response"]["force_pull"] is True


@pytest.mark.parametrize(
    ("params", "field"),
    [({"limit": 0}, "limit"), ({"limit": 1001}, "limit"), ({"offset": -1}, "offset"),
     ({"limit": "ten"}, "limit"), ({"status": "bogus"}, "status"),
     ({"batchType": "rebuild"}, "batchType"), ({"cubeId": "42"}, "cubeId")],
)  # fmt: skip
def test_history_bad_input(api: ApiEnv, params: dict[str, object], field: str) -> None:
    response = api.client.get(HISTORY, params=params, headers=api.headers())
    assert response.status_code == 400
    assert [e["field"] for e in response.json()["errors"]] == [field]


def test_batch_detail_lists_instances(api: ApiEnv, batch_ids: list[uuid.UUID]) -> None:
    with api.store.session() as session:
        definition = aggregates.cube_definitions(session, api.other_cube_id)[0]
        instance = aggregates.create_instance(session, definition, batch_id=batch_ids[1])
        aggregates.set_instance_status(
            session, instance.id, "failed", error="boom", sql="SELECT 1", number_of_rows=0,
            build_duration=1.5, materialization_start_time=T0,
        )  # fmt: skip
    response = api.client.get(
        f"/org/default/aggregates-creation/builds/{batch_ids[1]}", headers=api.headers("viewer")
    )
    assert response.status_code == 200
    detail = response.json()["response"]
    assert detail["id"] == str(batch_ids[1]) and detail["status"] == "done"
    [built] = detail["instances"]
    assert built["definition_name"] == definition.name and built["error"] == "boom"
    assert built["sql"] == "SELECT 1" and built["seconds"] == 1.5
    assert built["materialization_start_time"] == "2025-01-01T00:00:00.000000Z"
    assert built["materialization_end_time"] == "0001-01-01T00:00:00Z"


def test_cancel_pending_batch(api: ApiEnv) -> None:
    with api.store.session() as session:
        batch = batches.create_batch(
            session, org_id="default", project_id=api.project_id, cube_id=api.cube_id,
            batch_type="incremental-rebuild",
        )  # fmt: skip
    url = f"/org/default/aggregates-creation/builds/{batch.id}/cancel"
    assert api.client.post(url, headers=api.headers("viewer")).status_code == 403
    response = api.client.post(url, headers=api.headers("manager"))
    assert response.status_code == 200
    assert response.json()["response"]["status"] == "cancelled"
    assert response.json()["response"]["endTime"] != "0001-01-01T00:00:00Z"
    acme = api.client.post(url.replace("/default/", "/acme/"), headers=api.headers("acme_admin"))
    assert acme.status_code == 404
    missing = api.client.get(f"/org/default/aggregates-creation/builds/{uuid.uuid4()}",
                             headers=api.headers())  # fmt: skip
    assert missing.status_code == 404


def test_large_totals_are_cached_then_refreshed(api: ApiEnv, batch_ids: list[uuid.UUID]) -> None:
    from aggsched.api.totals import TotalCounter
    from aggsched.store import api_views

    counter = TotalCounter(api.store, exact_up_to=2, max_age=0.0)
    stmt = api_views.batch_history_stmt("default", cube_id=api.other_cube_id)
    with api.store.session() as session:
        exact = api_views.count_rows(session, stmt)
        assert exact >= 5 and api_views.count_rows(session, stmt, cap=2) == 3
        assert counter.total(session, "k", stmt) == exact
        batches.create_batch(session, org_id="default", project_id=api.other_project_id,
                             cube_id=api.other_cube_id, batch_type="full-rebuild")  # fmt: skip
    with api.store.session() as session:
        assert counter.total(session, "k", stmt) == exact  # stale value, refresh queued
    counter._executor.submit(lambda: None).result()  # one worker: the refresh ran first
    with api.store.session() as session:
        assert counter.total(session, "k", stmt) == exact + 1
    small = TotalCounter(api.store, exact_up_to=10_000)
    with api.store.session() as session:
        assert small.total(session, "s", stmt) == exact + 1
