"""The console in a real browser (Debian's chromium under Playwright) against a real
server, store, scheduler, build workers and TPC-H DuckDB warehouse, walking what an
operator does: sign in, write a schedule (invalid, then valid), create it, build now and
watch the batch finish live, find it in the history, run a query answered by an
aggregate, pause/resume/delete the schedule; then as a viewer find nothing that changes
anything, and sign out. Every page is saved as a screenshot under tests/.artifacts/.

The steps share one server, one browser and one signed-in page, in file order.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from console_env import PASSWORD, ConsoleEnv
from sqlalchemy import func, select

from aggsched.store.models import BuildBatch, Schedule

EXPRESSION = "0 30 6 ? * MON-FRI"
ZONE = "Europe/Paris"
CHANGE_BUTTONS = ("Build now", "Pause", "Resume", "Delete", "Block", "Unblock",
                  "Create schedule", "Cancel batch")  # fmt: skip


@pytest.fixture(scope="module")
def flow(live: tuple[ConsoleEnv, str], browser: Any, artifacts: Path) -> Iterator[dict[str, Any]]:
    """The signed-out browser page, the server, and what the steps learn on the way."""
    env, base = live
    context = browser.new_context(viewport={"width": 1280, "height": 860}, base_url=base)
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.on("dialog", lambda dialog: dialog.accept())  # the confirm() of deleting forms
    state: dict[str, Any] = {"env": env, "base": base, "page": page, "context": context}

    def shot(name: str, full: bool = True, clip: int | None = None) -> None:
        """Save the page; ``clip``: only its top ``clip`` pixels (the README's shots)."""
        area = {"x": 0, "y": 0, "width": 1280, "height": clip} if clip else None
        page.screenshot(path=str(artifacts / f"{name}.png"), full_page=full, clip=area)

    state["shot"] = shot
    yield state
    context.close()


AUDIT = (Path(__file__).parent / "audit.js").read_text()


def audit(page: Any) -> None:
    """Accessible markup: lang, one h1, no skipped heading level, every control labelled,
    every button and link named, tables with headers, charts named, and text contrast
    of at least 4.5:1 against its background (computed from the rendered styles)."""
    problems = page.evaluate(AUDIT)
    assert problems == [], (page.url, problems)


def _sign_in(page: Any, user: str) -> None:
    page.fill("#org", "default")
    page.fill("#username", user)
    page.fill("#password", PASSWORD)
    page.click("#login-form button[type=submit]")


def test_the_audit_finds_what_it_looks_for(flow: dict[str, Any]) -> None:
    """The accessibility audit is real: a page with every fault it knows is reported."""
    page = flow["context"].new_page()
    page.set_content(
        '<h1>a</h1><h3>skipped</h3><p style="color:#aaa">faint text</p><input id="x">'
        "<button></button><table><tr><td>1</td></tr></table><svg></svg>"
    )
    problems = page.evaluate(AUDIT)
    page.close()
    for expected in ("no lang", "heading jumps to H3", "contrast 2.32 for P: faint text",
                     "unlabelled control x", "nameless <button>", "table without headers",
                     "svg without a name"):  # fmt: skip
        assert any(p.startswith(expected) for p in problems), (expected, problems)


def test_sign_in(flow: dict[str, Any]) -> None:
    page, env = flow["page"], flow["env"]
    page.goto("/")
    assert re.search(r"/login$", page.url), page.url
    assert page.locator("h1").inner_text() == "Sign in to aggsched"
    flow["shot"]("01-login")
    audit(page)
    # with the keyboard only: the user field has the focus, Tab, Enter
    assert page.evaluate("() => document.activeElement.id") == "username"
    page.keyboard.type("admin")
    page.keyboard.press("Tab")
    page.keyboard.type("wrong-password")
    page.keyboard.press("Enter")
    assert "Wrong user name or password" in page.locator("#login-error").inner_text()
    assert page.evaluate("() => document.activeElement.id") == "password"
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/$"))
    assert page.locator("h1").inner_text() == "Overview"
    assert "admin" in page.locator(".who").inner_text()
    cube_link = page.locator("#cubes a", has_text="Sales")
    assert cube_link.count() == 1
    assert cube_link.get_attribute("href") == env.cube_page
    flow["shot"]("02-overview")
    audit(page)
    page.keyboard.press("Tab")  # the first stop skips to the content
    assert page.evaluate("() => document.activeElement.className") == "skip"
    page.keyboard.press("Enter")
    assert page.evaluate("() => document.activeElement.id") == "main"


def test_live_validation_of_an_expression(flow: dict[str, Any]) -> None:
    page = flow["page"]
    page.click("#cubes a:has-text('Sales')")
    page.wait_for_selector("#schedule-form")
    page.fill("#time_expression", "0 0 25 * * ?")
    error = page.wait_for_selector("#cron-feedback .cron-error")
    assert "Hour values must be between 0 and 23" in error.inner_text()
    assert "(at position 4)" in error.inner_text()
    # the caret stands under the position the parser names: under the "2" of "25"
    lines = page.locator("#cron-feedback pre.caret").inner_text().split("\n")
    assert lines[0] == "0 0 25 * * ?" and lines[1] == "    ^"
    offsets = page.evaluate(
        """() => {
            const code = document.querySelector('#cron-feedback pre.caret code');
            const range = document.createRange();
            range.setStart(code.firstChild, 4);
            range.setEnd(code.firstChild, 5);
            const under = range.getBoundingClientRect();
            const caret = code.querySelector('.caret-mark').getBoundingClientRect();
            return [under.x, caret.x, under.bottom <= caret.top];
        }"""
    )
    assert abs(offsets[0] - offsets[1]) < 1 and offsets[2], offsets
    assert page.get_attribute("#time_expression", "aria-invalid") == "true"
    flow["shot"]("03-cube-invalid-expression")
    audit(page)

    page.fill("#time_zone", ZONE)
    page.fill("#time_expression", EXPRESSION)
    valid = page.wait_for_selector("#cron-feedback .cron-ok")
    assert "At 06:30:00" in valid.inner_text() and "Monday through Friday" in valid.inner_text()
    fires = page.locator("#cron-feedback ol.fires li")
    assert fires.count() == 5
    assert all("06:30:00 CE" in fires.nth(i).inner_text() for i in range(5))
    assert page.get_attribute("#time_expression", "aria-invalid") is None
    flow["shot"]("04-cube-valid-expression")


def test_create_the_schedule(flow: dict[str, Any]) -> None:
    page, env = flow["page"], flow["env"]
    # the server checks again on submit: an invalid expression comes back with its caret
    page.fill("#time_expression", "0 61 * * * ?")
    page.click("#schedule-form button[type=submit]")
    page.wait_for_selector("#cron-feedback .cron-error")
    assert "(at position 2)" in page.locator("#cron-error-message").inner_text()
    assert page.locator("#cron-feedback pre.caret").inner_text().split("\n")[1] == "  ^"
    with env.store.session() as s:
        assert s.scalar(select(func.count()).select_from(Schedule)) == 0

    page.fill("#time_expression", EXPRESSION)
    page.fill("#time_zone", ZONE)
    page.check("input[name=build][value=incremental]")
    page.click("#schedule-form button[type=submit]")
    page.wait_for_selector(".flash-ok")
    assert "created" in page.locator(".flash-ok").inner_text()
    row = page.locator("#schedule-table tbody tr", has_text=EXPRESSION)
    assert row.count() == 1
    text = row.inner_text()
    assert "Monday through Friday" in text and "incremental" in text and ZONE in text
    assert row.locator("ol.fires li").count() == 5
    flow["job_id"] = row.get_attribute("data-job-id")
    with env.store.session() as s:
        stored = s.get(Schedule, __import__("uuid").UUID(flow["job_id"]))
        assert stored is not None and stored.time_zone == ZONE and not stored.full_build
    flow["shot"]("05-cube-schedule-created")
    page.fill("#time_expression", "0 0 2 L * ?")
    assert "last day of the month" in page.wait_for_selector("#cron-feedback .cron-ok").inner_text()
    flow["shot"]("readme-cube", clip=1080)


def test_build_now_and_watch_it_finish_live(flow: dict[str, Any]) -> None:
    page, env = flow["page"], flow["env"]
    page.click("#build-incremental button")
    page.wait_for_url(re.compile(r"/builds/[0-9a-f-]{36}$"))
    flow["batch_id"] = page.url.rsplit("/", 1)[1]
    panel = page.locator("#batch-panel")
    assert panel.get_attribute("data-status") == "pending"  # no worker runs yet
    assert panel.get_attribute("data-live") == "true"
    assert page.locator("#cancel-form").count() == 1
    flow["shot"]("06-batch-pending", full=False)
    page.evaluate("() => { window.stillTheSamePage = true; }")
    env.start_workers()
    page.wait_for_selector("#batch-panel[data-status='done']", timeout=90_000)
    # it changed without a reload: the page's own state survived
    assert page.evaluate("() => window.stillTheSamePage === true")
    assert page.get_attribute("#batch-progress", "value") == "100"
    assert page.locator("#batch-panel").get_attribute("data-live") == "false"
    assert page.locator("#cancel-form").count() == 0
    rows = page.locator("#batch-aggregates tbody tr")
    assert rows.count() >= 5
    assert page.locator("#batch-aggregates .status-active").count() == rows.count()
    page.locator("#batch-aggregates details summary").first.click()
    assert "SELECT" in page.locator("#batch-aggregates details pre").first.inner_text().upper()
    flow["shot"]("07-batch-done")
    audit(page)
    page.locator("#batch-aggregates details summary").first.click()  # closed again
    flow["shot"]("readme-batch", clip=1080)


def test_find_the_batch_in_the_history(flow: dict[str, Any]) -> None:
    page = flow["page"]
    page.click("nav >> text=Builds")
    page.wait_for_selector("#build-filters")
    page.select_option("#f-trigger", "manual")
    page.select_option("#f-status", "done")
    page.click("#build-filters button[type=submit]")
    page.wait_for_url(re.compile(r"trigger=manual"))
    row = page.locator(f"#history tr[data-batch-id='{flow['batch_id']}']")
    assert row.count() == 1
    assert "done" in row.inner_text() and "manual" in row.inner_text()
    flow["shot"]("08-builds")
    audit(page)
    page.select_option("#f-trigger", "schedule")
    page.click("#build-filters button[type=submit]")
    page.wait_for_url(re.compile(r"trigger=schedule"))
    assert page.locator(f"#history tr[data-batch-id='{flow['batch_id']}']").count() == 0
    assert page.locator("#history-total").inner_text().startswith("0 ")


def test_run_a_query_served_by_an_aggregate(flow: dict[str, Any]) -> None:
    page = flow["page"]
    page.click("nav >> text=Queries")
    page.wait_for_selector("#query-form")
    page.select_option("#q-metrics", ["revenue", "quantity"])
    page.select_option("#q-attributes", ["Ship Year"])
    page.select_option("#q-order", "Ship Year")
    page.click("#q-run")
    page.wait_for_selector("#query-result")
    assert page.locator("#served-from").inner_text() == "aggregate"
    assert page.locator(".served-definition").first.inner_text() == "sales_by_ship_year"
    assert page.locator("#result-table tbody tr").count() == 7  # TPC-H ships 1992-1998
    assert re.search(r"[\d.]+ ms", page.locator("#query-duration").inner_text())
    log = page.locator("#query-log tbody tr").first.inner_text()
    assert "sales_by_ship_year" in log and "admin" in log
    flow["shot"]("09-queries")
    audit(page)


def test_charts(flow: dict[str, Any]) -> None:
    page = flow["page"]
    page.click("nav >> text=Charts")
    page.wait_for_selector("svg#chart-builds")
    assert page.locator("svg#chart-builds .point").count() >= 1
    bars = page.locator("svg#chart-queries rect.bar[data-kind='aggregate']")
    assert bars.count() == 1 and bars.first.get_attribute("data-count") == "1"
    flow["shot"]("10-charts")
    audit(page)


def test_pause_resume_delete_the_schedule(flow: dict[str, Any]) -> None:
    page, env = flow["page"], flow["env"]
    page.goto(env.cube_page)
    row = page.locator(f"#schedule-{flow['job_id']}")
    row.locator("button", has_text="Pause").click()
    page.wait_for_selector(".flash-ok >> text=paused")
    assert "paused" in page.locator(f"#schedule-{flow['job_id']}").inner_text()
    page.locator(f"#schedule-{flow['job_id']} button", has_text="Resume").click()
    page.wait_for_selector(".flash-ok >> text=resumed")
    assert page.locator(f"#schedule-{flow['job_id']} .status-active").count() == 1
    page.locator(f"#schedule-{flow['job_id']} button", has_text="Delete").click()
    page.wait_for_selector(".flash-ok >> text=deleted")
    assert page.locator(f"#schedule-{flow['job_id']}").count() == 0
    with env.store.session() as s:
        stored = s.get(Schedule, __import__("uuid").UUID(flow["job_id"]))
        assert stored is not None and stored.deleted_at is not None


def _forms(page: Any) -> list[dict[str, str]]:
    return page.eval_on_selector_all(
        "form", "fs => fs.map(f => ({method: f.method, action: new URL(f.action).pathname}))"
    )


def test_a_viewer_finds_nothing_that_changes_anything(flow: dict[str, Any]) -> None:
    page, env = flow["page"], flow["env"]
    page.click(".who button:has-text('Sign out')")
    page.wait_for_url(re.compile(r"/login$"))
    assert "signed out" in page.locator(".flash-ok").inner_text()
    _sign_in(page, "viewer")
    page.wait_for_url(re.compile(r"/$"))
    pages = ["/", env.cube_page, "/builds", f"/builds/{flow['batch_id']}", "/queries", "/charts"]
    for path in pages:
        page.goto(path)
        assert page.locator("h1").count() == 1
        posting = [f for f in _forms(page) if f["method"] == "post"]
        assert posting == [{"method": "post", "action": "/logout"}], (path, posting)
        for label in CHANGE_BUTTONS:
            assert page.locator("button", has_text=label).count() == 0, (path, label)
        audit(page)
    page.goto(env.cube_page)
    assert page.locator("#aggregate-table tbody tr").count() >= 5  # sees everything
    flow["shot"]("11-viewer-cube")
    # the server refuses the change anyway, even with a valid form token
    token = page.get_attribute("input[name=csrf_token]", "value")
    with env.store.session() as s:
        before = s.scalar(select(func.count()).select_from(BuildBatch))
    answer = page.request.post(f"{env.cube_page}/build", form={"csrf_token": token, "mode": "full"})
    assert answer.status == 403
    assert "aggregates_manage" in answer.text()
    with env.store.session() as s:
        assert s.scalar(select(func.count()).select_from(BuildBatch)) == before


def test_sign_out_and_be_refused(flow: dict[str, Any]) -> None:
    page, env = flow["page"], flow["env"]
    page.click(".who button:has-text('Sign out')")
    page.wait_for_url(re.compile(r"/login$"))
    assert not [c for c in flow["context"].cookies() if c["name"] == "aggsched_session"]
    for path in ("/", env.cube_page, "/builds", "/queries", "/charts"):
        page.goto(path)
        assert "/login" in page.url, path
        assert page.locator("h1").inner_text() == "Sign in to aggsched"
    assert "next=" in page.url  # back to where they were after signing in again
    token = page.get_attribute("input[name=csrf_token]", "value")
    answer = page.request.post(f"{env.cube_page}/build", form={"csrf_token": token},
                               max_redirects=0)  # fmt: skip
    assert answer.status == 303 and answer.headers["location"].startswith("/login")
