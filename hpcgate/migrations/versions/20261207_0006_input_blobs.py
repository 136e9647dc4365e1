"""input blobs: binary input files stored once by content hash

Revision ID: 0006_input_blobs
Revises: 0005_cancel_pending_index
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_input_blobs"
down_revision: str | None = "0005_cancel_pending_index"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "input_blobs",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("uploader_id", sa.BigInteger(), nullable=True),
        sa.CheckConstraint("size >= 0", name=op.f("ck_input_blobs_size_not_negative")),
        sa.CheckConstraint("sha256 ~ '^[0-9a-f]{64}$'", name=op.f("ck_input_blobs_sha256_hex")),
        sa.ForeignKeyConstraint(
            ["uploader_id"],
            ["users.id"],
            name=op.f("fk_input_blobs_uploader_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("sha256", name=op.f("pk_input_blobs")),
    )
    # Uncompressed, out of line: substring() then reads only the chunk asked for, so the
    # worker and the agent route stream a large blob without loading it whole. Files like
    # .TSHS barely compress anyway.
    op.execute("ALTER TABLE input_blobs ALTER COLUMN content SET STORAGE EXTERNAL")
    op.create_table(
        "calculation_inputs",
        sa.Column("calculation_id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["calculation_id"],
            ["calculations.id"],
            name=op.f("fk_calculation_inputs_calculation_id_calculations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["sha256"],
            ["input_blobs.sha256"],
            name=op.f("fk_calculation_inputs_sha256_input_blobs"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("calculation_id", "name", name=op.f("pk_calculation_inputs")),
    )
    op.create_index(
        op.f("ix_calculation_inputs_sha256"), "calculation_inputs", ["sha256"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_calculation_inputs_sha256"), table_name="calculation_inputs")
    op.drop_table("calculation_inputs")
    op.drop_table("input_blobs")
