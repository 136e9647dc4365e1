"""Users, their refresh-token families, and API keys (for agents and the ML-API)."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    String,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from hpcgate.db.base import Base, TimestampMixin
from hpcgate.domain.access import ApiKeyOwner, NotifyLevel, Role


def _enum(e: type[enum.Enum], name: str) -> Enum:
    return Enum(e, name=name, values_callable=lambda x: [m.value for m in x])


class User(TimestampMixin, Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True, nullable=False)
    full_name: Mapped[str] = mapped_column(String(200), default="", nullable=False)
    password_hash: Mapped[str] = mapped_column(String(255), nullable=False)
    role: Mapped[Role] = mapped_column(_enum(Role, "user_role"), default=Role.USER, nullable=False)
    notify_level: Mapped[NotifyLevel] = mapped_column(
        _enum(NotifyLevel, "notify_level"), default=NotifyLevel.ERROR, nullable=False
    )
    blocked: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    # Access tokens issued (``iat``) before this instant are refused: "revoke all sessions".
    sessions_revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Login lockout (``hpcgate/auth/lockout.py``): failed passwords in a row, and no password
    # is checked before ``locked_until``. On the row, so every API process agrees.
    failed_logins: Mapped[int] = mapped_column(
        Integer, default=0, server_default="0", nullable=False
    )
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The research group or project the user's core-hours count towards (docs/accounting.md).
    project: Mapped[str | None] = mapped_column(String(64))


class RefreshToken(Base):
    """One row per issued refresh token; a family shares ``family_id`` across rotations.

    Reuse of a token that was already rotated revokes the whole family (theft detection).
    Only a hash of the token is stored.
    """

    __tablename__ = "refresh_tokens"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True, nullable=False
    )
    family_id: Mapped[str] = mapped_column(String(64), index=True, nullable=False)
    token_hash: Mapped[str] = mapped_column(String(128), unique=True, nullable=False)
    issued_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    # When the login began (copied on every rotation): the family's absolute lifetime
    # (``auth.refresh_family_max_days``) counts from here.
    family_started_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    rotated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class LoginAttempt(Base):
    """One login attempt per row, keyed by ``email|client-ip``: a sliding-window rate limit
    shared by every API process (see ``hpcgate/auth/rate_limit.py``)."""

    __tablename__ = "login_attempts"
    __table_args__ = (Index("ix_login_attempts_key_at", "key", "at"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    key: Mapped[str] = mapped_column(String(400), nullable=False)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True, nullable=False)


class ApiKey(TimestampMixin, Base):
    """An API key, stored hashed; ``prefix`` lets a key be found without scanning hashes."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    owner_kind: Mapped[ApiKeyOwner] = mapped_column(
        _enum(ApiKeyOwner, "api_key_owner"), nullable=False
    )
    cluster_id: Mapped[int | None] = mapped_column(
        ForeignKey("clusters.id", ondelete="CASCADE"), index=True
    )
    prefix: Mapped[str] = mapped_column(String(16), unique=True, nullable=False)
    key_hash: Mapped[str] = mapped_column(String(255), nullable=False)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
