"""The six seed endpoints against AtScale's sample bodies (SQLite and PostgreSQL).

Each seed test compares a real response with the documentation's sample: the same
envelope, the same keys (extensions may add keys, never drop one), the same value types
and the same timestamp shapes, including Go's zero time and the empty
``latest_execution`` before a schedule first runs.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from api_helpers import ApiEnv
from sqlalchemy import update

from aggsched.store import schedules
from aggsched.store.models import BuildBatch, Schedule

OK_STATUS = {"i18n_message": "response.ok", "message": "OK"}
ZERO = "0001-01-01T00:00:00Z"
TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")

SAMPLE_HISTORY = {
    "response": {
        "data": [{
            "batchType": "materialize-pending-instances",
            "createDate": "2023-04-13T22:39:38.826297Z",
            "cubeId": "dea39a20-9920-4a79-51f3-1ff3a399fbd3",
            "endTime": "2023-04-13T22:39:38.869098Z",
            "estimateTime": 0,
            "id": "a50fa6cd-a159-47ca-9b99-0261894e8dca",
            "organizationId": "default",
            "projectId": "7051865d-74a8-4aad-4904-ebf88d56880c",
            "startTime": "0001-01-01T00:00:00Z",
            "status": "done",
        }],
        "force_pull": False, "limit": 10, "offset": 0,
    },
    "status": OK_STATUS,
}  # fmt: skip
SAMPLE_SCHEDULE = {
    "created_at": "2023-05-22T08:50:56.138663Z",
    "created_by_user": "admin",
    "cube_id": "b89a2fb7-74f4-4828-706e-70f7186e10a0",
    "full_build": True,
    "job_id": "da67817b-22db-4dbf-91a8-05124e241f77",
    "latest_execution": {"executedAt": "0001-01-01T00:00:00Z", "id": "", "jobId": ""},
    "organization_Id": "default",
    "path": "aggregate/create",
    "project_id": "956a27dd-32b1-482e-7d5c-2488fdb9c943",
    "time_expression": "0 25 06 ? * *",
}
SAMPLE_EXECUTE = {"response": {"success": True}, "status": OK_STATUS}
SAMPLE_DELETE = {
    "response": "successfully deleted jobId: [da67817b-22db-4dbf-91a8-05124e241f77]",
    "status": OK_STATUS,
}
SAMPLE_JOB_HISTORY = {
    "response": {
        "history": [{
            "executedAt": "2023-05-22T11:30:47.412504Z",
            "id": "9b9ce2f2-b631-4d3b-8dc7-f75bd046f208",
            "jobId": "7b1c5866-87d6-4db5-b4d4-ddc0c042fd31",
        }],
        "job_id": "7b1c5866-87d6-4db5-b4d4-ddc0c042fd31",
    },
    "status": OK_STATUS,
}  # fmt: skip


def kind(value: Any) -> Any:
    """The shape of a JSON value: structure, types and the form of each string."""
    if isinstance(value, dict):
        return {key: kind(item) for key, item in value.items()}
    if isinstance(value, list):
        return [kind(value[0])] if value else []
    if isinstance(value, str):
        if value == ZERO:
            return "zero-time"
        if TS.match(value):
            return "timestamp"
        try:
            uuid.UUID(value)
            return "uuid"
        except ValueError:
            return "empty" if value == "" else "text"
    return type(value).__name__


def assert_same_shape(sample: Any, actual: Any, where: str = "$") -> None:
    """Every key of the sample is in the response with the same shape (extra keys ok)."""
    if isinstance(sample, dict):
        assert isinstance(actual, dict), f"{where}: expected an object, got {actual!r}"
        for key, value in sample.items():
            assert key in actual, f"{where}: key {key!r} missing from {sorted(actual)}"
            assert_same_shape(value, actual[key], f"{where}.{key}")
    elif isinstance(sample, list):
        assert isinstance(actual, list) and actual, f"{where}: expected a non-empty list"
        assert_same_shape(sample[0], actual[0], f"{where}[0]")
    else:
        assert kind(sample) == kind(actual), f"{where}: {actual!r} is not shaped like {sample!r}"


def _new_schedule(api: ApiEnv, **body: Any) -> dict[str, Any]:
    payload = {"time_expression": "0 25 06 ? * *", "path": "aggregate/create", **body}
    response = api.client.post(f"{api.cube_path()}/scheduler", json=payload, headers=api.headers())
    assert response.status_code == 200, response.text
    return response.json()["response"]


def test_builds_history_matches_sample(api_any: ApiEnv) -> None:
    api = api_any
    with api.store.session() as session:  # close the publish batch like the sample's
        session.execute(
            update(BuildBatch)
            .where(BuildBatch.cube_id == api.cube_id)
            .values(status="done", end_time=datetime.now(UTC))
        )
    response = api.client.get(
        "/org/default/aggregates-creation/builds/history",
        params={"cubeId": str(api.cube_id)}, headers=api.headers("viewer"),
    )  # fmt: skip
    assert response.status_code == 200, response.text
    body = response.json()
    assert_same_shape(SAMPLE_HISTORY, body)
    assert body["status"] == OK_STATUS
    item = body["response"]["data"][0]
    assert item["cubeId"] == str(api.cube_id) and item["organizationId"] == "default"
    assert item["startTime"] == ZERO and item["status"] == "done"


def test_post_scheduler_matches_sample(api_any: ApiEnv) -> None:
    created = _new_schedule(api_any)
    assert_same_shape(SAMPLE_SCHEDULE, created)
    assert created["created_by_user"] == "admin"
    assert created["time_expression"] == "0 25 06 ? * *"
    assert created["full_build"] is True
    assert created["latest_execution"] == {"executedAt": ZERO, "id": "", "jobId": ""}
    assert created["next_fire_at"].endswith("06:25:00.000000Z")


def test_get_scheduler_matches_sample(api_any: ApiEnv) -> None:
    created = _new_schedule(api_any)
    response = api_any.client.get(
        f"{api_any.cube_path()}/scheduler", headers=api_any.headers("viewer")
    )
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == OK_STATUS
    listed = {item["job_id"]: item for item in body["response"]}
    assert created["job_id"] in listed
    assert_same_shape({"response": [SAMPLE_SCHEDULE]}, {"response": [listed[created["job_id"]]]})


def test_execute_matches_sample(api_any: ApiEnv) -> None:
    response = api_any.client.post(f"{api_any.cube_path()}/execute", headers=api_any.headers())
    assert response.status_code == 200
    body = response.json()
    assert_same_shape(SAMPLE_EXECUTE, body)
    assert body["response"]["success"] is True
    assert body["response"]["batchType"] == "incremental-rebuild"


def test_delete_scheduler_matches_sample(api_any: ApiEnv) -> None:
    job_id = _new_schedule(api_any)["job_id"]
    response = api_any.client.delete(
        f"{api_any.cube_path()}/scheduler/jobId/{job_id}", headers=api_any.headers()
    )
    assert response.status_code == 200
    body = response.json()
    assert_same_shape(SAMPLE_DELETE, body)
    assert body["response"] == f"successfully deleted jobId: [{job_id}]"


def test_schedule_history_matches_sample(api_any: ApiEnv) -> None:
    job_id = uuid.UUID(_new_schedule(api_any)["job_id"])
    base = datetime(2026, 1, 1, 6, 25, tzinfo=UTC)
    with api_any.store.session() as session:
        schedule = session.get(Schedule, job_id)
        for day in range(3):
            when = base + timedelta(days=day)
            schedules.record_execution(
                session, schedule, scheduled_fire_time=when, executed_at=when
            )
    response = api_any.client.get(
        f"{api_any.cube_path()}/scheduler/history/jobId/{job_id}", headers=api_any.headers()
    )
    assert response.status_code == 200
    body = response.json()
    assert_same_shape(SAMPLE_JOB_HISTORY, body)
    history = body["response"]["history"]
    assert body["response"]["job_id"] == str(job_id)
    assert [h["executedAt"] for h in history] == [
        "2026-01-03T06:25:00.000000Z", "2026-01-02T06:25:00.000000Z",
        "2026-01-01T06:25:00.000000Z",
    ]  # fmt: skip
    assert {h["jobId"] for h in history} == {str(job_id)}
    listed = api_any.client.get(f"{api_any.cube_path()}/scheduler", headers=api_any.headers())
    mine = next(s for s in listed.json()["response"] if s["job_id"] == str(job_id))
    assert mine["latest_execution"] == history[0]
