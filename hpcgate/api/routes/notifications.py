"""The mail outbox, for admins: what was sent, what waits and why, retry now, send a test.

Mails are queued by ``hpcgate/services/notify.py`` and delivered by the worker's
``send_mail`` tick (``hpcgate/services/mail.py``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from hpcgate.api.deps import MayManageNotifications, SessionDep, SettingsDep
from hpcgate.api.schemas import SafeStr
from hpcgate.db.models import NotificationOutbox
from hpcgate.services import outbox
from hpcgate.services.logs import parse_cursor
from hpcgate.services.notify import queue_test_mail

router = APIRouter(prefix="/notifications", tags=["notifications"])

OutboxId = Annotated[int, Path(ge=1, le=2**63 - 1)]


class OutboxOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    created_at: datetime
    recipient: str
    user_id: int | None
    calculation_id: int | None
    event: str
    level: str
    subject: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    sent_at: datetime | None


class OutboxPage(BaseModel):
    items: list[OutboxOut]
    next_cursor: str | None


class TestMail(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message: Annotated[SafeStr, Field(max_length=2000)] = ""


@router.get("", response_model=OutboxPage)
def list_outbox(
    _: MayManageNotifications,
    session: SessionDep,
    status: Annotated[
        Literal["pending", "sent", "failing"] | None,
        Query(description="pending: not sent yet; failing: not sent and tried at least once"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(max_length=20)] = None,
) -> dict[str, object]:
    """Outbox rows, newest first (admin)."""
    rows, next_cursor = outbox.page(session, status, limit, parse_cursor(cursor))
    return {"items": rows, "next_cursor": next_cursor}


@router.post("/{outbox_id}/retry", response_model=OutboxOut)
def retry_now(
    outbox_id: OutboxId, _: MayManageNotifications, session: SessionDep
) -> NotificationOutbox:
    """Make an unsent mail due now (the next ``send_mail`` tick tries it) (admin)."""
    return outbox.make_due(session, outbox_id)


@router.post("/test", response_model=OutboxOut, status_code=202)
def send_test_mail(
    admin: MayManageNotifications,
    session: SessionDep,
    settings: SettingsDep,
    body: TestMail | None = None,
) -> NotificationOutbox:
    """Queue a test mail to yourself, to check the SMTP settings (admin)."""
    row = queue_test_mail(session, admin, (body or TestMail()).message, settings=settings)
    session.commit()
    return row
