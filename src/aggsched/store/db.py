"""The one engine/session factory and the programmatic Alembic runner.

``Store.open(url)`` is the only way the rest of aggsched gets at the metadata DB: it maps
URLs to the drivers we ship (``postgresql://`` -> psycopg 3), sets the SQLite pragmas that
make a file DB safe for several threads/processes (WAL, foreign keys, busy timeout) and
migrates to head. There is no module-level engine: every ``Store`` owns its own, so tests
and embedded servers can run side by side.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from aggsched.config import Settings
from aggsched.store.errors import InvalidValueError

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 30_000


def normalize_url(url: str) -> str:
    """Map user-facing URLs to installed drivers; reject backends we do not support."""
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise InvalidValueError(f"metadata database URL {url!r} is not a valid URL") from exc
    backend, _, driver = parsed.drivername.partition("+")
    if backend in ("postgresql", "postgres"):
        if driver not in ("", "psycopg"):
            raise InvalidValueError(
                f"metadata database URL driver {parsed.drivername!r} unsupported; "
                "use postgresql:// (psycopg 3)"
            )
        parsed = parsed.set(drivername="postgresql+psycopg")
    elif backend != "sqlite":
        raise InvalidValueError(
            f"metadata database URL {parsed.render_as_string(hide_password=True)!r}: "
            "only sqlite:/// and postgresql:// are supported"
        )
    return parsed.render_as_string(hide_password=False)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    """WAL for concurrent readers, enforced foreign keys, wait instead of 'locked'."""
    cursor = dbapi_conn.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        # NORMAL is durable across process crashes in WAL mode (only an OS crash or power
        # loss can lose the last commits) and saves an fsync per transaction.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    finally:
        cursor.close()


def make_engine(url: str) -> Engine:
    """An engine for ``url`` with the per-backend settings described above."""
    normalized = normalize_url(url)
    if normalized.startswith("sqlite"):
        database = make_url(normalized).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(normalized, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(normalized, pool_pre_ping=True)


def alembic_config(url: str) -> Config:
    """An Alembic config built in code (no alembic.ini) pointing at our migrations."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Run migrations on ``url`` up to ``revision`` (idempotent at head)."""
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            config = alembic_config(url)
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    finally:
        engine.dispose()


class Store:
    """Handle on one metadata database: engine plus session factory."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @classmethod
    def open(cls, url: str, *, migrate: bool = True) -> Store:
        """Connect to ``url`` and (by default) migrate it to head first."""
        if migrate:
            upgrade(url)
        return cls(make_engine(url))

    @classmethod
    def from_settings(cls, settings: Settings) -> Store:
        """Open the DB the settings name (creating the home dir for the SQLite default)."""
        if not settings.database_url:
            settings.ensure_home()
        return cls.open(settings.resolved_database_url)

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self.engine.dialect.name

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction: commit when the block succeeds, roll back when it raises."""
        with self._sessions() as session, session.begin():
            yield session

    def ping(self) -> None:
        """Raise unless the database answers (readiness checks)."""
        with self.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    def dispose(self) -> None:
        """Close every pooled connection (call when the owner shuts down)."""
        self.engine.dispose()
