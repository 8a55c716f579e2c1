"""The console over HTTP (TestClient) on a real store and the real API: cookies, CSRF,
roles, pages, the history's filters and paging, and the SVG charts' content."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from http.cookies import SimpleCookie
from pathlib import Path

import httpx
import pytest
from console_env import PASSWORD, ConsoleEnv, csrf_of, free_port, sign_in
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from aggsched.planning.plan import BatchType
from aggsched.store import batches, schedules, utcnow
from aggsched.store import queries as query_log
from aggsched.store.models import AggregateDefinition, BuildBatch, Cube, Schedule
from aggsched.web import create_app

SVG = "{http://www.w3.org/2000/svg}"


def client_for(env: ConsoleEnv, user: str | None = None, **kwargs: object) -> TestClient:
    client = TestClient(env.app, raise_server_exceptions=False, **kwargs)  # type: ignore[arg-type]
    if user:
        sign_in(client, user)
    return client


def set_cookies(response) -> dict[str, SimpleCookie]:  # type: ignore[no-untyped-def]
    found = {}
    for header in response.headers.get_list("set-cookie"):
        cookie: SimpleCookie = SimpleCookie()
        cookie.load(header)
        for name in cookie:
            found[name] = header
    return found


def count(env: ConsoleEnv, model: type) -> int:
    with env.store.session() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


# --- sign-in and cookies --------------------------------------------------------------


def test_pages_need_a_session_and_return_after_sign_in(console: ConsoleEnv) -> None:
    client = client_for(console)
    response = client.get(f"{console.cube_page}?x=1", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login?next=%2Fcubes%2F")
    page = client.get(response.headers["location"])
    assert f'name="next" value="{console.cube_page}?x=1"' in page.text
    answer = client.post("/login", data={
        "org": "default", "username": "manager", "password": PASSWORD,
        "csrf_token": csrf_of(page.text), "next": f"{console.cube_page}?x=1",
    }, follow_redirects=False)  # fmt: skip
    assert answer.status_code == 303 and answer.headers["location"] == f"{console.cube_page}?x=1"


def test_session_cookie_flags_over_http_and_https(console: ConsoleEnv) -> None:
    for base, secure in (("http://testserver", False), ("https://testserver", True)):
        client = client_for(console, base_url=base)
        page = client.get("/login")
        csrf_cookie = set_cookies(page)["aggsched_csrf"]
        answer = client.post("/login", data={
            "org": "default", "username": "admin", "password": PASSWORD,
            "csrf_token": csrf_of(page.text),
        }, follow_redirects=False)  # fmt: skip
        session = set_cookies(answer)["aggsched_session"]
        for header in (session, csrf_cookie):
            flags = [part.strip().lower() for part in header.split(";")]
            assert "httponly" in flags and "samesite=lax" in flags and "path=/" in flags
            assert ("secure" in flags) is secure, header
        max_age = int(re.search(r"Max-Age=(\d+)", session).group(1))  # type: ignore[union-attr]
        assert console.settings.jwt_lifetime_seconds - 60 <= max_age <= 3600


def test_secure_cookies_always(console: ConsoleEnv) -> None:
    settings = console.settings.model_copy(update={"console_secure_cookies": "always"})
    client = TestClient(create_app(settings, console.store))
    page = client.get("/login")
    assert "secure" in set_cookies(page)["aggsched_csrf"].lower()


def test_wrong_password_unknown_org_and_open_redirects(console: ConsoleEnv) -> None:
    client = client_for(console)
    token = csrf_of(client.get("/login").text)
    wrong = client.post("/login", data={"org": "default", "username": "admin",
                                        "password": "nope", "csrf_token": token})  # fmt: skip
    assert wrong.status_code == 401 and "Wrong user name or password" in wrong.text
    assert "aggsched_session" not in set_cookies(wrong)
    elsewhere = client.post("/login", data={"org": "acme", "username": "admin",
                                            "password": PASSWORD, "csrf_token": token})  # fmt: skip
    assert elsewhere.status_code == 404 and "no role in organization" in elsewhere.text
    empty = client.post("/login", data={"org": "default", "username": "", "password": "",
                                        "csrf_token": token})  # fmt: skip
    assert empty.status_code == 400 and "Enter the user and password" in empty.text
    for target in ("//evil.example/x", "https://evil.example", "/\\evil.example", "javascript:x"):
        answer = client.post("/login", data={
            "org": "default", "username": "admin", "password": PASSWORD,
            "csrf_token": token, "next": target,
        }, follow_redirects=False)  # fmt: skip
        assert answer.headers["location"] == "/", target


def test_a_broken_or_forged_session_is_sent_to_sign_in(console: ConsoleEnv) -> None:
    client = client_for(console)
    client.cookies.set("aggsched_session", "not-base64-json")
    assert client.get("/", follow_redirects=False).headers["location"] == "/login"
    forged = ConsoleEnvCookie.session("default", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZG1pbiJ9.x")
    client.cookies.set("aggsched_session", forged)
    response = client.get("/builds", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/login?next=%2Fbuilds"
    assert 'aggsched_session=""' in response.headers["set-cookie"]  # cleared
    page = client.get("/login")
    assert "Your session ended" in page.text


class ConsoleEnvCookie:
    @staticmethod
    def session(org: str, token: str) -> str:
        from aggsched.web.session import SessionData

        return SessionData(org, token).encode()


def test_sign_out_ends_the_session(console: ConsoleEnv) -> None:
    client = client_for(console, "admin")
    assert client.get("/").status_code == 200
    token = csrf_of(client.get("/").text)
    out = client.post("/logout", data={"csrf_token": token}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/login"
    assert 'aggsched_session=""' in out.headers["set-cookie"]
    assert client.get("/", follow_redirects=False).headers["location"] == "/login"


# --- CSRF ------------------------------------------------------------------------------


def test_csrf_refusals_change_nothing(console: ConsoleEnv) -> None:
    client = client_for(console, "admin")
    token = csrf_of(client.get(console.cube_page).text)
    build = f"{console.cube_page}/build"
    before = count(console, BuildBatch)
    other = client_for(console)
    other_token = csrf_of(other.get("/login").text)  # a token of another browser
    refusals = [
        ({}, {}),
        ({"csrf_token": ""}, {}),
        ({"csrf_token": "0" * 64}, {}),
        ({"csrf_token": other_token}, {}),
        ({"csrf_token": token}, {"Origin": "https://evil.example"}),
        ({"csrf_token": token}, {"Origin": "null"}),
        ({"csrf_token": token}, {"Sec-Fetch-Site": "cross-site"}),
    ]
    for form, headers in refusals:
        answer = client.post(build, data={**form, "mode": "full"}, headers=headers)
        assert answer.status_code == 403, (form, headers)
        assert "Nothing was changed" in answer.text
    assert count(console, BuildBatch) == before
    # no login without the token either (login CSRF)
    fresh = client_for(console)
    fresh.get("/login")
    answer = fresh.post("/login", data={"org": "default", "username": "admin",
                                        "password": PASSWORD})  # fmt: skip
    assert answer.status_code == 403 and "aggsched_session" not in set_cookies(answer)
    # the same request with its token and same-origin headers goes through
    ok = client.post(build, data={"csrf_token": token, "mode": "full"},
                     headers={"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"},
                     follow_redirects=False)  # fmt: skip
    assert ok.status_code == 303 and ok.headers["location"].startswith("/builds/")
    queued = client.get(ok.headers["location"])
    assert queued.status_code == 200 and "full-rebuild" in queued.text


# --- roles ---------------------------------------------------------------------------


def test_a_viewer_sees_everything_and_changes_nothing(console: ConsoleEnv) -> None:
    with console.store.session() as s:
        job = schedules.create_schedule(
            s, org_id="default", project_id=console.project_id, cube_id=console.cube_id,
            time_expression="0 0 3 ? * *", next_fire_at=utcnow() + timedelta(hours=1),
        )  # fmt: skip
        job_id = job.job_id
        definition = s.scalars(
            select(AggregateDefinition).where(AggregateDefinition.cube_id == console.cube_id)
        ).first()
        assert definition is not None
        definition_id = definition.id
    viewer = client_for(console, "viewer")
    page = viewer.get(console.cube_page)
    assert page.status_code == 200
    assert "0 0 3 ? * *" in page.text and "system_lineitem_all" in page.text
    forms = re.findall(r'<form method="(\w+)" action="([^"]*)"', page.text)
    assert [f for f in forms if f[0] == "post"] == [("post", "/logout")]
    token = csrf_of(page.text)
    before = (count(console, BuildBatch), count(console, Schedule))
    base = console.cube_page
    attempts = [
        (f"{base}/build", {"mode": "full"}),
        (f"{base}/schedules", {"time_expression": "0 0 4 ? * *", "time_zone": "UTC"}),
        (f"{base}/schedules/{job_id}/pause", {}),
        (f"{base}/schedules/{job_id}/delete", {}),
        (f"{base}/definitions/{definition_id}/block", {"instance_id": str(uuid.uuid4())}),
        (f"{base}/definitions/{definition_id}/unblock", {}),
    ]
    for path, form in attempts:
        answer = viewer.post(path, data={"csrf_token": token, **form})
        assert answer.status_code == 403, (path, answer.text[:300])
        assert "needs the admin or aggregates_manage role" in answer.text
    assert (count(console, BuildBatch), count(console, Schedule)) == before
    with console.store.session() as s:
        stored = s.get(Schedule, job_id)
        assert stored is not None and stored.active and stored.deleted_at is None
        assert not s.get(AggregateDefinition, definition_id).blocked  # type: ignore[union-attr]
    # a manager may
    manager = client_for(console, "manager")
    token = csrf_of(manager.get(base).text)
    paused = manager.post(f"{base}/schedules/{job_id}/pause", data={"csrf_token": token},
                          follow_redirects=False)  # fmt: skip
    assert paused.status_code == 303
    with console.store.session() as s:
        assert not s.get(Schedule, job_id).active  # type: ignore[union-attr]


def test_block_and_unblock_an_aggregate(console: ConsoleEnv) -> None:
    admin = client_for(console, "admin")
    page = admin.get(console.cube_page).text
    found = re.search(r'action="([^"]*/definitions/([0-9a-f-]{36})/block)"[^>]*>'
                      r'.*?name="instance_id" value="([0-9a-f-]{36})"', page, re.S)  # fmt: skip
    assert found, "no block form"
    action, definition_id, instance_id = found.groups()
    token = csrf_of(page)
    blocked = admin.post(action, data={"csrf_token": token, "instance_id": instance_id})
    assert blocked.status_code == 200 and "Aggregate blocked" in blocked.text
    with console.store.session() as s:
        assert s.get(AggregateDefinition, uuid.UUID(definition_id)).blocked  # type: ignore[union-attr]
    assert f"/definitions/{definition_id}/unblock" in blocked.text
    unblocked = admin.post(f"{console.cube_page}/definitions/{definition_id}/unblock",
                           data={"csrf_token": token})  # fmt: skip
    assert unblocked.status_code == 200 and "Aggregate unblocked" in unblocked.text
    with console.store.session() as s:
        assert not s.get(AggregateDefinition, uuid.UUID(definition_id)).blocked  # type: ignore[union-attr]


def test_the_api_refuses_what_the_console_refuses(console: ConsoleEnv) -> None:
    admin = client_for(console, "admin")
    token = csrf_of(admin.get(console.cube_page).text)
    missing = admin.post(f"/cubes/{console.project_id}/{uuid.uuid4()}/build",
                         data={"csrf_token": token})  # fmt: skip
    assert missing.status_code == 404 and "not found" in missing.text
    not_uuid = admin.get(f"/cubes/{console.project_id}/nope")
    assert not_uuid.status_code == 400 and "not a UUID" in not_uuid.text
    batch = admin.get("/builds/also-nope")
    assert batch.status_code == 400


# --- schedules and cron ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "zone", "expected"),
    [
        ("0 0 25 * * ?", "UTC", "(at position 4)"),
        ("0 0 2 ? * * 2030 9", "UTC", "expected 6 or 7 fields"),
        ("0 0 2 ? * *", "Mars/Olympus", "Invalid time zone"),
        ("0 0 2 ? * *", "Asia/Tokyo", "At 02:00:00, every day, in Asia/Tokyo"),
        ("", "UTC", "required"),
    ],
)
def test_cron_check_uses_the_api_rules(
    console: ConsoleEnv, expression: str, zone: str, expected: str
) -> None:
    admin = client_for(console, "admin")
    answer = admin.get("/cron/check", params={"time_expression": expression, "time_zone": zone})
    assert answer.status_code == 200 and expected in answer.text
    if "position" in expected:
        assert "\n    " in answer.text and 'class="caret-mark">^<' in answer.text


def test_creating_a_schedule_invalid_then_valid(console: ConsoleEnv) -> None:
    admin = client_for(console, "admin")
    token = csrf_of(admin.get(console.cube_page).text)
    before = count(console, Schedule)
    bad = admin.post(f"{console.cube_page}/schedules", data={
        "csrf_token": token, "time_expression": "0 0 2 ? * MON#9", "time_zone": "UTC",
    })  # fmt: skip
    assert bad.status_code == 400 and 'aria-invalid="true"' in bad.text
    assert 'value="0 0 2 ? * MON#9"' in bad.text and "position" in bad.text
    assert count(console, Schedule) == before
    good = admin.post(f"{console.cube_page}/schedules", data={
        "csrf_token": token, "time_expression": "0 15 1 L * ?", "time_zone": "America/New_York",
        "build": "incremental",
    })  # fmt: skip
    assert good.status_code == 200 and "created" in good.text
    assert "last day of the month" in good.text and "EST" in good.text
    with console.store.session() as s:
        row = s.scalars(select(Schedule).where(Schedule.time_expression == "0 15 1 L * ?")).one()
        assert row.time_zone == "America/New_York" and not row.full_build


# --- builds history ------------------------------------------------------------------


def test_history_filters_and_paging(console: ConsoleEnv) -> None:
    start = datetime(2026, 1, 5, 3, 0, tzinfo=UTC)
    with console.store.session() as s:
        job = schedules.create_schedule(
            s, org_id="default", project_id=console.project_id, cube_id=console.cube_id,
            time_expression="0 0 5 ? * *", next_fire_at=None,
        )  # fmt: skip
        for i in range(30):
            row = batches.create_batch(
                s, org_id="default", project_id=console.project_id, cube_id=console.cube_id,
                batch_type=BatchType.FULL_REBUILD, job_id=job.job_id if i % 3 == 0 else None,
                requested_by=f"schedule {job.job_id}" if i % 3 == 0 else "ci-bot",
                now=start + timedelta(minutes=i),
            )  # fmt: skip
            row.status = "failed" if i % 5 == 0 else "done"
            row.start_time = start + timedelta(minutes=i)
            row.end_time = row.start_time + timedelta(seconds=2 + i)
    admin = client_for(console, "admin")
    scheduled = admin.get("/builds", params={"trigger": "schedule", "type": "full-rebuild"})
    assert "10 batches." in scheduled.text
    assert scheduled.text.count("data-batch-id=") == 10
    failed_manual = admin.get("/builds", params={"trigger": "manual", "status": "failed"})
    ids = re.findall(r'data-batch-id="([^"]+)"', failed_manual.text)
    assert len(ids) == 4  # i in 5, 10, 20, 25 (0 and 15 are scheduled)
    everything = admin.get("/builds", params={"cube": str(console.cube_id)})
    total = int(re.search(r"([\d,]+) batches\.", everything.text).group(1).replace(",", ""))  # type: ignore[union-attr]
    assert total >= 30 and "Page 1 of" in everything.text
    second = admin.get("/builds", params={"cube": str(console.cube_id), "page": "2"})
    first_ids = set(re.findall(r'data-batch-id="([^"]+)"', everything.text))
    second_ids = set(re.findall(r'data-batch-id="([^"]+)"', second.text))
    assert len(first_ids) == 25 and second_ids and not first_ids & second_ids
    odd = admin.get("/builds", params={"status": "sideways", "cube": "x", "page": "-1"})
    assert odd.status_code == 200
    assert "unknown value &#39;sideways&#39;" in odd.text and "not a cube id" in odd.text


# --- charts --------------------------------------------------------------------------


def test_svg_charts_show_the_stored_numbers(console: ConsoleEnv) -> None:
    now = utcnow()
    today = datetime(now.year, now.month, now.day, 12, tzinfo=UTC)
    with console.store.session() as s:
        cube = s.get(Cube, console.cube_id)
        assert cube is not None
        planted = {(0, "aggregate"): 3, (0, "base"): 1, (2, "mixed"): 2, (2, "base"): 4}
        for (days_ago, kind), n in planted.items():
            for _ in range(n):
                query_log.record_query(
                    s, cube, username="chart", metrics=["revenue"], attributes=[],
                    filter_attributes=[], grain=[], grain_key="k", served_by=kind,
                    duration_ms=1.0, planning_ms=0.1, rows=1, now=today - timedelta(days=days_ago),
                )  # fmt: skip
        durations = [4.0, 9.5]
        for i, seconds in enumerate(durations):
            row = batches.create_batch(
                s, org_id="default", project_id=console.project_id, cube_id=console.cube_id,
                batch_type=BatchType.INCREMENTAL_REBUILD, now=now - timedelta(days=1, hours=i),
            )  # fmt: skip
            row.status = "done"
            row.start_time = now - timedelta(days=1, hours=i)
            row.end_time = row.start_time + timedelta(seconds=seconds)
    admin = client_for(console, "admin")
    answer = admin.get("/charts/queries.svg")
    assert answer.headers["content-type"].startswith("image/svg+xml")
    svg = ET.fromstring(answer.text)
    assert svg.get("role") == "img" and svg.find(f"{SVG}title") is not None
    bars = svg.findall(f".//{SVG}rect[@class='bar']")
    by_key = {(b.get("data-day"), b.get("data-kind")): b for b in bars}
    for (days_ago, kind), n in planted.items():
        day = (today - timedelta(days=days_ago)).date().isoformat()
        assert int(by_key[(day, kind)].get("data-count")) >= n  # type: ignore[arg-type]
    # one scale for every bar: height per query is the same
    per_query = {round(float(b.get("height")) / int(b.get("data-count")), 3) for b in bars}  # type: ignore[arg-type]
    assert len(per_query) == 1
    builds = ET.fromstring(admin.get("/charts/builds.svg").text)
    seconds = sorted(
        float(p.get("data-seconds")) for p in builds.iter() if p.get("class") == "point"
    )  # type: ignore[arg-type]
    assert all(any(abs(s - d) < 0.01 for s in seconds) for d in durations)
    ticks = [t.text for t in builds.iter(f"{SVG}text")]
    assert "seconds" in ticks
    page = admin.get("/charts")
    assert page.status_code == 200 and page.text.count("<svg") == 2
    assert "<title" in page.text and 'id="queries-data"' in page.text


# --- the rest of the app -------------------------------------------------------------


def test_the_api_and_its_docs_are_unchanged(console: ConsoleEnv) -> None:
    client = client_for(console)
    spec = client.get("/openapi.json").json()
    assert not [p for p in spec["paths"] if p in ("/", "/login", "/builds", "/queries")]
    assert all(not p.startswith(("/cubes", "/charts", "/oidc", "/static")) for p in spec["paths"])
    assert client.get("/docs").status_code == 200
    assert client.get("/healthz").json()["response"]["status"] == "ok"
    token = client.get("/default/auth", auth=("admin", PASSWORD)).text
    me = client.get("/org/default/whoami", headers={"Authorization": f"Bearer {token}"})
    assert me.json()["response"]["username"] == "admin"
    css = client.get("/static/console.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")


def test_pages_carry_a_strict_content_security_policy(console: ConsoleEnv) -> None:
    page = client_for(console).get("/login")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert page.headers["x-frame-options"] == "DENY"
    assert '<script src="/static/console.js"' in page.text and "<script>" not in page.text
    assert ' style="' not in page.text


def test_console_can_be_turned_off(console: ConsoleEnv) -> None:
    settings = console.settings.model_copy(update={"console_enabled": False})
    client = TestClient(create_app(settings, console.store))
    assert client.get("/login").status_code == 404
    assert client.get("/healthz").status_code == 200


def test_aggsched_serve_serves_the_console(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "AGGSCHED_HOME": str(tmp_path), "AGGSCHED_DATABASE_URL": "",
           "AGGSCHED_MAX_CONCURRENT_BUILDS": "0"}  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, "-m", "aggsched.cli", "serve", "--port", str(port), "--log-level",
         "warning", "--no-scheduler"], env=env,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                page = httpx.get(f"{base}/login")
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and process.poll() is None
                time.sleep(0.1)
        assert page.status_code == 200 and "Sign in to aggsched" in page.text
        assert httpx.get(f"{base}/", follow_redirects=False).headers["location"] == "/login"
        assert httpx.get(f"{base}/healthz").status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=15)


def result_rows(html: str) -> dict[str, int]:
    """Ship mode -> line count, from the result table (columns: mode, revenue, count)."""
    body = html.split('id="result-table"')[1].split("</table>")[0]
    found = re.findall(r"<tr><td>(\w+)</td><td[^>]*>[^<]*</td><td[^>]*>([\d,]+)</td></tr>", body)
    return {mode: int(n.replace(",", "")) for mode, n in found}


def test_running_queries_through_the_form(console: ConsoleEnv) -> None:
    viewer = client_for(console, "viewer")
    cube = f"{console.project_id}/{console.cube_id}"
    page = viewer.get("/queries", params={"cube": cube})
    assert page.status_code == 200 and 'value="revenue"' in page.text
    assert ">Ship Year<" in page.text
    run = {"cube": cube, "metric": ["revenue", "line_count"], "attribute": "Ship Mode",
           "filter_member": "Ship Mode", "filter_operator": "in", "filter_value": "AIR, RAIL",
           "order_member": "revenue", "order_direction": "desc", "limit": "10",
           "use_aggregates": "on", "run": "1"}  # fmt: skip
    answer = viewer.get("/queries", params=run)
    assert answer.status_code == 200, answer.text[-2000:]
    counts = result_rows(answer.text)
    assert set(counts) == {"AIR", "RAIL"}
    assert 'id="served-from">base<' in answer.text  # nothing is built in this store
    # a condition on a metric: the value is sent as a number, applied to the results
    smaller = min(counts.values())
    condition = {"filter_member": "line_count", "filter_operator": ">",
                 "filter_value": str(smaller)}  # fmt: skip
    bigger = viewer.get("/queries", params={**run, **condition})
    assert bigger.status_code == 200
    got = result_rows(bigger.text)
    assert got and all(v > smaller for v in got.values())
    assert min(counts, key=counts.__getitem__) not in got
    assert max(counts, key=counts.__getitem__) in got
    unknown = viewer.get("/queries", params={**run, "metric": "revenu"})
    assert unknown.status_code == 400 and 'id="query-error"' in unknown.text
    assert "revenue" in unknown.text.split('id="query-error"')[1][:400]
    none = viewer.get("/queries", params={"cube": cube, "run": "1"})
    assert none.status_code == 400 and "Choose at least one metric" in none.text
    # the log shows who asked, the grain and what answered
    log = viewer.get("/queries", params={"served": "base", "user": "viewer"})
    table = log.text.split('id="query-log"')[1]
    assert "Ship Mode" in table and "revenue, line_count" in table and ">base<" in table


def test_cancelling_a_waiting_batch(console: ConsoleEnv) -> None:
    admin = client_for(console, "admin")
    token = csrf_of(admin.get(console.cube_page).text)
    queued = admin.post(f"{console.cube_page}/build", data={"csrf_token": token, "mode": "full"},
                        follow_redirects=False)  # fmt: skip
    batch_page = queued.headers["location"]
    page = admin.get(batch_page)
    assert 'id="cancel-form"' in page.text and 'data-live="true"' in page.text
    panel = admin.get(f"{batch_page}/panel")
    assert panel.text.lstrip().startswith('<section id="batch-panel"')
    cancelled = admin.post(f"{batch_page}/cancel", data={"csrf_token": csrf_of(page.text)})
    assert cancelled.status_code == 200 and "Batch cancelled." in cancelled.text
    assert 'data-status="cancelled"' in cancelled.text and 'id="cancel-form"' not in cancelled.text
    again = admin.post(f"{batch_page}/cancel", data={"csrf_token": csrf_of(page.text)})
    assert "had already ended (cancelled)" in again.text
