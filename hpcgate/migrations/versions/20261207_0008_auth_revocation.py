"""token revocation, refresh family lifetime, login lockout

Revision ID: 0008_auth_revocation
Revises: 0007_cluster_accounts
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_auth_revocation"
down_revision: str | None = "0007_cluster_accounts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    _add_login_lockout()
    _add_refresh_family_start()


def downgrade() -> None:
    _drop_refresh_family_start()
    _drop_login_lockout()


# ------------------------------------------------------------------ login lockout
# (issue 15 item 6) Failed passwords in a row and the instant until which no password is
# checked: on the user row, so every API process sees the same lockout.


def _add_login_lockout() -> None:
    op.add_column(
        "users",
        sa.Column("failed_logins", sa.Integer(), server_default="0", nullable=False),
    )
    op.add_column("users", sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True))


def _drop_login_lockout() -> None:
    op.drop_column("users", "locked_until")
    op.drop_column("users", "failed_logins")


# ------------------------------------------------------- refresh family lifetime
# (issue 15 item 9) When a login began, copied on each rotation, so a refresh family has an
# absolute lifetime (auth.refresh_family_max_days) checked without reading the family.
# Access-token revocation needs no column: users.sessions_revoked_at (0001) is set by
# logout and password changes too.


def _add_refresh_family_start() -> None:
    op.add_column(
        "refresh_tokens",
        sa.Column(
            "family_started_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=True,
        ),
    )
    op.execute(
        "UPDATE refresh_tokens AS r SET family_started_at = f.started "
        "FROM (SELECT family_id, min(issued_at) AS started FROM refresh_tokens "
        "GROUP BY family_id) AS f WHERE r.family_id = f.family_id"
    )
    op.alter_column("refresh_tokens", "family_started_at", nullable=False)


def _drop_refresh_family_start() -> None:
    op.drop_column("refresh_tokens", "family_started_at")
