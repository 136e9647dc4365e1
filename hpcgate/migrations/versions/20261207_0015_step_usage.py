"""core-hour accounting: step_usage, usage_quotas, users.project (issue 18)

Revision ID: 0015_step_usage
Revises: 0014_cluster_telemetry
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015_step_usage"
down_revision: str | None = "0014_cluster_telemetry"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _fk(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{target}.id"], name=op.f(f"fk_{table}_{column}_{target}"), ondelete="CASCADE"
    )


def _timestamps() -> list[sa.Column[object]]:
    return [
        sa.Column(name, sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False)
        for name in ("created_at", "updated_at")
    ]


def upgrade() -> None:
    op.add_column("users", sa.Column("project", sa.String(length=64), nullable=True))
    op.create_table(
        "step_usage",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("step_id", sa.BigInteger(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("calculation_id", sa.BigInteger(), nullable=False),
        sa.Column("cluster_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("core_seconds", sa.Float(), nullable=False),
        sa.Column("cpu_seconds", sa.Float(), nullable=True),
        sa.Column("elapsed_s", sa.Integer(), nullable=True),
        sa.Column("alloc_cpus", sa.Integer(), nullable=True),
        sa.Column("max_rss_kb", sa.BigInteger(), nullable=True),
        sa.Column("req_mem_kb", sa.BigInteger(), nullable=True),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("native_state", sa.String(length=64), nullable=True),
        sa.Column(
            "recorded_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        _fk("step_usage", "step_id", "steps"),
        _fk("step_usage", "calculation_id", "calculations"),
        _fk("step_usage", "cluster_id", "clusters"),
        _fk("step_usage", "user_id", "users"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_step_usage")),
        sa.UniqueConstraint("step_id", "attempt", name="uq_step_usage_step_id_attempt"),
    )
    op.create_index("ix_step_usage_recorded_at", "step_usage", ["recorded_at"])
    op.create_index("ix_step_usage_user_recorded", "step_usage", ["user_id", "recorded_at"])
    op.create_index("ix_step_usage_cluster_recorded", "step_usage", ["cluster_id", "recorded_at"])
    op.create_index(op.f("ix_step_usage_calculation_id"), "step_usage", ["calculation_id"])
    op.create_table(
        "usage_quotas",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("cluster_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("soft_core_hours", sa.Float(), nullable=True),
        sa.Column("hard_core_hours", sa.Float(), nullable=True),
        *_timestamps(),
        _fk("usage_quotas", "cluster_id", "clusters"),
        _fk("usage_quotas", "user_id", "users"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_quotas")),
        sa.UniqueConstraint("cluster_id", "user_id", name="uq_usage_quotas_cluster_id_user_id"),
        sa.CheckConstraint(
            "soft_core_hours IS NULL OR soft_core_hours >= 0",
            name=op.f("ck_usage_quotas_soft_positive"),
        ),
        sa.CheckConstraint(
            "hard_core_hours IS NULL OR hard_core_hours >= 0",
            name=op.f("ck_usage_quotas_hard_positive"),
        ),
    )
    op.create_index(op.f("ix_usage_quotas_user_id"), "usage_quotas", ["user_id"])


def downgrade() -> None:
    op.drop_table("usage_quotas")
    op.drop_table("step_usage")
    op.drop_column("users", "project")
