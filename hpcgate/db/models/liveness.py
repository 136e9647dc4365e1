"""Whether a running step still makes progress (issue 17, stall detection).

One row per step (``step_liveness``), or per array task (``task_liveness``: a sweep's
tasks are watched one by one), that has been seen running, written by the harvest
(``services/stall.py``): the sizes of its ``*.out`` files and the count of progress
markers (SCF iterations, geometry steps) read so far, when either last moved, the CPU
time of the last live sample that showed activity, and whether it is stalled now.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Float, ForeignKey, Integer, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from hpcgate.db.base import Base


class _Liveness:
    # {file name: bytes already read}: the next probe counts markers past these offsets.
    out_sizes: Mapped[dict[str, int]] = mapped_column(JSONB, default=dict, nullable=False)
    markers: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    # The output grew or a marker was printed (first seen running: the start of the window).
    progress_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    # The CPU time and time of the last sample from which the job counted as busy.
    cpu_time_s: Mapped[float | None] = mapped_column(Float)
    cpu_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    stalled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    stall_reason: Mapped[str | None] = mapped_column(Text)


class StepLiveness(_Liveness, Base):
    __tablename__ = "step_liveness"

    step_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("steps.id", ondelete="CASCADE"), primary_key=True
    )


class TaskLiveness(_Liveness, Base):
    """One running array task (migration ``0016_task_attempts``)."""

    __tablename__ = "task_liveness"

    task_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("array_tasks.id", ondelete="CASCADE"), primary_key=True
    )
