"""output requests: the durable fetch relay between the API and a cluster's agent

Revision ID: 0009_output_requests
Revises: 0008_auth_revocation
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009_output_requests"
down_revision: str | None = "0008_auth_revocation"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "output_requests",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("cluster_id", sa.BigInteger(), nullable=False),
        sa.Column("step_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("workdir", sa.String(length=1024), nullable=False),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("byte_offset", sa.BigInteger(), nullable=False),
        sa.Column("length", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("result", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("content", sa.LargeBinary(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("kind IN ('list', 'read')", name=op.f("ck_output_requests_kind_known")),
        sa.CheckConstraint(
            "state IN ('pending', 'claimed', 'done')", name=op.f("ck_output_requests_state_known")
        ),
        sa.CheckConstraint(
            "byte_offset >= 0 AND length >= 0",
            name=op.f("ck_output_requests_range_not_negative"),
        ),
        sa.ForeignKeyConstraint(
            ["cluster_id"],
            ["clusters.id"],
            name=op.f("fk_output_requests_cluster_id_clusters"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["step_id"],
            ["steps.id"],
            name=op.f("fk_output_requests_step_id_steps"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_output_requests")),
    )
    op.create_index(
        "ix_output_requests_cluster_state", "output_requests", ["cluster_id", "state"]
    )


def downgrade() -> None:
    op.drop_index("ix_output_requests_cluster_state", table_name="output_requests")
    op.drop_table("output_requests")
