"""step liveness: output progress, CPU activity and stalls of running steps (issue 17)

Revision ID: 0013_step_liveness
Revises: 0012_step_attempts
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0013_step_liveness"
down_revision: str | Sequence[str] | None = "0012_step_attempts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "step_liveness",
        sa.Column("step_id", sa.BigInteger(), nullable=False),
        sa.Column("out_sizes", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("markers", sa.Integer(), nullable=False),
        sa.Column("progress_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cpu_time_s", sa.Float(), nullable=True),
        sa.Column("cpu_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("stalled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("stall_reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["step_id"],
            ["steps.id"],
            name=op.f("fk_step_liveness_step_id_steps"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("step_id", name=op.f("pk_step_liveness")),
    )


def downgrade() -> None:
    op.drop_table("step_liveness")
