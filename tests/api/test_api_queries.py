"""The query endpoints on a real app: answers, errors, the log, and query utilization."""

from __future__ import annotations

import uuid

import pytest
from api_helpers import ApiEnv

from aggsched.engine.builds import BatchRunner, build_now
from aggsched.planning.plan import BatchType
from aggsched.store import catalog
from aggsched.store.models import BatchStatus
from aggsched.warehouse import open_warehouse


@pytest.fixture(scope="module")
def mapped(api: ApiEnv, tpch_duckdb: str) -> ApiEnv:
    """The TPC-H project's connections mapped to the session's TPC-H DuckDB, its pending
    (system) aggregates built."""
    schema = f"as_agg_{uuid.uuid4().hex[:8]}"
    with api.store.session() as s:
        for name in ("Connection - TPCH", "Connection - DateCustom"):
            catalog.upsert_connection(s, "default", name, tpch_duckdb, aggregate_schema=schema)
    runner = BatchRunner(api.store, heartbeat_seconds=0.2)
    report = build_now(api.store, runner, "default", api.cube_id, BatchType.MATERIALIZE_PENDING)
    assert report.status is BatchStatus.DONE, report.message
    return api


def post(env: ApiEnv, body: dict, user: str = "viewer", org: str = "default"):
    path = f"/org/{org}/project/{env.project_id}/cube/{env.cube_id}/query"
    return env.client.post(path, json=body, headers=env.headers(user))


def test_a_viewer_queries_and_gets_the_base_tables_answer(mapped: ApiEnv, tpch_duckdb: str):
    response = post(
        mapped,
        {
            "metrics": ["m_l_quantity_sum"],
            "attributes": ["Return Flag"],
            "filters": [{"member": "Shipping Mode", "operator": "in", "values": ["AIR", "RAIL"]}],
            "order_by": [{"member": "Return Flag", "direction": "desc"}],
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"]["message"] == "OK"
    answer = body["response"]
    assert [c["name"] for c in answer["columns"]] == ["Return Flag", "m_l_quantity_sum"]
    assert answer["rows_returned"] == len(answer["rows"]) == 3
    assert [r[0] for r in answer["rows"]] == ["R", "N", "A"]
    with open_warehouse(tpch_duckdb) as wh:
        hand = dict(
            wh.fetch_all(
                """SELECT "L_RETURNFLAG", SUM("L_QUANTITY") FROM "TPCH_SF1"."LINEITEM"
                   WHERE "L_SHIPMODE" IN ('AIR', 'RAIL') GROUP BY 1"""
            )
        )
    assert {r[0]: r[1] for r in answer["rows"]} == {k: float(v) for k, v in hand.items()}
    assert answer["served_from"] == "base" and answer["served_by"][0]["kind"] == "base"
    assert answer["sql"].startswith("SELECT")


def test_served_by_the_aggregate_that_covers_it(mapped: ApiEnv):
    answer = post(mapped, {"metrics": ["m_l_quantity_sum", "m_l_tax_sum"]}).json()["response"]
    (served,) = answer["served_by"]
    assert served["kind"] == "aggregate" and served["definition"] == "system_lineitem_all"
    assert served["table"].startswith("as_agg_")
    # query utilization and hits come from the log
    listing = mapped.client.get(
        "/aggregates/orgId/default", params={"cubeId": str(mapped.cube_id)},
        headers=mapped.headers(),
    ).json()["response"]["data"]  # fmt: skip
    (system,) = [d for d in listing if d["unique_name"] == "system_lineitem_all"]
    assert system["stats"]["query_utilization"] >= 1
    assert system["latest_instance"]["stats"]["hits"] >= 1


def test_explain_returns_the_plan_without_running(mapped: ApiEnv):
    answer = post(mapped, {"metrics": ["m_l_quantity_sum"], "explain": True}).json()["response"]
    assert answer["explain"] is True and answer["rows"] == [] and answer["query_id"] is None
    assert "SELECT" in answer["sql"]


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"metrics": ["m_l_quantity_summ"]}, "metrics[0]", "closest: 'm_l_quantity_sum'"),
        ({"metrics": ["YTD Order Revenue"]}, "metrics", "not arithmetic over metrics"),
        ({"metrics": ["m_l_tax_sum"], "attributes": ["Customer Region"]}, "attributes[0]",
         'not reachable from dataset "lineitem"'),
        ({"metrics": ["m_l_tax_sum"], "limit": 100_001}, "limit", "between 0 and 100,000"),
        ({"metrics": ["m_l_tax_sum"], "limit": -1}, "limit", "between 0 and 100,000"),
        ({"metrics": ["m_l_tax_sum"], "order_by": [{"member": "nope"}]}, "order_by[0]",
         'cannot order by "nope"'),
    ],
)  # fmt: skip
def test_bad_queries_get_400_naming_the_field(mapped: ApiEnv, body: dict, field: str, words: str):
    response = post(mapped, body)
    assert response.status_code == 400, response.text
    payload = response.json()
    assert payload["response"] is None
    (problem,) = payload["errors"]
    assert problem["field"] == field and words in problem["problem"]


