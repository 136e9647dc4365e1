"""Output requests: the API asks an agent for a step's files (it has no inbound port).

A row is the durable half of the fetch relay: the API inserts it and wakes the cluster's
long-poll (``NOTIFY``), the agent claims it with its next pull, lists or reads on the login
node and answers (``result`` and, for a read, ``content`` - one size-capped chunk); the
API request waiting for it reads the answer and deletes the row. Rows nobody fetched are
purged after a few minutes, so the table stays as small as the requests in flight.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from hpcgate.db.base import Base


class OutputRequest(Base):
    __tablename__ = "output_requests"
    __table_args__ = (
        CheckConstraint("kind IN ('list', 'read')", name="kind_known"),
        CheckConstraint("state IN ('pending', 'claimed', 'done')", name="state_known"),
        CheckConstraint("byte_offset >= 0 AND length >= 0", name="range_not_negative"),
        Index("ix_output_requests_cluster_state", "cluster_id", "state"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    cluster_id: Mapped[int] = mapped_column(
        ForeignKey("clusters.id", ondelete="CASCADE"), nullable=False
    )
    step_id: Mapped[int] = mapped_column(
        ForeignKey("steps.id", ondelete="CASCADE"), nullable=False
    )
    kind: Mapped[str] = mapped_column(String(8), nullable=False)
    workdir: Mapped[str] = mapped_column(String(1024), nullable=False)
    path: Mapped[str] = mapped_column(String(1024), default="", nullable=False)
    byte_offset: Mapped[int] = mapped_column(BigInteger, default=0, nullable=False)
    length: Mapped[int] = mapped_column(BigInteger, default=0, nullable=False)
    state: Mapped[str] = mapped_column(String(8), default="pending", nullable=False)
    # The answer: {"entries": [...], "truncated": b} | {"size", "mtime"} | {"error", "code"}.
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    content: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
