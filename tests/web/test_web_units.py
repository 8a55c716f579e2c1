"""The console's pure parts: progress, chart axes and marks, cookie codecs, CSRF tokens,
cron feedback, and the store views behind the history and the charts (on SQLite and
PostgreSQL)."""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from aggsched.engine.publish import publish_path
from aggsched.examples import TPCH_DUCKDB
from aggsched.planning.plan import BatchType
from aggsched.store import Store, batches, console_views, schedules
from aggsched.store import queries as query_log
from aggsched.store.models import Cube
from aggsched.web import charts, cronview
from aggsched.web.progress import batch_progress
from aggsched.web.session import SessionData, Signer, decode_flash, encode_flash, safe_next

SVG = "{http://www.w3.org/2000/svg}"


def test_progress_of_a_running_rebuild_counts_every_buildable_aggregate() -> None:
    definitions = [
        {"id": "a", "status": "active", "blocked": False},
        {"id": "b", "status": "pending", "blocked": False},
        {"id": "c", "status": "invalid", "blocked": False},
        {"id": "d", "status": "active", "blocked": True},
    ]
    batch = {"status": "inprogress", "batchType": "full-rebuild",
             "instances": [{"definition_id": "a", "status": "active"},
                           {"definition_id": "b", "status": "inprogress"}]}  # fmt: skip
    progress = batch_progress(batch, definitions)
    assert (progress.finished, progress.expected, progress.percent) == (1, 2, 50)
    pending_only = {**batch, "batchType": "materialize-pending-instances", "instances": []}
    assert batch_progress(pending_only, definitions).expected == 1  # only b is pending
    finished = {**batch, "status": "failed"}
    assert batch_progress(finished, []).percent == 100
    assert batch_progress({"status": "pending", "instances": []}, []).percent == 0


def test_axes_are_round_and_counts_step_by_whole_numbers() -> None:
    assert charts.axis(0.9) == (1.0, 0.25)
    assert charts.axis(7, whole=True) == (8.0, 2.0)
    assert charts.axis(1, whole=True) == (1.0, 1.0)
    assert charts.axis(250, whole=True) == (300.0, 100.0)
    assert charts.axis(0, whole=True) == (1.0, 1.0)


def test_charts_draw_each_value_to_scale() -> None:
    days = [date(2026, 3, 1), date(2026, 3, 2), date(2026, 3, 3)]
    svg = ET.fromstring(charts.queries_per_day(days, {"aggregate": [2, 0, 6], "base": [1, 0, 0]}))
    bars = svg.findall(f".//{SVG}rect[@class='bar']")
    assert [(b.get("data-day"), b.get("data-kind"), b.get("data-count")) for b in bars] == [
        ("2026-03-01", "aggregate", "2"), ("2026-03-01", "base", "1"),
        ("2026-03-03", "aggregate", "6"),
    ]  # fmt: skip
    heights = [float(b.get("height")) for b in bars]  # type: ignore[arg-type]
    assert heights[0] == pytest.approx(2 * heights[1]) and heights[2] == pytest.approx(
        3 * heights[0]
    )
    # the base part sits on top of the aggregate part
    assert float(bars[1].get("y")) + heights[1] == pytest.approx(float(bars[0].get("y")))  # type: ignore[arg-type]
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    later, latest = t0 + timedelta(hours=1), t0 + timedelta(hours=2)
    points = {
        "P / Sales": [charts.Point(t0, 1.0, "b1"), charts.Point(latest, 3.0, "b2")],
        "P / <Other>": [charts.Point(later, 2.0, "b3")],
    }
    drawn = charts.build_durations(points, days=30)
    assert "&lt;Other&gt;" in drawn  # names are escaped
    tree = ET.fromstring(drawn)
    marks = [e for e in tree.iter() if e.get("class") == "point"]
    assert sorted(float(m.get("data-seconds")) for m in marks) == [1.0, 2.0, 3.0]  # type: ignore[arg-type]
    assert {e.tag for e in marks} == {f"{SVG}circle", f"{SVG}rect"}  # two shapes for two cubes
    empty = ET.fromstring(charts.build_durations({}, days=30))
    assert "No build finished" in "".join(empty.itertext())


def test_cookie_codecs_refuse_anything_malformed() -> None:
    session = SessionData("acme", "tok.en.x", "oidc")
    assert SessionData.decode(session.encode()) == session
    for bad in (None, "", "!!!", "e30", "W10", "x" * 5000):
        assert SessionData.decode(bad) is None
    assert decode_flash(encode_flash("error", "nope")) == ("error", "nope")
    assert decode_flash("garbage") is None
    signer = Signer(b"key-1", "oidc-flow")
    sealed = signer.seal({"state": "s"}, 60)
    assert signer.unseal(sealed)["state"] == "s"  # type: ignore[index]
    assert Signer(b"key-2", "oidc-flow").unseal(sealed) is None
    assert Signer(b"key-1", "csrf").unseal(sealed) is None  # purposes do not mix
    assert signer.unseal(signer.seal({"state": "s"}, -1)) is None  # expired
    body, signature = sealed.rsplit(".", 1)
    assert signer.unseal(body + "x." + signature) is None
    assert safe_next("/builds?page=2") == "/builds?page=2"
    assert safe_next("//evil") == safe_next("http://evil") == safe_next("/a\\b") == "/"


