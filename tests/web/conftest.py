"""Console fixtures: the app on a real store (TestClient), a real server, a real browser.

The browser is Debian's chromium (``/usr/bin/chromium``, installed by ``.ci/run``) driven
by Playwright; Playwright never downloads a browser of its own. Under ``CI=true`` a
missing chromium fails the browser tests; elsewhere it skips them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from console_env import ConsoleEnv, make_env, served

CHROMIUM = Path(os.environ.get("AGGSCHED_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
    "--disable-dev-shm-usage",
]  # fmt: skip
ARTIFACTS = Path(__file__).resolve().parents[1] / ".artifacts" / "console"


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory, tpch_duckdb: str) -> Iterator[ConsoleEnv]:
    """The console app on a fresh SQLite store (no server, no workers)."""
    home = tmp_path_factory.mktemp("console_home")
    env = make_env(home, f"sqlite:///{home / 'aggsched.db'}", tpch_duckdb)
    yield env
    env.store.dispose()


@pytest.fixture(scope="module")
def live(
    tmp_path_factory: pytest.TempPathFactory, tpch_duckdb: str
) -> Iterator[tuple[ConsoleEnv, str]]:
    """The console served by uvicorn with a scheduler node; ``start_workers()`` adds
    build workers. Yields the env and the base URL."""
    home = tmp_path_factory.mktemp("console_live")
    env = make_env(home, f"sqlite:///{home / 'aggsched.db'}", tpch_duckdb)
    with served(env) as base:
        yield env, base
    env.store.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Headless Debian chromium under Playwright (one per module)."""
    if not CHROMIUM.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"chromium is required under CI=true (missing: {CHROMIUM})")
        pytest.skip(f"chromium not installed at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Where screenshots go (git-ignored)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
