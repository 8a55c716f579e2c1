"""Schedules and on-demand builds: behaviour beyond the sample shapes, and bad input."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from api_helpers import ApiEnv
from sqlalchemy import func, select

from aggsched.store.models import BuildBatch, Schedule

CRON = "0 25 06 ? * *"


def _count(api: ApiEnv, model: Any) -> int:
    with api.store.session() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def _post(api: ApiEnv, headers: dict[str, str] | None = None, **kwargs: Any) -> Any:
    merged = {**api.headers(), **(headers or {})}
    return api.client.post(f"{api.cube_path()}/scheduler", headers=merged, **kwargs)


def test_post_accepts_query_parameters_and_options(api: ApiEnv) -> None:
    params = {"time_expression": "0 0 2 ? * MON", "path": "aggregate/create",
              "full_build": "false", "time_zone": "Europe/Paris"}  # fmt: skip
    response = _post(api, params=params)
    assert response.status_code == 200, response.text
    created = response.json()["response"]
    assert created["full_build"] is False and created["time_zone"] == "Europe/Paris"
    # 02:00 in Paris is 01:00 or 00:00 UTC depending on the season, on a Monday
    assert created["next_fire_at"][11:19] in ("00:00:00", "01:00:00")
    assert created["active"] is True


def test_body_wins_over_query(api: ApiEnv) -> None:
    response = _post(api, params={"time_expression": "bad"}, json={"time_expression": CRON})
    assert response.status_code == 200, response.text
    assert response.json()["response"]["time_expression"] == CRON


@pytest.mark.parametrize(
    ("payload", "field", "fragment"),
    [
        ({"time_expression": "0 25 06 * *"}, "time_expression", "position"),
        ({"time_expression": "0 25 06 ? * * 2030 9"}, "time_expression", "position"),
        ({"time_expression": "0 25 06 * * *"}, "time_expression", "position"),
        ({"time_expression": ""}, "time_expression", "required"),
        ({"path": "aggregate/create"}, "time_expression", "required"),
        ({"time_expression": CRON, "path": "aggregate/delete"}, "path", "aggregate/create"),
        ({"time_expression": CRON, "time_zone": "Mars/Base"}, "body.time_zone", "Mars/Base"),
        ({"time_expression": CRON, "full_build": "maybe"}, "body.full_build", "bool"),
        ({"time_expression": 5}, "body.time_expression", "string"),
    ],
)
def test_bad_schedule_input_is_400_and_changes_nothing(
    api: ApiEnv, payload: dict[str, Any], field: str, fragment: str
) -> None:
    before = _count(api, Schedule)
    response = _post(api, json=payload)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["response"] is None
    assert body["status"]["i18n_message"] == "response.error.bad_request"
    problems = {e["field"]: e["problem"] for e in body["errors"]}
    assert field in problems, problems
    assert fragment.lower() in problems[field].lower()
    assert _count(api, Schedule) == before


def test_malformed_json_is_400(api: ApiEnv) -> None:
    body = b'{"time_expression": '
    response = _post(api, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["errors"][0]["problem"]


def test_ids_must_be_uuids_and_cube_must_match_project(api: ApiEnv) -> None:
    client, headers = api.client, api.headers()
    bad = client.get(f"/org/default/project/nope/cube/{api.cube_id}/aggregates-creation/scheduler",
                     headers=headers)  # fmt: skip
    assert bad.status_code == 400
    assert bad.json()["errors"][0]["field"] == "projectId"
    crossed = f"/org/default/project/{api.other_project_id}/cube/{api.cube_id}"
    response = client.get(f"{crossed}/aggregates-creation/scheduler", headers=headers)
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "cubeId"
    unknown = f"/org/default/project/{api.project_id}/cube/{uuid.uuid4()}"
    missing = client.get(f"{unknown}/aggregates-creation/scheduler", headers=headers)
    assert missing.status_code == 404


def test_delete_stops_firing_and_keeps_history(api: ApiEnv) -> None:
    job_id = _post(api, json={"time_expression": CRON}).json()["response"]["job_id"]
    path = f"{api.cube_path()}/scheduler/jobId/{job_id}"
    assert api.client.delete(path, headers=api.headers()).status_code == 200
    with api.store.session() as session:
        row = session.get(Schedule, uuid.UUID(job_id))
        assert row is not None and row.deleted_at is not None
        assert row.next_fire_at is None and row.active is False
    listed = api.client.get(f"{api.cube_path()}/scheduler", headers=api.headers()).json()
    assert job_id not in {s["job_id"] for s in listed["response"]}
    history = api.client.get(f"{api.cube_path()}/scheduler/history/jobId/{job_id}",
                             headers=api.headers())  # fmt: skip
    assert history.status_code == 200 and history.json()["response"]["history"] == []
    again = api.client.delete(path, headers=api.headers())
    assert again.status_code == 404 and job_id in again.json()["status"]["message"]


def test_job_of_another_cube_is_404(api: ApiEnv) -> None:
    job_id = _post(api, json={"time_expression": CRON}).json()["response"]["job_id"]
    other = f"/org/default/project/{api.other_project_id}/cube/{api.other_cube_id}"
    for call in (api.client.delete, api.client.get):
        url = f"{other}/aggregates-creation/scheduler/jobId/{job_id}"
        assert call(url, headers=api.headers()).status_code == 404


def test_pause_and_resume(api: ApiEnv) -> None:
    job_id = _post(api, json={"time_expression": CRON}).json()["response"]["job_id"]
    base = f"{api.cube_path()}/scheduler/jobId/{job_id}"
    paused = api.client.post(f"{base}/pause", headers=api.headers("manager")).json()["response"]
    assert paused["active"] is False and paused["next_fire_at"] == "0001-01-01T00:00:00Z"
    resumed = api.client.post(f"{base}/resume", headers=api.headers()).json()["response"]
    assert resumed["active"] is True and resumed["next_fire_at"].endswith("06:25:00.000000Z")
    assert api.client.get(base, headers=api.headers("viewer")).json()["response"]["active"]


def test_execute_coalesces_and_upgrades(api: ApiEnv) -> None:
    url = f"/org/default/project/{api.other_project_id}/cube/{api.other_cube_id}"
    url += "/aggregates-creation/execute"
    first = api.client.post(url, headers=api.headers()).json()["response"]
    second = api.client.post(url, headers=api.headers()).json()["response"]
    assert second["batch_id"] == first["batch_id"] and second["coalesced"] is True
    full = api.client.post(url, json={"full_build": True}, headers=api.headers()).json()
    assert full["response"]["batch_id"] == first["batch_id"]
    assert full["response"]["batchType"] == "full-rebuild"
    with api.store.session() as session:
        batch = session.get(BuildBatch, uuid.UUID(first["batch_id"]))
        assert batch is not None and batch.batch_type == "full-rebuild"
        assert batch.requested_by == "admin" and batch.status == "pending"


def test_list_items_equal_the_single_schedule_and_page_with_limit_offset(api: ApiEnv) -> None:
    """The list is built without models (for speed): each item must be exactly what the
    single-schedule endpoint (built through the models) answers, fired or not."""
    from datetime import UTC, datetime

    from aggsched.store import schedules

    made = [_post(api, json={"time_expression": CRON}).json()["response"]["job_id"]
            for _ in range(3)]  # fmt: skip
    with api.store.session() as session:
        fired = schedules.get_schedule(session, "default", uuid.UUID(made[1]))
        when = datetime(2024, 1, 1, tzinfo=UTC)
        schedules.record_execution(session, fired, executed_at=when, scheduled_fire_time=when)
    base = f"{api.cube_path()}/scheduler"
    listed = api.client.get(base, headers=api.headers())
    assert listed.status_code == 200
    everything = listed.json()["response"]
    assert isinstance(everything, list) and {s["job_id"] for s in everything} >= set(made)
    for item in everything:
        single = api.client.get(f"{base}/jobId/{item['job_id']}", headers=api.headers())
        assert item == single.json()["response"]
    by_id = {s["job_id"]: s for s in everything}
    assert by_id[made[1]]["latest_execution"]["jobId"] == made[1]
    assert by_id[made[0]]["latest_execution"] == {"executedAt": "0001-01-01T00:00:00Z",
                                                 "id": "", "jobId": ""}  # fmt: skip
    page = api.client.get(base, params={"limit": 2, "offset": 1}, headers=api.headers())
    assert page.json()["response"] == everything[1:3]
    beyond = api.client.get(base, params={"offset": len(everything)}, headers=api.headers())
    assert beyond.json()["response"] == []
    bad = api.client.get(base, params={"limit": 0}, headers=api.headers())
    assert bad.status_code == 400
