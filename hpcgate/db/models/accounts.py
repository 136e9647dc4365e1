"""Per-user cluster accounts: the login name a user's jobs run as on one cluster.

Why: site accounting and fair-share see the real user, and users' directories are
separated by the OS. An unmapped user's jobs run as the cluster's job account.
``ssh_key_encrypted`` (SSH clusters only) is the user's own private key, Fernet-encrypted
under ``settings.cluster_accounts.encryption_key``; it never leaves the service.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    LargeBinary,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from hpcgate.db.base import Base, TimestampMixin

LOGIN_NAME_PATTERN = r"^[a-z_][a-z0-9_.-]{0,31}$"


class ClusterAccount(TimestampMixin, Base):
    __tablename__ = "cluster_accounts"
    __table_args__ = (
        UniqueConstraint("cluster_id", "user_id", name="uq_cluster_accounts_cluster_id_user_id"),
        CheckConstraint(f"login_name ~ '{LOGIN_NAME_PATTERN}'", name="login_name_charset"),
        CheckConstraint("login_name <> 'root'", name="login_name_not_root"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    cluster_id: Mapped[int] = mapped_column(
        ForeignKey("clusters.id", ondelete="CASCADE"), nullable=False
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    login_name: Mapped[str] = mapped_column(String(32), nullable=False)
    ssh_key_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)
