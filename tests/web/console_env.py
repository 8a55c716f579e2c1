"""A real console to test: the app on a real store with aggsched's TPC-H example project
mapped to the session's TPC-H DuckDB, users of each role, and (for the browser tests) a
real uvicorn server with real scheduler and build workers."""

from __future__ import annotations

import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from aggsched.config import Settings
from aggsched.engine.node import Node
from aggsched.engine.publish import publish_path
from aggsched.examples import TPCH_DUCKDB
from aggsched.store import Store, catalog
from aggsched.store.models import Role
from aggsched.web import create_app

PASSWORD = "console-pass-1"
USERS = {"admin": Role.ADMIN, "manager": Role.AGGREGATES_MANAGE, "viewer": Role.AGGREGATES_VIEW}
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class ConsoleEnv:
    """One console app on one store, with the example project published."""

    app: FastAPI
    store: Store
    settings: Settings
    project_id: uuid.UUID
    cube_id: uuid.UUID
    warehouse_url: str
    nodes: list[Node] = field(default_factory=list)
    worker_stores: list[Store] = field(default_factory=list)

    @property
    def cube_page(self) -> str:
        return f"/cubes/{self.project_id}/{self.cube_id}"

    def start_workers(self) -> None:
        """Build workers from now on (the fixture starts without any, so a test can see
        a batch wait, then run): a second node, with its own connection pool as if it
        were another process."""
        store = Store.open(self.settings.resolved_database_url)
        node = Node(self.settings, store, scheduler=False, workers=True)
        node.start()
        self.worker_stores.append(store)
        self.nodes.append(node)


def make_env(home: Path, database_url: str, warehouse_url: str, **overrides: object) -> ConsoleEnv:
    settings = Settings(
        home=home, database_url=database_url, heartbeat_seconds=0.5, worker_poll_seconds=0.2,
        scheduler_idle_seconds=1.0, **overrides,
    )  # type: ignore[arg-type]  # fmt: skip
    store = Store.open(database_url)
    schema = f"as_agg_{uuid.uuid4().hex[:8]}"
    with store.session() as s:
        for name in ("tpch", "calendar"):
            catalog.upsert_connection(s, "default", name, warehouse_url, aggregate_schema=schema)
        for name, role in USERS.items():
            user = catalog.add_user(s, name, PASSWORD)
            catalog.grant_role(s, user.id, "default", role)
    published = publish_path(store, TPCH_DUCKDB, published_by="admin")
    app = create_app(settings, store)
    return ConsoleEnv(app, store, settings, published.project_id, published.cubes["Sales"],
                      warehouse_url)  # fmt: skip


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


def sign_in(client: TestClient, user: str, password: str = PASSWORD, org: str = "default") -> None:
    """Sign ``client`` in through the form (its cookies keep the session)."""
    token = csrf_of(client.get("/login").text)
    response = client.post(
        "/login", data={"org": org, "username": user, "password": password, "csrf_token": token},
        follow_redirects=False,
    )  # fmt: skip
    assert response.status_code == 303, response.text


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def served(env: ConsoleEnv) -> Iterator[str]:
    """The app under uvicorn on a free port, with a scheduler node (no workers yet)."""
    scheduler = Node(env.settings, env.store, scheduler=True, workers=False)
    scheduler.start()
    env.nodes.append(scheduler)
    port = free_port()
    config = uvicorn.Config(env.app, host="127.0.0.1", port=port, log_level="warning",
                            lifespan="on")  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="console-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        for node in reversed(env.nodes):
            node.stop(grace=5)
        for store in env.worker_stores:
            store.dispose()
