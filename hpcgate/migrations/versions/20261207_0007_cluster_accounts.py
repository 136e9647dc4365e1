"""per-user cluster accounts and job identities

Revision ID: 0007_cluster_accounts
Revises: 0006_input_blobs
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_cluster_accounts"
down_revision: str | None = "0006_input_blobs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "cluster_accounts",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("cluster_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("login_name", sa.String(length=32), nullable=False),
        sa.Column("ssh_key_encrypted", sa.LargeBinary(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "login_name ~ '^[a-z_][a-z0-9_.-]{0,31}$'",
            name=op.f("ck_cluster_accounts_login_name_charset"),
        ),
        sa.CheckConstraint(
            "login_name <> 'root'", name=op.f("ck_cluster_accounts_login_name_not_root")
        ),
        sa.ForeignKeyConstraint(
            ["cluster_id"], ["clusters.id"],
            name=op.f("fk_cluster_accounts_cluster_id_clusters"), ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"],
            name=op.f("fk_cluster_accounts_user_id_users"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cluster_accounts")),
        sa.UniqueConstraint(
            "cluster_id", "user_id", name=op.f("uq_cluster_accounts_cluster_id_user_id")
        ),
    )
    op.create_index(
        op.f("ix_cluster_accounts_user_id"), "cluster_accounts", ["user_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_cluster_accounts_user_id"), table_name="cluster_accounts")
    op.drop_table("cluster_accounts")
