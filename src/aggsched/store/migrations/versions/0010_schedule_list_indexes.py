"""Indexes in the order the schedule list reads: a cube's schedules by
(created_at, job_id), and each job's newest execution by (executed_at, id).

The list reads a cube's schedules oldest first and each one's newest execution ordered
by ``executed_at DESC, id DESC``. With the tie-breaking columns in the indexes neither
needs a sort (SQLite built a temporary B-tree for every schedule's probe), and the
probe is index-only.

Revision ID: 0010
Revises: 0008
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_executions_job_id_executed_at_id", "executions", ["job_id", "executed_at", "id"]
    )
    op.drop_index("ix_executions_job_id_executed_at", table_name="executions")
    op.create_index(
        "ix_schedules_org_cube_created", "schedules", ["org_id", "cube_id", "created_at", "job_id"]
    )
    op.drop_index("ix_schedules_org_cube", table_name="schedules")


def downgrade() -> None:
    op.create_index("ix_executions_job_id_executed_at", "executions", ["job_id", "executed_at"])
    op.drop_index("ix_executions_job_id_executed_at_id", table_name="executions")
    op.create_index("ix_schedules_org_cube", "schedules", ["org_id", "cube_id"])
    op.drop_index("ix_schedules_org_cube_created", table_name="schedules")
