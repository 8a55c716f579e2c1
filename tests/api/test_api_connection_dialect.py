"""A connection's SQL dialect (what the model's SQL there is written in) through the API."""

from __future__ import annotations

from api_helpers import ApiEnv

URL = "/org/default/connections"


def test_sql_dialect_is_stored_normalized_and_listed(api: ApiEnv) -> None:
    body = {"name": "shop", "url": "duckdb:///tmp/x.duckdb", "sql_dialect": "Snowflake"}
    created = api.client.post(URL, json=body, headers=api.headers())
    assert created.status_code == 200, created.text
    assert created.json()["response"]["sql_dialect"] == "snowflake"
    listed = api.client.get(URL, headers=api.headers()).json()["response"]
    assert {c["name"]: c["sql_dialect"] for c in listed}["shop"] == "snowflake"
    body.pop("sql_dialect")  # replaced without one: the SML connection's platform decides
    again = api.client.post(URL, json=body, headers=api.headers())
    assert again.json()["response"]["sql_dialect"] is None


def test_an_unknown_sql_dialect_is_a_400_naming_the_field(api: ApiEnv) -> None:
    body = {"name": "shop2", "url": "duckdb:///tmp/x.duckdb", "sql_dialect": "oracle9"}
    response = api.client.post(URL, json=body, headers=api.headers())
    assert response.status_code == 400
    (problem,) = response.json()["errors"]
    assert problem["field"] == "sql_dialect" and "snowflake" in problem["problem"]
    names = [c["name"] for c in api.client.get(URL, headers=api.headers()).json()["response"]]
    assert "shop2" not in names
