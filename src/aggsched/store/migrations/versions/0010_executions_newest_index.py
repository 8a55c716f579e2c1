"""The executions index covers the newest-execution probe: (job_id, executed_at, id).

The schedule list and the history endpoint read each job's newest execution ordered by
``executed_at DESC, id DESC``; with ``id`` in the index that is one index-only probe,
without a sort per schedule (SQLite built a temporary B-tree for each one).

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


def downgrade() -> None:
    op.create_index("ix_executions_job_id_executed_at", "executions", ["job_id", "executed_at"])
    op.drop_index("ix_executions_job_id_executed_at_id", table_name="executions")
