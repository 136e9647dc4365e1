"""Small data extracted on the cluster, and the analyses computed from it centrally."""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from hpcgate.db.base import Base, TimestampMixin


class ExtractedResult(TimestampMixin, Base):
    __tablename__ = "extracted_results"
    __table_args__ = (UniqueConstraint("step_id", "task_index", "kind"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    step_id: Mapped[int] = mapped_column(
        ForeignKey("steps.id", ondelete="CASCADE"), index=True, nullable=False
    )
    task_index: Mapped[int] = mapped_column(Integer, default=-1, nullable=False)  # -1: not an array
    kind: Mapped[str] = mapped_column(String(100), nullable=False)  # e.g. "validation", "energy"
    data: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, nullable=False)


class AnalysisResult(TimestampMixin, Base):
    __tablename__ = "analysis_results"
    __table_args__ = (UniqueConstraint("calculation_id", "analysis"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    calculation_id: Mapped[int] = mapped_column(
        ForeignKey("calculations.id", ondelete="CASCADE"), index=True, nullable=False
    )
    analysis: Mapped[str] = mapped_column(String(100), nullable=False)
    status: Mapped[str] = mapped_column(String(32), default="ok", nullable=False)
    message: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, nullable=False)
