"""Engine, URL mapping, migrations (schema == models) and UTC timestamps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.exc import StatementError

from aggsched.store import InvalidValueError, Store, normalize_url, upgrade
from aggsched.store.batches import create_batch, get_batch
from aggsched.store.catalog import get_org, list_orgs
from aggsched.store.db import alembic_config
from aggsched.store.models import Base, BatchType


def test_migrations_reach_head_and_match_models(store: Store, store_url: str) -> None:
    head = ScriptDirectory.from_config(alembic_config(store_url)).get_current_head()
    upgrade(store_url)  # idempotent at head
    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert context.get_current_revision() == head
        assert compare_metadata(context, Base.metadata) == []


def test_default_org_exists_after_migration(store: Store) -> None:
    with store.session() as session:
        assert get_org(session, "default").name == "default"
        assert [org.id for org in list_orgs(session)] == ["default"]


def test_postgres_urls_map_to_psycopg() -> None:
    assert normalize_url("postgresql://u:p@h:5432/db") == "postgresql+psycopg://u:p@h:5432/db"
    assert normalize_url("postgres://h/db").startswith("postgresql+psycopg://")
    assert normalize_url("sqlite:////tmp/x.db") == "sqlite:////tmp/x.db"


@pytest.mark.parametrize("url", ["mysql://h/db", "postgresql+asyncpg://h/db", "not a url"])
def test_unsupported_urls_are_refused(url: str) -> None:
    with pytest.raises(InvalidValueError, match="URL"):
        normalize_url(url)


def test_sqlite_pragmas(tmp_path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'nested' / 'a.db'}")
    try:
        with store.engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
            assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 30000
    finally:
        store.dispose()


def test_timestamps_come_back_utc_aware(store: Store, cube) -> None:
    berlin = timezone(timedelta(hours=2))
    created = datetime(2024, 3, 1, 12, 30, 15, 123456, tzinfo=berlin)
    with store.session() as session:
        batch_id = create_batch(
            session, org_id=cube.org_id, project_id=cube.project_id, cube_id=cube.cube_id,
            batch_type=BatchType.FULL_REBUILD, now=created,
        ).id  # fmt: skip
    store2 = Store(store.engine)  # fresh session factory: nothing cached
    with store2.session() as session:
        back = get_batch(session, batch_id).create_date
    assert back.tzinfo is not None and back.utcoffset() == timedelta(0)
    assert back == created
    assert back.hour == 10


def test_naive_datetimes_are_refused(store: Store, cube) -> None:
    with pytest.raises(StatementError, match="naive datetime"), store.session() as session:
        create_batch(
            session, org_id=cube.org_id, project_id=cube.project_id, cube_id=cube.cube_id,
            batch_type="full-rebuild", now=datetime(2024, 1, 1),
        )  # fmt: skip
    with store.session() as session:
        assert session.execute(text("SELECT count(*) FROM build_batches")).scalar() == 0


def test_session_rolls_back_on_error(store: Store, cube) -> None:
    with pytest.raises(RuntimeError), store.session() as session:
        create_batch(
            session, org_id=cube.org_id, project_id=cube.project_id, cube_id=cube.cube_id,
            batch_type="full-rebuild", now=datetime.now(UTC),
        )  # fmt: skip
        raise RuntimeError("boom")
    with store.session() as session:
        assert session.execute(text("SELECT count(*) FROM build_batches")).scalar() == 0


def test_store_from_settings_creates_the_sqlite_home(tmp_path) -> None:
    from aggsched.config import Settings

    settings = Settings(home=tmp_path / "home", database_url=None)
    store = Store.from_settings(settings)
    try:
        assert store.dialect == "sqlite"
        assert (tmp_path / "home" / "aggsched.db").exists()
        with store.session() as session:
            assert get_org(session, "default").id == "default"
    finally:
        store.dispose()
