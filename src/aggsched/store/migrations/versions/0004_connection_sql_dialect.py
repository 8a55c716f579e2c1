"""The SQL dialect a connection's model SQL is written in (``--sql-dialect``).

NULL: the SML connection's platform (its ``as_connection``) decides, as before.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("connections") as batch:
        batch.add_column(sa.Column("sql_dialect", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("connections") as batch:
        batch.drop_column("sql_dialect")
