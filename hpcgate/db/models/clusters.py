"""Clusters and their queue mappings (logical queue -> partition/QoS/account/limits)."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Enum,
    ForeignKey,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from hpcgate.db.base import Base, TimestampMixin


class AccessMode(enum.StrEnum):
    AGENT = "agent"  # an agent on the login node pulls work
    SSH = "ssh"  # the central worker drives the cluster over SSH
    LOCAL = "local"  # this machine (the embedded demo, or a service on the login node)


class Cluster(TimestampMixin, Base):
    __tablename__ = "clusters"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True, nullable=False)
    description: Mapped[str] = mapped_column(String(2000), default="", nullable=False)
    scheduler: Mapped[str] = mapped_column(String(32), default="slurm", nullable=False)
    access_mode: Mapped[AccessMode] = mapped_column(
        Enum(AccessMode, name="access_mode", values_callable=lambda x: [m.value for m in x]),
        nullable=False,
    )
    host: Mapped[str | None] = mapped_column(String(255))
    port: Mapped[int] = mapped_column(Integer, default=22, nullable=False)
    login_user: Mapped[str | None] = mapped_column(String(64))
    scratch_root: Mapped[str] = mapped_column(String(1024), nullable=False)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, nullable=False)
    require_approval: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    last_heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    online: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    # Adapter/runner options: key file, known_hosts, flavor, template overrides, launcher...
    options: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, nullable=False)
    # Cleanup policy: patterns to delete, days to keep, dry-run.
    cleanup_policy: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, nullable=False)

    queues: Mapped[list[QueueMapping]] = relationship(
        back_populates="cluster", cascade="all, delete-orphan", lazy="select"
    )


class QueueMapping(Base):
    __tablename__ = "queue_mappings"
    __table_args__ = (UniqueConstraint("cluster_id", "logical_queue"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    cluster_id: Mapped[int] = mapped_column(
        ForeignKey("clusters.id", ondelete="CASCADE"), nullable=False
    )
    logical_queue: Mapped[str] = mapped_column(String(64), nullable=False)
    partition: Mapped[str] = mapped_column(String(64), nullable=False)
    qos: Mapped[str | None] = mapped_column(String(64))
    account: Mapped[str | None] = mapped_column(String(64))
    max_walltime_s: Mapped[int | None] = mapped_column(Integer)
    max_nodes: Mapped[int | None] = mapped_column(Integer)
    max_cpus: Mapped[int | None] = mapped_column(Integer)

    cluster: Mapped[Cluster] = relationship(back_populates="queues")
