"""Store fixtures: every store test runs on a SQLite file and on a fresh PostgreSQL DB."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from aggsched.store import Store
from aggsched.store.catalog import upsert_cube, upsert_project
from aggsched.store.models import DEFAULT_ORG_ID


@pytest.fixture(
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """URL of an empty metadata DB on each backend (PG from the shared fixture)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'aggsched.db'}"
    return request.getfixturevalue("pg_database")


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    opened = Store.open(store_url)
    try:
        yield opened
    finally:
        opened.dispose()


@dataclass(frozen=True)
class CubeRef:
    org_id: str
    project_id: uuid.UUID
    cube_id: uuid.UUID


def make_cube(store: Store, cube_name: str = "tpch", project: str = "tpch_project") -> CubeRef:
    """A project with one cube in the default organization."""
    with store.session() as session:
        proj = upsert_project(session, DEFAULT_ORG_ID, project, name=project)
        cube = upsert_cube(session, proj, cube_name, cube_name.title())
        return CubeRef(DEFAULT_ORG_ID, proj.id, cube.id)


@pytest.fixture
def cube(store: Store) -> CubeRef:
    return make_cube(store)


@pytest.fixture
def cube_factory(store: Store) -> Callable[[str], CubeRef]:
    """Make more cubes (same project) by model name."""
    return lambda name: make_cube(store, name)
