"""Core-hour accounting: what each settled step cost (from the scheduler's own accounting)
and the per-user, per-cluster monthly quotas (docs/accounting.md)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from hpcgate.db.base import Base, TimestampMixin


class StepUsage(Base):
    """One row per settled step (an array step: its tasks summed), written by the harvest
    that saw it end. ``core_seconds`` is what the allocation cost (sacct ``CPUTimeRAW``:
    elapsed x allocated CPUs; PBS walltime x ncpus), ``cpu_seconds`` what the program used
    (``TotalCPU`` / ``resources_used.cput``). A month's usage counts rows by ``recorded_at``."""

    __tablename__ = "step_usage"
    __table_args__ = (
        # A retried step (issue 17) costs once per attempt.
        UniqueConstraint("step_id", "attempt", name="uq_step_usage_step_id_attempt"),
        Index("ix_step_usage_recorded_at", "recorded_at"),
        Index("ix_step_usage_user_recorded", "user_id", "recorded_at"),
        Index("ix_step_usage_cluster_recorded", "cluster_id", "recorded_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    step_id: Mapped[int] = mapped_column(ForeignKey("steps.id", ondelete="CASCADE"), nullable=False)
    attempt: Mapped[int] = mapped_column(Integer, default=1, nullable=False)
    calculation_id: Mapped[int] = mapped_column(
        ForeignKey("calculations.id", ondelete="CASCADE"), index=True, nullable=False
    )
    cluster_id: Mapped[int] = mapped_column(
        ForeignKey("clusters.id", ondelete="CASCADE"), nullable=False
    )
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    core_seconds: Mapped[float] = mapped_column(Float, nullable=False)
    cpu_seconds: Mapped[float | None] = mapped_column(Float)
    elapsed_s: Mapped[int | None] = mapped_column(Integer)
    alloc_cpus: Mapped[int | None] = mapped_column(Integer)
    max_rss_kb: Mapped[int | None] = mapped_column(BigInteger)
    req_mem_kb: Mapped[int | None] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(32), nullable=False)
    native_state: Mapped[str | None] = mapped_column(String(64))
    recorded_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )


class UsageQuota(TimestampMixin, Base):
    """A user's monthly core-hour quota on one cluster: past ``soft`` a warning (and a
    notification), at ``hard`` new calculations are refused. Either may be unset."""

    __tablename__ = "usage_quotas"
    __table_args__ = (
        UniqueConstraint("cluster_id", "user_id", name="uq_usage_quotas_cluster_id_user_id"),
        CheckConstraint("soft_core_hours IS NULL OR soft_core_hours >= 0", name="soft_positive"),
        CheckConstraint("hard_core_hours IS NULL OR hard_core_hours >= 0", name="hard_positive"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    cluster_id: Mapped[int] = mapped_column(
        ForeignKey("clusters.id", ondelete="CASCADE"), nullable=False
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True, nullable=False
    )
    soft_core_hours: Mapped[float | None] = mapped_column(Float)
    hard_core_hours: Mapped[float | None] = mapped_column(Float)