def test_cron_feedback_points_at_the_problem() -> None:
    now = datetime(2026, 3, 28, tzinfo=UTC)
    bad = cronview.check("0 0 2 * * MON", "UTC", now)  # both day fields
    assert bad.valid is False and bad.position is not None
    assert bad.caret_line == " " * bad.position + "^"
    dst = cronview.check("0 30 2 ? * *", "Europe/Paris", now)
    # 2026-03-29 02:30 does not exist in Paris: Quartz skips that day
    assert [f.day for f in dst.fires][:3] == [28, 30, 31]
    assert dst.fires[0].tzname() == "CET" and dst.fires[1].tzname() == "CEST"
    long = cronview.check("0 " * 200, "UTC", now)
    assert long.valid is False and "at most 255" in long.message


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "postgres":
        url = request.getfixturevalue("pg_database")
    else:
        url = f"sqlite:///{tmp_path / 'views.db'}"
    opened = Store.open(url)
    request.addfinalizer(opened.dispose)
    return opened


def test_store_views_for_history_and_charts(store: Store) -> None:
    published = publish_path(store, TPCH_DUCKDB, published_by="t")
    cube_id = published.cubes["Sales"]
    start = datetime(2026, 5, 10, 23, 30, tzinfo=UTC)
    with store.session() as s:
        job = schedules.create_schedule(
            s, org_id="default", project_id=published.project_id, cube_id=cube_id,
            time_expression="0 0 1 ? * *", next_fire_at=None,
        )  # fmt: skip
        for i in range(6):
            row = batches.create_batch(
                s, org_id="default", project_id=published.project_id, cube_id=cube_id,
                batch_type=BatchType.FULL_REBUILD, job_id=job.job_id if i < 2 else None,
                now=start + timedelta(hours=i),
            )  # fmt: skip
            row.status, row.start_time = "done", start + timedelta(hours=i)
            row.end_time = row.start_time + timedelta(seconds=10 * (i + 1))
        cube = s.get(Cube, cube_id)
        assert cube is not None
        # around midnight UTC: 23:59:59 counts for the 10th, 00:00:00 for the 11th
        for moment, kind in [(datetime(2026, 5, 10, 23, 59, 59, tzinfo=UTC), "aggregate"),
                             (datetime(2026, 5, 11, 0, 0, 0, tzinfo=UTC), "aggregate"),
                             (datetime(2026, 5, 11, 8, 0, 0, tzinfo=UTC), "base"),
                             (datetime(2026, 5, 9, 23, 0, 0, tzinfo=UTC), "base")]:  # fmt: skip
            query_log.record_query(
                s, cube, username="u", metrics=["revenue"], attributes=[], filter_attributes=[],
                grain=[], grain_key="k", served_by=kind, duration_ms=1, planning_ms=0, rows=1,
                now=moment,
            )  # fmt: skip
    with store.session() as s:
        stmt = console_views.history_stmt("default", cube_id=cube_id, trigger="schedule")
        rows, total = console_views.history_page(s, stmt, limit=10, offset=0)
        assert total == 2 and all(r.job_id == job.job_id for r in rows)
        stmt = console_views.history_stmt("default", trigger="manual", status="done",
                                          since=start + timedelta(hours=3))  # fmt: skip
        assert console_views.history_page(s, stmt, limit=10, offset=0)[1] == 3
        other = console_views.history_stmt("acme", trigger="manual")
        assert console_views.history_page(s, other, limit=10, offset=0)[1] == 0
        finished = console_views.finished_builds(s, "default", start)
        assert [round((b.end_time - b.start_time).total_seconds()) for b in finished] == [
            10, 20, 30, 40, 50, 60]  # fmt: skip
        assert len(console_views.finished_builds(s, "default", start, limit=2)) == 2
        bounds = [datetime(2026, 5, 10, tzinfo=UTC) + timedelta(days=i) for i in range(3)]
        counted = console_views.queries_per_bucket(s, "default", bounds)
        assert counted == {(0, "aggregate"): 1, (1, "aggregate"): 1, (1, "base"): 1}
        names = console_views.cube_names(s, "default")
        assert names[cube_id].cube == "Sales" and names[cube_id].project_id == published.project_id
        assert console_views.cube_query_spec(s, "acme", cube_id) is None
        assert console_views.cube_query_spec(s, "default", cube_id)
        assert console_views.query_hit_names(s, [uuid.uuid4()]) == {}
