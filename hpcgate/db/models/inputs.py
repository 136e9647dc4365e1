"""Binary input files, stored once by content hash and referenced by the calculations using them.

Why not in the calculation's JSON: a ``.TSHS`` is tens of megabytes of bytes that are not
text, and a sweep, chain or ladder that uses the same electrode would otherwise copy it once
per calculation row and per step. ``input_blobs`` holds the content (``bytea``, stored
uncompressed out of line so readers fetch it in chunks with ``substring``);
``calculation_inputs`` links a calculation's file names to the blobs.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    LargeBinary,
    String,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from hpcgate.db.base import Base


class InputBlob(Base):
    __tablename__ = "input_blobs"
    __table_args__ = (
        CheckConstraint("size >= 0", name="size_not_negative"),
        CheckConstraint("sha256 ~ '^[0-9a-f]{64}$'", name="sha256_hex"),
    )

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger, nullable=False)
    # Deferred: listing or linking blobs never pulls megabytes; readers use substring().
    content: Mapped[bytes] = mapped_column(LargeBinary, nullable=False, deferred=True)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    uploader_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )


class CalculationInput(Base):
    """One binary input file of a calculation: its file name and the blob holding its bytes."""

    __tablename__ = "calculation_inputs"

    calculation_id: Mapped[int] = mapped_column(
        ForeignKey("calculations.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    sha256: Mapped[str] = mapped_column(
        ForeignKey("input_blobs.sha256", ondelete="RESTRICT"), index=True, nullable=False
    )
