"""Aggregate definitions that a publish stored as invalid, with the reason.

A model with some aggregates that cannot be built as written publishes the rest; each bad
one is kept as a definition with its precise reason, listed as `invalid`, never built.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("aggregate_definitions") as batch:
        batch.add_column(sa.Column("invalid_reason", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("aggregate_definitions") as batch:
        batch.drop_column("invalid_reason")
