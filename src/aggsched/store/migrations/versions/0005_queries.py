"""Query serving: the queryable model per cube, stable views, and the query log.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from aggsched.store.types import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("cubes") as batch:
        batch.add_column(sa.Column("query_spec", sa.Text(), nullable=True))
        batch.add_column(sa.Column("spec_updated_at", UTCDateTime(), nullable=True))
    with op.batch_alter_table("aggregate_definitions") as batch:
        batch.add_column(sa.Column("view_name", sa.String(255), nullable=True))
        batch.add_column(sa.Column("view_schema", sa.String(255), nullable=True))
        batch.add_column(sa.Column("view_table", sa.String(255), nullable=True))
    op.create_table(
        "query_log",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("org_id", sa.String(64), nullable=False),
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("cube_id", sa.Uuid(), nullable=False),
        sa.Column("username", sa.String(255), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("filter_attributes", sa.JSON(), nullable=False),
        sa.Column("grain", sa.JSON(), nullable=False),
        sa.Column("grain_key", sa.String(64), nullable=False),
        sa.Column("served_by", sa.String(32), nullable=False),
        sa.Column("duration_ms", sa.Float(), nullable=False),
        sa.Column("planning_ms", sa.Float(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("sql", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organizations.id"], name="fk_query_log_org_id_organizations"
        ),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name="fk_query_log_project_id_projects",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["cube_id"], ["cubes.id"], name="fk_query_log_cube_id_cubes", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_query_log"),
    )
    op.create_index("ix_query_log_org_created", "query_log", ["org_id", "created_at"])
    op.create_index("ix_query_log_cube_created", "query_log", ["cube_id", "created_at"])
    op.create_table(
        "query_hits",
        sa.Column("query_id", sa.Uuid(), nullable=False),
        sa.Column("instance_id", sa.Uuid(), nullable=False),
        sa.Column("definition_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["query_id"], ["query_log.id"], name="fk_query_hits_query_id_query_log",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("query_id", "instance_id", name="pk_query_hits"),
    )
    op.create_index("ix_query_hits_instance", "query_hits", ["instance_id", "created_at"])
    op.create_index("ix_query_hits_definition", "query_hits", ["definition_id", "created_at"])


def downgrade() -> None:
    op.drop_table("query_hits")
    op.drop_table("query_log")
    with op.batch_alter_table("aggregate_definitions") as batch:
        batch.drop_column("view_table")
        batch.drop_column("view_schema")
        batch.drop_column("view_name")
    with op.batch_alter_table("cubes") as batch:
        batch.drop_column("spec_updated_at")
        batch.drop_column("query_spec")
