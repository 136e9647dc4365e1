"""prediction values: the predicted number per instance and property, for accuracy vs DFT

Revision ID: 0011_prediction_values
Revises: 0010_telemetry_rollups
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_prediction_values"
down_revision: str | None = "0010_telemetry_rollups"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Predictions stored before this revision get their values with the same extraction as
# store_prediction (instances = the answer's "predictions" list, or the answer itself;
# JSON numbers only). The properties (property, key in a predicted instance) are those known
# when this revision was written, frozen here: hpcgate/domain/dft_properties.py may grow.
BACKFILL = (
    "INSERT INTO prediction_values (prediction_id, property, instance_index, instances, value) "
    "SELECT p.id, k.property, e.ord - 1, jsonb_array_length(a.arr), "
    "(e.v ->> k.key)::double precision "
    "FROM predictions p "
    "CROSS JOIN LATERAL (SELECT CASE WHEN jsonb_typeof(p.response -> 'predictions') = 'array' "
    "THEN p.response -> 'predictions' ELSE jsonb_build_array(p.response) END AS arr) a "
    "CROSS JOIN LATERAL jsonb_array_elements(a.arr) WITH ORDINALITY AS e(v, ord) "
    "CROSS JOIN (VALUES ('energy_total_ev', 'energy_total_ev'), ('fermi_ev', 'fermi_ev'), "
    "('scf_iterations', 'scf_iterations')) AS k(property, key) "
    "WHERE jsonb_typeof(e.v) = 'object' AND jsonb_typeof(e.v -> k.key) = 'number'"
)


def upgrade() -> None:
    op.create_table(
        "prediction_values",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("prediction_id", sa.BigInteger(), nullable=False),
        sa.Column("property", sa.String(length=64), nullable=False),
        sa.Column("instance_index", sa.Integer(), nullable=False),
        sa.Column("instances", sa.Integer(), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["prediction_id"],
            ["predictions.id"],
            name=op.f("fk_prediction_values_prediction_id_predictions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_prediction_values")),
        sa.UniqueConstraint(
            "prediction_id",
            "property",
            "instance_index",
            name=op.f("uq_prediction_values_prediction_id"),
        ),
    )
    op.create_index(
        op.f("ix_prediction_values_prediction_id"), "prediction_values", ["prediction_id"]
    )
    op.create_index(op.f("ix_prediction_values_property"), "prediction_values", ["property"])
    op.execute(BACKFILL)


def downgrade() -> None:
    op.drop_table("prediction_values")
