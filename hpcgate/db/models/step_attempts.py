"""A step's attempts (issue 17): each retry of a step is a new attempt with its own job.

The step row always describes its current attempt (job id, state, workdir); this table
keeps every attempt's own record - the one being run included, from the moment a retry
is scheduled - with the changes the recovery ladder applied to make it. Written in the
transaction that schedules the retry, before anything is submitted.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from hpcgate.db.base import Base, TimestampMixin


class StepAttempt(TimestampMixin, Base):
    __tablename__ = "step_attempts"
    # One row per attempt of a step, or of one task of an array step (task_index set:
    # a sweep's tasks are retried one by one, migration 0016_task_attempts).
    __table_args__ = (
        UniqueConstraint("step_id", "task_index", "attempt", postgresql_nulls_not_distinct=True),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    step_id: Mapped[int] = mapped_column(
        ForeignKey("steps.id", ondelete="CASCADE"), nullable=False, index=True
    )
    task_index: Mapped[int | None] = mapped_column(Integer)
    attempt: Mapped[int] = mapped_column(Integer, nullable=False)
    job_name: Mapped[str] = mapped_column(String(128), nullable=False)
    scheduler_job_id: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(32), nullable=False)
    verdict: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(Text)
    workdir: Mapped[str | None] = mapped_column(String(1024))
    # The rung that made this attempt and what it changed: [{"key", "old", "new"}, ...].
    rung: Mapped[str | None] = mapped_column(String(64))
    changes: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list, nullable=False)
    submitted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
