"""API test fixtures: a real app on a real store (SQLite, and PostgreSQL where asked)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from api_helpers import ApiEnv, build_env


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, sml_tpch: Path) -> Iterator[ApiEnv]:
    """The app on a fresh SQLite store in a fresh data directory."""
    home = tmp_path_factory.mktemp("api_home")
    yield from build_env(f"sqlite:///{home / 'aggsched.db'}", home, sml_tpch)


BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(scope="module", params=BACKENDS)
def api_any(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, sml_tpch: Path
) -> Iterator[ApiEnv]:
    """The app on SQLite and on PostgreSQL (core and auth tests run on both)."""
    home = tmp_path_factory.mktemp(f"api_home_{request.param}")
    if request.param == "postgres":
        url = request.getfixturevalue("pg_database_module")
    else:
        url = f"sqlite:///{home / 'aggsched.db'}"
    yield from build_env(url, home, sml_tpch)
