"""Time series (cluster heartbeats, per-step resource samples) and service log lines."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from hpcgate.db.base import Base

#: The node/cluster metrics of a heartbeat (columns of ``HeartbeatSample``): what an agent
#: sends, and what the cluster graphs plot.
CLUSTER_METRICS = (
    "cpu_load",
    "cpus_allocated",
    "cpus_total",
    "memory_free_mb",
    "memory_total_mb",
    "queue_depth",
    "running_jobs",
)


class HeartbeatSample(Base):
    """One sample. ``scope`` is ``cluster`` (totals), ``node`` or ``step``.

    Wide rather than key/value so a downsampled graph is one ``date_bin`` GROUP BY
    over an index on (cluster_id, ts) or (step_id, ts).
    """

    __tablename__ = "heartbeat_samples"
    __table_args__ = (
        Index("ix_heartbeat_samples_cluster_ts", "cluster_id", "ts"),
        Index("ix_heartbeat_samples_step_ts", "step_id", "ts"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    cluster_id: Mapped[int] = mapped_column(
        ForeignKey("clusters.id", ondelete="CASCADE"), nullable=False
    )
    step_id: Mapped[int | None] = mapped_column(ForeignKey("steps.id", ondelete="CASCADE"))
    scope: Mapped[str] = mapped_column(String(16), nullable=False)
    node: Mapped[str | None] = mapped_column(String(200))
    cpu_load: Mapped[float | None] = mapped_column(Float)
    cpus_allocated: Mapped[int | None] = mapped_column(Integer)
    cpus_total: Mapped[int | None] = mapped_column(Integer)
    memory_free_mb: Mapped[int | None] = mapped_column(BigInteger)
    memory_total_mb: Mapped[int | None] = mapped_column(BigInteger)
    queue_depth: Mapped[int | None] = mapped_column(Integer)
    running_jobs: Mapped[int | None] = mapped_column(Integer)
    cpu_time_s: Mapped[float | None] = mapped_column(Float)
    max_rss_kb: Mapped[int | None] = mapped_column(BigInteger)
    # Idempotency key from the sender, so a retried batch is never stored twice.
    sample_key: Mapped[str | None] = mapped_column(String(128), unique=True)


class HeartbeatRollup(Base):
    """Samples older than the raw retention, one row per series and bucket
    (``services/telemetry_retention.py``): gauges are the bucket's mean, the cumulative step
    metrics (CPU time, peak memory) its maximum, ``samples`` the raw rows behind it."""

    __tablename__ = "heartbeat_rollups"
    __table_args__ = (
        Index("ix_heartbeat_rollups_cluster_ts", "cluster_id", "bucket_start"),
        Index("ix_heartbeat_rollups_step_ts", "step_id", "bucket_start"),
        # One row per series and bucket, so a late sample merges into its bucket.
        Index(
            "uq_heartbeat_rollups_bucket",
            "scope",
            "cluster_id",
            text("coalesce(step_id, 0)"),
            text("coalesce(node, '')"),
            "bucket_s",
            "bucket_start",
            unique=True,
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    cluster_id: Mapped[int] = mapped_column(
        ForeignKey("clusters.id", ondelete="CASCADE"), nullable=False
    )
    step_id: Mapped[int | None] = mapped_column(ForeignKey("steps.id", ondelete="CASCADE"))
    scope: Mapped[str] = mapped_column(String(16), nullable=False)
    node: Mapped[str | None] = mapped_column(String(200))
    bucket_start: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    bucket_s: Mapped[int] = mapped_column(Integer, nullable=False)
    samples: Mapped[int] = mapped_column(Integer, nullable=False)
    cpu_load: Mapped[float | None] = mapped_column(Float)
    cpus_allocated: Mapped[float | None] = mapped_column(Float)
    cpus_total: Mapped[float | None] = mapped_column(Float)
    memory_free_mb: Mapped[float | None] = mapped_column(Float)
    memory_total_mb: Mapped[float | None] = mapped_column(Float)
    queue_depth: Mapped[float | None] = mapped_column(Float)
    running_jobs: Mapped[float | None] = mapped_column(Float)
    cpu_time_s: Mapped[float | None] = mapped_column(Float)
    max_rss_kb: Mapped[int | None] = mapped_column(BigInteger)


class ServiceLog(Base):
    __tablename__ = "service_logs"
    __table_args__ = (Index("ix_service_logs_ts", "ts"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    ts: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    source: Mapped[str] = mapped_column(
        String(100), nullable=False
    )  # service, worker, agent:<cluster>
    level: Mapped[str] = mapped_column(String(16), nullable=False)
    message: Mapped[str] = mapped_column(Text, nullable=False)
    calculation_id: Mapped[int | None] = mapped_column(
        ForeignKey("calculations.id", ondelete="SET NULL"), index=True
    )
    cluster_id: Mapped[int | None] = mapped_column(ForeignKey("clusters.id", ondelete="SET NULL"))
    context: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, nullable=False)


class WorkerHeartbeat(Base):
    """Liveness of each worker/agent process, shown by ``/health`` and the dashboard."""

    __tablename__ = "worker_heartbeats"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)  # worker | agent
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    info: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, nullable=False)
