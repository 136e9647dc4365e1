"""cluster telemetry: partition queue samples, latest node states, calculations.ready_at

Revision ID: 0014_cluster_telemetry
Revises: 0013_step_liveness
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0014_cluster_telemetry"
down_revision: str | None = "0013_step_liveness"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "partition_samples",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cluster_id", sa.BigInteger(), nullable=False),
        sa.Column("partition", sa.String(length=128), nullable=False),
        sa.Column("pending", sa.Integer(), nullable=False),
        sa.Column("running", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["cluster_id"],
            ["clusters.id"],
            name=op.f("fk_partition_samples_cluster_id_clusters"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_partition_samples")),
    )
    op.create_index(
        "ix_partition_samples_cluster_ts", "partition_samples", ["cluster_id", "ts"], unique=False
    )
    op.create_table(
        "cluster_nodes",
        sa.Column("cluster_id", sa.BigInteger(), nullable=False),
        sa.Column("node", sa.String(length=200), nullable=False),
        sa.Column("state", sa.String(length=64), nullable=False),
        sa.Column("cpus_total", sa.Integer(), nullable=False),
        sa.Column("cpus_allocated", sa.Integer(), nullable=False),
        sa.Column("memory_total_mb", sa.BigInteger(), nullable=False),
        sa.Column("partitions", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["cluster_id"],
            ["clusters.id"],
            name=op.f("fk_cluster_nodes_cluster_id_clusters"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("cluster_id", "node", name=op.f("pk_cluster_nodes")),
    )
    op.add_column("calculations", sa.Column("ready_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("calculations", "ready_at")
    op.drop_table("cluster_nodes")
    op.drop_index("ix_partition_samples_cluster_ts", table_name="partition_samples")
    op.drop_table("partition_samples")
