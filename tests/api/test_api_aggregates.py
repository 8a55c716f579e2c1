"""AtScale's aggregate endpoints: definitions (derived status, filters), instances,
deactivate with block and reactivate with unblock."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from api_helpers import ApiEnv

from aggsched.store import aggregates
from aggsched.store.models import AggregateDefinition, InstanceStatus

BASE = "/aggregates/orgId/default"


def _get(api: ApiEnv, path: str = "", **params: Any) -> dict[str, Any]:
    response = api.client.get(f"{BASE}{path}", params=params, headers=api.headers("viewer"))
    assert response.status_code == 200, response.text
    return response.json()["response"]  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def built(api: ApiEnv) -> tuple[uuid.UUID, uuid.UUID]:
    """One definition of the first cube made active, as a build would (definition, instance)."""
    start = datetime(2025, 3, 1, tzinfo=UTC)
    with api.store.session() as session:
        definition = aggregates.cube_definitions(session, api.cube_id)[0]
        [pending] = aggregates.definition_instances(session, definition.id, ["pending"])
        aggregates.set_instance_status(
            session, pending.id, "inprogress", table_name="as_agg_x", table_schema="as_agg",
            number_of_rows=42, build_duration=2.5, materialization_start_time=start,
            materialization_end_time=start + timedelta(seconds=2.5),
        )  # fmt: skip
        aggregates.activate_instance(session, pending.id)
        return definition.id, pending.id


def test_definitions_have_atscale_fields_and_status(
    api: ApiEnv, built: tuple[uuid.UUID, uuid.UUID]
) -> None:
    page = _get(api, cubeId=str(api.cube_id))
    assert page["total"] == len(page["data"]) >= 2
    by_id = {d["id"]: d for d in page["data"]}
    active = by_id[str(built[0])]
    assert active["status"] == "active" and active["cube_name"]
    assert active["latest_instance"]["stats"]["number_of_rows"] == 42
    assert active["attributes"]["dimensions"] or active["attributes"]["metrics"]
    expected = {"id", "name", "type", "subtype", "incremental", "organization_id",
                "project_id", "cube_id", "cube_name", "connection_id", "attributes",
                "stats", "latest_instance", "blocked"}  # fmt: skip
    assert expected <= set(active)
    assert {d["status"] for d in page["data"]} == {"active", "pending"}
    only_active = _get(api, cubeId=str(api.cube_id), status="active")
    assert [d["id"] for d in only_active["data"]] == [str(built[0])]
    assert _get(api, id=str(built[0]))["total"] == 1
    system = _get(api, subtype="prediction_defined", projectId=str(api.project_id))
    assert all(d["type"] == "system_defined" for d in system["data"])


def test_instances_filters(api: ApiEnv, built: tuple[uuid.UUID, uuid.UUID]) -> None:
    by_def = _get(api, "/instances", definitionId=str(built[0]))
    assert [i["id"] for i in by_def["data"]] == [str(built[1])]
    item = by_def["data"][0]
    assert item["status"] == "active" and item["table_name"] == "as_agg_x"
    assert item["stats"]["materialization_start_time"] == "2025-03-01T00:00:00.000000Z"
    assert _get(api, "/instances", tableName="as_agg_x")["total"] == 1
    window = _get(api, "/instances", startTime="2025-02-28T00:00:00Z",
                  endTime="2025-03-02T00:00:00Z")  # fmt: skip
    assert [i["id"] for i in window["data"]] == [str(built[1])]
    assert _get(api, "/instances", startTime="2025-03-02T00:00:00Z")["total"] == 0
    pending = _get(api, "/instances", status="pending", cubeId=str(api.cube_id))
    assert pending["total"] >= 1 and all(i["status"] == "pending" for i in pending["data"])


def test_deactivate_blocks_and_reactivate_unblocks(
    api: ApiEnv, built: tuple[uuid.UUID, uuid.UUID]
) -> None:
    definition_id, instance_id = built
    url = f"{BASE}/definitionId/{definition_id}/instanceId/{instance_id}?block=true"
    response = api.client.delete(url, headers=api.headers("manager"))
    assert response.status_code == 200, response.text
    assert response.json()["response"]["status"] == "deleted"
    with api.store.session() as session:
        definition = session.get(AggregateDefinition, definition_id)
        assert definition is not None and definition.blocked
        instance = aggregates.get_instance(session, "default", instance_id)
        assert instance.drop_after is not None
        # the table goes after the grace period (default 600 s): running queries finish
        wait = (instance.drop_after - datetime.now(UTC)).total_seconds()
        assert 590 < wait <= 600
    back = api.client.put(f"{BASE}/definitionId/{definition_id}?unblock=true",
                          headers=api.headers("manager"))  # fmt: skip
    assert back.status_code == 200
    assert back.json()["response"]["blocked"] is False
    assert back.json()["response"]["status"] == "pending"
    with api.store.session() as session:
        live = aggregates.definition_instances(session, definition_id, [InstanceStatus.PENDING])
        assert len(live) == 1


def test_aggregate_ids_are_checked(api: ApiEnv, built: tuple[uuid.UUID, uuid.UUID]) -> None:
    wrong_pair = f"{BASE}/definitionId/{uuid.uuid4()}/instanceId/{built[1]}"
    assert api.client.delete(wrong_pair, headers=api.headers()).status_code == 404
    not_uuid = api.client.put(f"{BASE}/definitionId/abc", headers=api.headers())
    assert not_uuid.status_code == 400 and not_uuid.json()["errors"][0]["field"] == "definitionId"
    bad_status = api.client.get(f"{BASE}?status=broken", headers=api.headers())
    assert bad_status.status_code == 400
