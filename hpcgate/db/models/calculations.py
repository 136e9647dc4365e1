"""Molecules, calculations, and the steps (one scheduler submission each) they plan into."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from hpcgate.db.base import Base, TimestampMixin
from hpcgate.domain.states import CalculationState, StepState


class Molecule(TimestampMixin, Base):
    __tablename__ = "molecules"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True, nullable=False)
    formula: Mapped[str] = mapped_column(String(200), default="", nullable=False)
    # {"format": "xyz"|"fdf", "text": "...", "atoms": [{"symbol":..,"xyz":[..]}], "lattice": ...}
    geometry: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, nullable=False)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class Calculation(TimestampMixin, Base):
    __tablename__ = "calculations"
    __table_args__ = (
        Index("ix_calculations_pull", "cluster_id", "processed", "approved", "priority"),
        Index("ix_calculations_owner_created", "owner_id", "created_at"),
        Index("ix_calculations_state_created", "state", "created_at"),
        Index("ix_calculations_created_id", "created_at", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    description: Mapped[str] = mapped_column(Text, default="", nullable=False)
    owner_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="RESTRICT"), nullable=False
    )
    molecule_id: Mapped[int | None] = mapped_column(
        ForeignKey("molecules.id", ondelete="SET NULL"), index=True
    )
    cluster_id: Mapped[int] = mapped_column(
        ForeignKey("clusters.id", ondelete="RESTRICT"), nullable=False
    )
    logical_queue: Mapped[str] = mapped_column(String(64), nullable=False)
    code: Mapped[str] = mapped_column(String(32), default="generic", nullable=False)
    # The whole user request: kind (single/chain/sweep), variants, inputs, resources.
    configuration: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, nullable=False)
    analyses: Mapped[list[str]] = mapped_column(JSONB, default=list, nullable=False)
    state: Mapped[CalculationState] = mapped_column(
        Enum(
            CalculationState,
            name="calculation_state",
            values_callable=lambda x: [m.value for m in x],
        ),
        default=CalculationState.READY,
        nullable=False,
    )
    state_reason: Mapped[str | None] = mapped_column(Text)
    approved: Mapped[bool] = mapped_column(Boolean, default=True, nullable=False)
    approved_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    priority: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    # True once the dispatcher (worker or agent) has taken the calculation.
    processed: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    claimed_by: Mapped[str | None] = mapped_column(String(200))
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # When it became dispatchable (created approved, or approved): the dispatch lag's start.
    ready_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    submitted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    steps: Mapped[list[Step]] = relationship(
        back_populates="calculation", cascade="all, delete-orphan", order_by="Step.index"
    )


class Step(TimestampMixin, Base):
    """One scheduler submission: a single job, one link of a chain, or a whole array."""

    __tablename__ = "steps"
    __table_args__ = (
        UniqueConstraint("calculation_id", "index"),
        CheckConstraint("array_size IS NULL OR array_size > 0", name="array_size_positive"),
        Index("ix_steps_cluster_state", "cluster_id", "state"),
        # Every agent poll asks for its cluster's pending cancellations: a partial index
        # stays as small as that set, however many steps a cluster has run.
        Index("ix_steps_cancel_pending", "cluster_id", postgresql_where=text("cancel_pending")),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    calculation_id: Mapped[int] = mapped_column(
        ForeignKey("calculations.id", ondelete="CASCADE"), nullable=False
    )
    cluster_id: Mapped[int] = mapped_column(
        ForeignKey("clusters.id", ondelete="RESTRICT"), nullable=False
    )
    index: Mapped[int] = mapped_column(Integer, nullable=False)
    label: Mapped[str] = mapped_column(String(200), default="", nullable=False)
    template: Mapped[str] = mapped_column(String(200), nullable=False)
    spec: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, nullable=False)
    state: Mapped[StepState] = mapped_column(
        Enum(StepState, name="step_state", values_callable=lambda x: [m.value for m in x]),
        default=StepState.PLANNED,
        nullable=False,
    )
    state_reason: Mapped[str | None] = mapped_column(Text)
    job_name: Mapped[str] = mapped_column(String(128), nullable=False)
    scheduler_job_id: Mapped[str | None] = mapped_column(String(64))
    native_state: Mapped[str | None] = mapped_column(String(64))
    attempt: Mapped[int] = mapped_column(Integer, default=1, nullable=False)
    array_size: Mapped[int | None] = mapped_column(Integer)
    workdir: Mapped[str | None] = mapped_column(String(1024))
    exit_code: Mapped[int | None] = mapped_column(Integer)
    unknown_ticks: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    # The job must be cancelled on the scheduler (user cancel, or a parent failed); cleared
    # by the dispatcher once scancel/qdel succeeded. Durable, so an agent restart still does it.
    cancel_pending: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default="false", nullable=False
    )
    submitted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cleaned_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    calculation: Mapped[Calculation] = relationship(back_populates="steps")
    tasks: Mapped[list[ArrayTask]] = relationship(
        back_populates="step", cascade="all, delete-orphan", order_by="ArrayTask.task_index"
    )


class StepEdge(Base):
    """``child`` may start only after ``parent`` succeeded (``afterok``)."""

    __tablename__ = "step_edges"
    __table_args__ = (CheckConstraint("parent_id <> child_id", name="no_self_edge"),)

    parent_id: Mapped[int] = mapped_column(
        ForeignKey("steps.id", ondelete="CASCADE"), primary_key=True
    )
    child_id: Mapped[int] = mapped_column(
        ForeignKey("steps.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    kind: Mapped[str] = mapped_column(String(16), default="afterok", nullable=False)
    # Files the child inherits from the parent's directory (glob patterns).
    inherit: Mapped[list[str]] = mapped_column(JSONB, default=list, nullable=False)


class ArrayTask(Base):
    __tablename__ = "array_tasks"
    __table_args__ = (
        UniqueConstraint("step_id", "task_index"),
        # Every harvest and agent report asks for the tasks to cancel: as small as that set.
        Index("ix_array_tasks_cancel_pending", "step_id", postgresql_where=text("cancel_pending")),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    step_id: Mapped[int] = mapped_column(ForeignKey("steps.id", ondelete="CASCADE"), nullable=False)
    task_index: Mapped[int] = mapped_column(Integer, nullable=False)
    label: Mapped[str] = mapped_column(String(200), default="", nullable=False)
    variant: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, nullable=False)
    state: Mapped[StepState] = mapped_column(
        Enum(
            StepState,
            name="step_state",
            values_callable=lambda x: [m.value for m in x],
            create_type=False,
        ),
        default=StepState.PLANNED,
        nullable=False,
    )
    native_state: Mapped[str | None] = mapped_column(String(64))
    exit_code: Mapped[int | None] = mapped_column(Integer)
    state_reason: Mapped[str | None] = mapped_column(Text)
    # The recovery ladder per task (0016_task_attempts): the task's current attempt, and
    # the verdict it ended with (kept until the array ends, when retries are decided).
    attempt: Mapped[int] = mapped_column(Integer, default=1, server_default="1", nullable=False)
    verdict: Mapped[str | None] = mapped_column(String(64))
    # A stalled task under ``stall.action: cancel_retry`` (0017_task_cancel): the
    # cancellation still to send, and the mark that makes its end ``incomplete``.
    cancel_pending: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default="false", nullable=False
    )
    stall_cancelled: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default="false", nullable=False
    )

    step: Mapped[Step] = relationship(back_populates="tasks")
