"""Helpers for the API tests: build a real app on a real store with the TPC-H project
published and users of every role holding bearer tokens."""

from __future__ import annotations

import base64
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from fastapi.testclient import TestClient

from aggsched.api import create_app
from aggsched.config import Settings
from aggsched.engine.publish import publish_path
from aggsched.store import Store, catalog
from aggsched.store.models import Role

PASSWORD = "s3cret-pass"
USERS = {
    "admin": ("default", Role.ADMIN),
    "manager": ("default", Role.AGGREGATES_MANAGE),
    "viewer": ("default", Role.AGGREGATES_VIEW),
    "acme_admin": ("acme", Role.ADMIN),
}


@dataclass
class ApiEnv:
    """One running app and what the tests need to address it."""

    client: TestClient
    store: Store
    settings: Settings
    project_id: uuid.UUID
    cube_id: uuid.UUID
    other_project_id: uuid.UUID
    other_cube_id: uuid.UUID
    tokens: dict[str, str] = field(default_factory=dict)

    def headers(self, user: str = "admin") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user]}"}

    def cube_path(self, org: str = "default") -> str:
        return f"/org/{org}/project/{self.project_id}/cube/{self.cube_id}/aggregates-creation"


def basic(user: str, password: str = PASSWORD) -> dict[str, str]:
    raw = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def second_project(sml_tpch: Path, target: Path) -> Path:
    """A copy of the TPC-H repository under another catalog name (a second project)."""
    shutil.copytree(sml_tpch, target)
    catalog_file = target / "catalog.yml"
    text = catalog_file.read_text().replace("unique_name: tpc-h", "unique_name: tpc-h-copy")
    catalog_file.write_text(text)
    return target


def _seed_users(store: Store) -> None:
    with store.session() as session:
        catalog.ensure_org(session, "acme")
        for name, (org, role) in USERS.items():
            user = catalog.add_user(session, name, PASSWORD)
            catalog.grant_role(session, user.id, org, role)


def build_env(url: str, home: Path, sml_tpch: Path, **overrides: object) -> Iterator[ApiEnv]:
    settings = Settings(home=home, database_url=url, **overrides)  # type: ignore[arg-type]
    store = Store.open(url)
    app = create_app(settings, store)
    _seed_users(store)
    first = publish_path(store, sml_tpch, published_by="admin")
    second = publish_path(store, second_project(sml_tpch, home / "copy"), published_by="admin")
    with TestClient(app, raise_server_exceptions=False) as client:
        env = ApiEnv(
            client=client, store=store, settings=settings, project_id=first.project_id,
            cube_id=next(iter(first.cubes.values())), other_project_id=second.project_id,
            other_cube_id=next(iter(second.cubes.values())),
        )  # fmt: skip
        for name, (org, _role) in USERS.items():
            response = client.get(f"/{org}/auth", headers=basic(name))
            assert response.status_code == 200, response.text
            env.tokens[name] = response.text
        yield env
    store.dispose()
