"""telemetry rollups: heartbeat and step samples beyond the raw retention

Revision ID: 0010_telemetry_rollups
Revises: 0009_output_requests
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_telemetry_rollups"
down_revision: str | None = "0009_output_requests"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

GAUGES = ("cpu_load", "cpus_allocated", "cpus_total", "memory_free_mb", "memory_total_mb",
          "queue_depth", "running_jobs")  # fmt: skip


def upgrade() -> None:
    op.create_table(
        "heartbeat_rollups",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("cluster_id", sa.BigInteger(), nullable=False),
        sa.Column("step_id", sa.BigInteger(), nullable=True),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("node", sa.String(length=200), nullable=True),
        sa.Column("bucket_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("bucket_s", sa.Integer(), nullable=False),
        sa.Column("samples", sa.Integer(), nullable=False),
        *(sa.Column(g, sa.Float(), nullable=True) for g in GAUGES),
        sa.Column("cpu_time_s", sa.Float(), nullable=True),
        sa.Column("max_rss_kb", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["cluster_id"],
            ["clusters.id"],
            name=op.f("fk_heartbeat_rollups_cluster_id_clusters"),
            ondelete="CASCADE",
        ),  # fmt: skip
        sa.ForeignKeyConstraint(
            ["step_id"],
            ["steps.id"],
            name=op.f("fk_heartbeat_rollups_step_id_steps"),
            ondelete="CASCADE",
        ),  # fmt: skip
        sa.PrimaryKeyConstraint("id", name=op.f("pk_heartbeat_rollups")),
    )
    # One row per series and bucket, so a late sample merges into its bucket (ON CONFLICT).
    op.execute(
        "CREATE UNIQUE INDEX uq_heartbeat_rollups_bucket ON heartbeat_rollups "
        "(scope, cluster_id, (coalesce(step_id, 0)), (coalesce(node, '')), bucket_s, bucket_start)"
    )
    op.create_index(
        "ix_heartbeat_rollups_cluster_ts", "heartbeat_rollups", ["cluster_id", "bucket_start"]
    )
    op.create_index(
        "ix_heartbeat_rollups_step_ts", "heartbeat_rollups", ["step_id", "bucket_start"]
    )


def downgrade() -> None:
    op.drop_table("heartbeat_rollups")
