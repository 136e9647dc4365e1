"""steps: partial index for pending cancellations (read on every agent poll)

Revision ID: 0005_cancel_pending_index
Revises: 0004_list_index
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_cancel_pending_index"
down_revision: str | None = "0004_list_index"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_steps_cancel_pending",
        "steps",
        ["cluster_id"],
        postgresql_where=sa.text("cancel_pending"),
    )


def downgrade() -> None:
    op.drop_index("ix_steps_cancel_pending", table_name="steps")
