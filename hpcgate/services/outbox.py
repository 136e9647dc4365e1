"""The notification outbox as admins see it: pages of rows, and "try this one now"."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from hpcgate.db.models import NotificationOutbox
from hpcgate.errors import Conflict, NotFound

OutboxStatus = Literal["pending", "sent", "failing"]


def page(
    session: Session, status: OutboxStatus | None, limit: int, before: int | None
) -> tuple[list[NotificationOutbox], str | None]:
    """Rows newest first (``failing``: not sent and tried at least once), and the cursor of
    the next page."""
    stmt = select(NotificationOutbox)
    if status == "sent":
        stmt = stmt.where(NotificationOutbox.sent_at.is_not(None))
    elif status == "pending":
        stmt = stmt.where(NotificationOutbox.sent_at.is_(None))
    elif status == "failing":
        stmt = stmt.where(NotificationOutbox.sent_at.is_(None), NotificationOutbox.attempts > 0)
    if before is not None:
        stmt = stmt.where(NotificationOutbox.id < before)
    rows = list(session.scalars(stmt.order_by(NotificationOutbox.id.desc()).limit(limit + 1)))
    next_cursor = str(rows[limit - 1].id) if len(rows) > limit else None
    return rows[:limit], next_cursor


def make_due(session: Session, outbox_id: int) -> NotificationOutbox:
    """An unsent mail becomes due now: the next ``send_mail`` tick tries it."""
    row = session.get(NotificationOutbox, outbox_id)
    if row is None:
        raise NotFound(f"outbox row {outbox_id} not found")
    if row.sent_at is not None:
        raise Conflict(f"outbox row {outbox_id} was already sent")
    row.next_attempt_at = datetime.now(UTC)
    session.commit()
    return row