def test_malformed_bodies_get_400(mapped: ApiEnv):
    for body in (
        {"metrics": []},
        {"metrics": ["m_l_tax_sum"], "filters": [{"member": "x", "operator": "like"}]},
        {"metrics": ["m_l_tax_sum"], "filters": [{"and": [], "or": []}]},
        {"metrics": ["m_l_tax_sum"], "surprise": 1},
    ):
        assert post(mapped, body).status_code == 400, body


def test_a_warehouse_error_is_a_502_with_its_message(mapped: ApiEnv):
    response = post(
        mapped,
        {"metrics": ["m_l_tax_sum"], "filters": [{"metric": "m_l_tax_sum", "operator": ">",
                                                   "value": "not a number"}]},
    )  # fmt: skip
    assert response.status_code == 502, response.text
    assert "warehouse" in response.json()["status"]["message"]


def test_the_query_log_lists_queries_with_filters(mapped: ApiEnv):
    post(mapped, {"metrics": ["m_l_discount_sum"], "attributes": ["Return Flag"]}, user="manager")
    response = mapped.client.get(
        "/org/default/queries",
        params={"cubeId": str(mapped.cube_id), "user": "manager", "limit": 5},
        headers=mapped.headers("viewer"),
    )
    assert response.status_code == 200, response.text
    page = response.json()["response"]
    first = page["data"][0]
    assert page["total"] >= 1 and first["user"] == "manager"
    assert first["metrics"] == ["m_l_discount_sum"] and first["attributes"] == ["Return Flag"]
    assert first["grain"][0]["fact"] == "lineitem"
    errors = mapped.client.get(
        "/org/default/queries", params={"servedBy": "error"}, headers=mapped.headers()
    ).json()["response"]["data"]
    assert errors and all(e["error"] for e in errors)
    bad = mapped.client.get(
        "/org/default/queries", params={"servedBy": "nope"}, headers=mapped.headers()
    )
    assert bad.status_code == 400


def test_the_advisor_through_the_api(mapped: ApiEnv):
    """Dry run by default (nothing created), applied on request; a viewer may not."""
    for _ in range(3):
        post(mapped, {"metrics": ["m_l_quantity_sum"], "attributes": ["Return Flag"]})
    path = f"/org/default/project/{mapped.project_id}/cube/{mapped.cube_id}/aggregates/advise"
    assert mapped.client.post(path, headers=mapped.headers("viewer")).status_code == 403
    dry = mapped.client.post(path, headers=mapped.headers("manager"))
    assert dry.status_code == 200, dry.text
    advice = dry.json()["response"]
    assert advice["applied"] is False and advice["proposals"] and advice["batch_id"]
    (proposal,) = [
        p
        for p in advice["proposals"]
        if {a["name"] for a in p["attributes"]} == {"L_Return_Flag Level"}
    ]
    assert proposal["estimated_rows"] >= 1 and proposal["justified_by"]
    applied = mapped.client.post(path, params={"apply": "true"}, headers=mapped.headers("manager"))
    made = applied.json()["response"]["proposals"]
    assert all(p["definition_id"] for p in made)
    listing = mapped.client.get(
        "/aggregates/orgId/default", params={"subtype": "demand_defined"}, headers=mapped.headers()
    ).json()["response"]["data"]
    assert {d["unique_name"] for d in listing} == {p["name"] for p in made}
    assert all(d["justification"]["benefit"] > 0 for d in listing)
    history = mapped.client.get(
        "/org/default/aggregates-creation/builds/history", params={"batchType": "advisor"},
        headers=mapped.headers(),
    ).json()["response"]["data"]  # fmt: skip
    assert len(history) == 2 and {b["batchType"] for b in history} == {"advisor"}
