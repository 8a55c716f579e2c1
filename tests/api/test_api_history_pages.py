"""Deep history pages through bookmarks are exactly the pages ``OFFSET`` gives, before and
after new batches arrive, filtered by cube or not, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert

from aggsched.api.bookmarks import HistoryBookmarks
from aggsched.store import Store, api_views, catalog
from aggsched.store.models import BuildBatch

ROWS = 12_000
T0 = datetime(2021, 3, 4, tzinfo=UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'meta.db'}"
    else:
        url = request.getfixturevalue("pg_database")
    opened = Store.open(url)
    yield opened
    opened.dispose()


def _batches(project: uuid.UUID, cubes: list[uuid.UUID], times: list[datetime]) -> list[dict]:  # type: ignore[type-arg]
    return [
        {"id": uuid.uuid4(), "org_id": "default", "project_id": project,
         "cube_id": cubes[i % len(cubes)], "batch_type": "full-rebuild", "status": "done",
         "create_date": when}
        for i, when in enumerate(times)
    ]  # fmt: skip


def test_bookmarked_pages_equal_offset_pages(store: Store) -> None:
    with store.session() as s:
        project = catalog.upsert_project(s, "default", "p", name="p")
        cubes = [catalog.upsert_cube(s, project, f"c{i}", f"c{i}").id for i in range(3)]
        project_id = project.id
    # many batches share a create_date: the id orders them, and bookmarks must too
    times = [T0 + timedelta(seconds=(i // 4) * 7) for i in range(ROWS)]
    with store.engine.begin() as connection:
        connection.execute(insert(BuildBatch), _batches(project_id, cubes, times))
    marks = HistoryBookmarks(store, every=250, from_offset=1)
    listings = {
        ("all",): api_views.batch_history_stmt("default"),
        ("cube",): api_views.batch_history_stmt("default", cube_id=cubes[1]),
    }
    offsets = [1, 249, 250, 251, 999, 4_000, 3_999, ROWS // 3 - 1, ROWS - 10, ROWS - 1, ROWS + 5]

    def check() -> int:
        compared = 0
        with store.session() as s:
            for key, stmt in listings.items():
                for offset in offsets:
                    got = [b.id for b in marks.page(s, key, stmt, 10, offset)]
                    want = [b.id for b in api_views.batch_history_page(s, stmt, 10, offset)]
                    assert got == want, (key, offset)
                    compared += bool(want)
        return compared

    assert check() > 10  # no bookmarks yet: the plain way, and they are being taken
    marks.wait_idle()
    assert all(marks._marks[key].keys for key in listings)  # now served by bookmarks
    assert check() > 10
    # new batches arrive at the head (now) and in the settle window: positions shift
    now = datetime.now(UTC)
    recent = [now - timedelta(minutes=5), now, now + timedelta(seconds=1)] * 40
    with store.engine.begin() as connection:
        connection.execute(insert(BuildBatch), _batches(project_id, cubes, recent))
    assert check() > 10
    marks.close()
