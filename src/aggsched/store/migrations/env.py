"""Alembic environment for aggsched's metadata DB (driven from ``aggsched.store.db``).

The caller passes an open connection in ``config.attributes["connection"]``; the URL
option is the fallback for running Alembic by hand. SQLite uses batch mode so later
migrations can ALTER tables the only way SQLite allows (copy and move).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from aggsched.store.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
    try:
        with engine.begin() as conn:
            _run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("aggsched migrations run online only (use aggsched.store.db.upgrade)")
run_migrations_online()
