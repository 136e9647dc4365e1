"""task attempts: a sweep's tasks retried one by one, and watched for stalls (issue 17)

array_tasks.attempt / verdict, step_attempts.task_index (unique with step and attempt,
NULLs not distinct: a step's own attempts keep task_index NULL), task_liveness.

Revision ID: 0016_task_attempts
Revises: 0015_step_usage
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0016_task_attempts"
down_revision: str | None = "0015_step_usage"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "array_tasks", sa.Column("attempt", sa.Integer(), server_default="1", nullable=False)
    )
    op.add_column("array_tasks", sa.Column("verdict", sa.String(length=64), nullable=True))
    op.add_column("step_attempts", sa.Column("task_index", sa.Integer(), nullable=True))
    op.drop_constraint("uq_step_attempts_step_id", "step_attempts", type_="unique")
    op.create_unique_constraint(
        op.f("uq_step_attempts_step_id"),
        "step_attempts",
        ["step_id", "task_index", "attempt"],
        postgresql_nulls_not_distinct=True,
    )
    op.create_table(
        "task_liveness",
        sa.Column("task_id", sa.BigInteger(), nullable=False),
        sa.Column("out_sizes", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("markers", sa.Integer(), nullable=False),
        sa.Column("progress_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cpu_time_s", sa.Float(), nullable=True),
        sa.Column("cpu_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("stalled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("stall_reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["task_id"],
            ["array_tasks.id"],
            name=op.f("fk_task_liveness_task_id_array_tasks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("task_id", name=op.f("pk_task_liveness")),
    )


def downgrade() -> None:
    op.drop_table("task_liveness")
    op.execute("DELETE FROM step_attempts WHERE task_index IS NOT NULL")
    op.drop_constraint("uq_step_attempts_step_id", "step_attempts", type_="unique")
    op.create_unique_constraint(
        op.f("uq_step_attempts_step_id"), "step_attempts", ["step_id", "attempt"]
    )
    op.drop_column("step_attempts", "task_index")
    op.drop_column("array_tasks", "verdict")
    op.drop_column("array_tasks", "attempt")
