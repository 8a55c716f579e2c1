"""Demand-defined aggregates: why each was made, and cached size estimates.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from aggsched.store.types import UTCDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("aggregate_definitions") as batch:
        batch.add_column(sa.Column("justification", sa.JSON(), nullable=True))
    op.create_table(
        "size_estimates",
        sa.Column("cube_id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("rows", sa.Float(), nullable=False),
        sa.Column("estimated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["cube_id"], ["cubes.id"], name="fk_size_estimates_cube_id_cubes",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("cube_id", "key", name="pk_size_estimates"),
    )


def downgrade() -> None:
    op.drop_table("size_estimates")
    with op.batch_alter_table("aggregate_definitions") as batch:
        batch.drop_column("justification")
