"""Every organization-scoped route, discovered from the app itself: unauthenticated calls
get 401, and another organization's admin gets 404 — never 200 or 403, which would tell
that the organization exists or that the object is there."""

from __future__ import annotations

import re
import uuid

import pytest
from api_helpers import ApiEnv

from aggsched.store import batches, catalog, schedules, tokens


def _scoped_operations(api: ApiEnv) -> list[tuple[str, str]]:
    spec = api.client.app.openapi()  # type: ignore[attr-defined]
    return [
        (method.upper(), path)
        for path, operations in spec["paths"].items()
        if path.startswith(("/org/{orgId}", "/aggregates/orgId/{orgId}"))
        for method in operations
    ]


def _real_ids(api: ApiEnv) -> dict[str, str]:
    """Ids of objects that exist in the `default` organization."""
    with api.store.session() as s:
        job = schedules.create_schedule(
            s, org_id="default", project_id=api.project_id, cube_id=api.cube_id,
            time_expression="0 0 1 * * ?", next_fire_at=None,
        )  # fmt: skip
        batch = batches.create_batch(
            s, org_id="default", project_id=api.project_id, cube_id=api.cube_id,
            batch_type="full-rebuild",
        )  # fmt: skip
        admin = catalog.get_user_by_name(s, "admin")
        assert admin is not None
        token = tokens.create_token(s, user=admin, org_id="default", days=1).row
        return {
            "orgId": "default", "projectId": str(api.project_id), "cubeId": str(api.cube_id),
            "jobId": str(job.job_id), "batchId": str(batch.id), "name": "Connection - TPCH",
            "definitionId": str(uuid.uuid4()), "instanceId": str(uuid.uuid4()),
            "tokenId": str(token.id),
        }  # fmt: skip


def test_every_org_route_needs_a_token_and_hides_other_orgs(api: ApiEnv) -> None:
    ids = _real_ids(api)
    operations = _scoped_operations(api)
    assert len(operations) >= 20
    for method, path in operations:
        url = re.sub(r"\{(\w+)\}", lambda m: ids[m.group(1)], path)
        anonymous = api.client.request(method, url, json={})
        assert anonymous.status_code == 401, (method, path, anonymous.text)
        assert "WWW-Authenticate" in anonymous.headers
        foreign = api.client.request(method, url, json={}, headers=api.headers("acme_admin"))
        assert foreign.status_code == 404, (method, path, foreign.text)
        assert foreign.json()["response"] is None


@pytest.mark.parametrize("token", ["not-a-jwt", "eyJhbGciOiJub25lIn0.e30.", ""])
def test_malformed_tokens_are_401_everywhere(api: ApiEnv, token: str) -> None:
    ids = {"orgId": "default", "name": "x"}
    for method, path in _scoped_operations(api):
        url = re.sub(r"\{(\w+)\}", lambda m: ids.get(m.group(1), str(uuid.uuid4())), path)
        reply = api.client.request(method, url, headers={"Authorization": f"Bearer {token}"})
        assert reply.status_code == 401, (method, path, reply.text)
