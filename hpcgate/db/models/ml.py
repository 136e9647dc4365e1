"""ML models (containers run by the ML-API) and predictions stored against calculations.

A prediction keeps the model's answer as it came (``response``) and, per predicted instance,
the numbers of the properties hpcgate knows how to check against DFT (``PredictionValue``,
``hpcgate/domain/dft_properties.py``): what ``GET /ml/models/{id}/accuracy`` pairs with the
calculation's extracted results.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from hpcgate.db.base import Base, TimestampMixin


class MlModel(TimestampMixin, Base):
    __tablename__ = "ml_models"
    __table_args__ = (UniqueConstraint("name", "version"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    version: Mapped[str] = mapped_column(String(64), nullable=False)
    image: Mapped[str] = mapped_column(String(500), nullable=False)
    description: Mapped[str] = mapped_column(Text, default="", nullable=False)
    resources: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, nullable=False)
    environment: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, nullable=False)
    state: Mapped[str] = mapped_column(String(32), default="registered", nullable=False)
    health: Mapped[str] = mapped_column(String(32), default="unknown", nullable=False)
    restarts: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_reported_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Prediction(TimestampMixin, Base):
    __tablename__ = "predictions"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    model_id: Mapped[int] = mapped_column(
        ForeignKey("ml_models.id", ondelete="CASCADE"), index=True, nullable=False
    )
    calculation_id: Mapped[int | None] = mapped_column(
        ForeignKey("calculations.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    request: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, nullable=False)
    response: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, nullable=False)


class PredictionValue(Base):
    """One predicted number of one instance of a prediction, for one known property."""

    __tablename__ = "prediction_values"
    __table_args__ = (UniqueConstraint("prediction_id", "property", "instance_index"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    prediction_id: Mapped[int] = mapped_column(
        ForeignKey("predictions.id", ondelete="CASCADE"), index=True, nullable=False
    )
    property: Mapped[str] = mapped_column(String(64), index=True, nullable=False)
    # Position of the instance in the answer, and how many instances it had: together they
    # say which step the value is about (one per step when the counts match, else the last).
    instance_index: Mapped[int] = mapped_column(Integer, nullable=False)
    instances: Mapped[int] = mapped_column(Integer, nullable=False)
    value: Mapped[float] = mapped_column(Float, nullable=False)
