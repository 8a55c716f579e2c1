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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from aggsched.config import Settings
from aggsched.store.errors import InvalidValueError, StoreError

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


class SchemaVersionError(StoreError):
    """The metadata DB's schema is not the one this code runs on (newer, or not upgraded)."""


@dataclass(frozen=True)
class SchemaVersion:
    """The schema revision a database is at and the newest one this code knows."""

    database: str | None
    code: str

    @property
    def current(self) -> bool:
        return self.database == self.code


def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config("sqlite://"))


def _version(connection: Connection, scripts: ScriptDirectory) -> SchemaVersion:
    """Read the database's revision; refuse one this code does not know (a newer
    aggsched migrated it), naming both versions."""
    database = MigrationContext.configure(connection).get_current_revision()
    code = scripts.get_current_head() or ""
    known = {script.revision for script in scripts.walk_revisions()}
    if database is not None and database not in known:
        raise SchemaVersionError(
            f"the metadata database is at schema revision {database}, newer than this "
            f"aggsched's schema {code}: a newer aggsched upgraded it; run that version "
            "(downgrading a database is not supported)"
        )
    return SchemaVersion(database, code)


def schema_version(url: str) -> SchemaVersion:
    """The database's schema revision and this code's (``SchemaVersionError`` if newer)."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return _version(connection, _scripts())
    finally:
        engine.dispose()


def upgrade(url: str, revision: str = "head") -> SchemaVersion:
    """Run migrations on ``url`` up to ``revision`` (idempotent at head); returns the
    versions before the upgrade. A database newer than this code is refused untouched.

    SQLite alters a table by copying it, and dropping the old copy would fire every ON
    DELETE action pointing at it, so migrations run there with foreign keys off (the
    pragma only takes effect outside a transaction) and are checked afterwards.
    """
    engine = make_engine(url)
    sqlite = engine.dialect.name == "sqlite"
    try:
        with engine.connect() as connection:
            before = _version(connection, _scripts())
            if sqlite:
                connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()
            try:
                with connection.begin():
                    config = alembic_config(url)
                    config.attributes["connection"] = connection
                    command.upgrade(config, revision)
                    if sqlite:
                        broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
                        if broken:
                            raise SchemaVersionError(f"migration broke foreign keys: {broken}")
            finally:
                if sqlite:
                    connection.exec_driver_sql("PRAGMA foreign_keys=ON")
                    connection.commit()
        return before
    finally:
        engine.dispose()


class Store:
    """Handle on one metadata database: engine plus session factory."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @classmethod
    def open(cls, url: str, *, migrate: bool = True, require_current: bool = False) -> Store:
        """Connect to ``url``, migrating it to head first by default. A database whose
        schema is newer than this code is always refused (``SchemaVersionError``); with
        ``require_current`` (and no ``migrate``) an older one is refused too."""
        if migrate:
            upgrade(url)
        else:
            version = schema_version(url)
            if require_current and not version.current:
                raise SchemaVersionError(
                    f"the metadata database is at schema revision {version.database or 'none'}"
                    f", this aggsched needs {version.code}: run `aggsched db upgrade` first "
                    "(AGGSCHED_AUTO_MIGRATE is off)"
                )
        return cls(make_engine(url))

    @classmethod
    def from_settings(cls, settings: Settings) -> Store:
        """Open the DB the settings name (creating the home dir for the SQLite default);
        migrated on open unless ``auto_migrate`` is off."""
        if not settings.database_url:
            settings.ensure_home()
        migrate = settings.auto_migrate
        return cls.open(settings.resolved_database_url, migrate=migrate, require_current=True)

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
