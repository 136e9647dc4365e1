"""task cancel: a sweep's stalled task is cancelled on its own and retried (issue 17)

array_tasks.cancel_pending (the cancellation to send, cleared when the dispatcher says it
was sent), array_tasks.stall_cancelled (the task was cancelled as stalled: its end is the
recovery ladder's ``incomplete``, not a user's cancel; cleared when it is retried), and the
partial index ix_array_tasks_cancel_pending (every harvest asks for the tasks to cancel).

Revision ID: 0017_task_cancel
Revises: 0016_task_attempts
Create Date: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017_task_cancel"
down_revision: str | None = "0016_task_attempts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for name in ("cancel_pending", "stall_cancelled"):
        op.add_column(
            "array_tasks",
            sa.Column(name, sa.Boolean(), server_default="false", nullable=False),
        )
    op.create_index(
        "ix_array_tasks_cancel_pending",
        "array_tasks",
        ["step_id"],
        postgresql_where=sa.text("cancel_pending"),
    )


def downgrade() -> None:
    op.drop_index("ix_array_tasks_cancel_pending", table_name="array_tasks")
    op.drop_column("array_tasks", "stall_cancelled")
    op.drop_column("array_tasks", "cancel_pending")
