"""Maintenance and advisor runs: batch types of their own, organization-wide batches,
per-org fire times.

A ``maintenance`` batch belongs to an organization, not to a cube, so ``build_batches``
gets nullable ``project_id``/``cube_id`` and a ``details`` JSON column (what each
maintenance item did); ``maintenance_schedules`` keeps each organization's next fire.

On SQLite the table is rebuilt (copy and move); ``aggsched.store.db.upgrade`` runs
migrations with foreign keys off there, so the rebuild does not null the ``batch_id`` of
every instance and execution through their ON DELETE SET NULL.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

BUILD_TYPES = "'materialize-pending-instances', 'incremental-rebuild', 'full-rebuild'"
STATUSES = "'pending', 'inprogress', 'done', 'failed', 'cancelled'"


def _rebuild(types: str, nullable: bool, details: bool) -> None:
    with op.batch_alter_table("build_batches", recreate="auto") as batch:
        batch.drop_constraint(op.f("ck_build_batches_batch_type"), type_="check")
        batch.create_check_constraint("batch_type", f"batch_type IN ({types})")
        batch.alter_column("project_id", existing_type=sa.Uuid(), nullable=nullable)
        batch.alter_column("cube_id", existing_type=sa.Uuid(), nullable=nullable)
        if details:
            batch.add_column(sa.Column("details", sa.JSON(), nullable=True))
        else:
            batch.drop_column("details")


def upgrade() -> None:
    _rebuild(f"{BUILD_TYPES}, 'maintenance', 'advisor'", nullable=True, details=True)
    op.create_table(
        "maintenance_schedules",
        sa.Column("org_id", sa.String(length=64), nullable=False),
        sa.Column("job", sa.String(length=32), nullable=False),
        sa.Column("time_expression", sa.String(length=255), nullable=False),
        sa.Column("next_fire_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_maintenance_schedules_org_id_organizations"),
            ondelete="CASCADE",
        ),  # fmt: skip
        sa.PrimaryKeyConstraint("org_id", "job", name=op.f("pk_maintenance_schedules")),
    )


def downgrade() -> None:
    op.drop_table("maintenance_schedules")
    op.execute(
        sa.text("DELETE FROM build_batches WHERE batch_type IN ('maintenance', 'advisor')")
    )
    _rebuild(BUILD_TYPES, nullable=False, details=False)
