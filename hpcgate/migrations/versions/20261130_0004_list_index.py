"""calculation list: index for newest-first pages

Revision ID: 0004_list_index
Revises: 0003_security
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0004_list_index"
down_revision: str | None = "0003_security"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_calculations_created_id", "calculations", ["created_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_calculations_created_id", table_name="calculations")
