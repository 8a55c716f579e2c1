"""At most one in-progress batch per cube, enforced by the database.

Claims check that no other batch of the cube is in progress, but two claimers on
PostgreSQL (READ COMMITTED) cannot see each other's uncommitted claim; this partial
unique index makes the second one fail instead of building the cube twice at once.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

WHERE = sa.text("status = 'inprogress'")


def upgrade() -> None:
    op.create_index(
        "uq_build_batches_one_inprogress_per_cube", "build_batches", ["cube_id"], unique=True,
        sqlite_where=WHERE, postgresql_where=WHERE,
    )  # fmt: skip


def downgrade() -> None:
    op.drop_index("uq_build_batches_one_inprogress_per_cube", table_name="build_batches")
