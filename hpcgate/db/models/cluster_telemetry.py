"""Cluster-wide telemetry (issue 18): every user's queue per partition, and node states.

``partition_samples`` is a time series (one row per partition and heartbeat, kept for
``telemetry.raw_days``); ``cluster_nodes`` holds only each node's latest state, upserted by
every heartbeat (a node missing from a newer heartbeat is removed).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, ForeignKey, Index, Integer, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from hpcgate.db.base import Base


class PartitionSample(Base):
    """Pending and running jobs of *all* users in one partition (queue) at ``ts``."""

    __tablename__ = "partition_samples"
    __table_args__ = (Index("ix_partition_samples_cluster_ts", "cluster_id", "ts"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    cluster_id: Mapped[int] = mapped_column(
        ForeignKey("clusters.id", ondelete="CASCADE"), nullable=False
    )
    partition: Mapped[str] = mapped_column(String(128), nullable=False)
    pending: Mapped[int] = mapped_column(Integer, nullable=False)
    running: Mapped[int] = mapped_column(Integer, nullable=False)


class ClusterNode(Base):
    """A node's latest state as the scheduler reports it (``idle``, ``mixed``, ``drained``…)."""

    __tablename__ = "cluster_nodes"

    cluster_id: Mapped[int] = mapped_column(
        ForeignKey("clusters.id", ondelete="CASCADE"), primary_key=True
    )
    node: Mapped[str] = mapped_column(String(200), primary_key=True)
    state: Mapped[str] = mapped_column(String(64), nullable=False)
    cpus_total: Mapped[int] = mapped_column(Integer, nullable=False)
    cpus_allocated: Mapped[int] = mapped_column(Integer, nullable=False)
    memory_total_mb: Mapped[int] = mapped_column(BigInteger, nullable=False)
    partitions: Mapped[list[Any]] = mapped_column(JSONB, default=list, nullable=False)
    seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
