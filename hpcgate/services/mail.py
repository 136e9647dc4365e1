"""Deliver the outbox: ``send_due_mail`` is a worker tick (``services/ticks.py``).

Each tick takes due rows (``sent_at`` null, ``next_attempt_at <= now``) one at a time with
``SELECT ... FOR UPDATE SKIP LOCKED``, so several workers never send the same row, sends it
over SMTP (``settings.smtp``, the ``emails`` package, one connection per tick) and marks it
sent in the same transaction. A failure increments ``attempts``, records ``last_error`` and
pushes ``next_attempt_at`` back exponentially (30 s, 1 min, 2 min ... capped at 10 min), and
ends the tick: the server is probably down, later ticks retry. Rows are never deleted or
given up on, so an SMTP outage delays mail but never loses it.

Delivery is at-least-once: a crash between the SMTP ``250`` and the commit re-sends that one
mail on the next tick.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from emails.backend.smtp.backend import SMTPBackend
from emails.message import html as html_message
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from hpcgate.db.models import NotificationOutbox
from hpcgate.db.session import session_scope
from hpcgate.logging import redact
from hpcgate.settings import Settings

log = logging.getLogger(__name__)

BACKOFF_BASE = timedelta(seconds=30)
BACKOFF_CAP = timedelta(minutes=10)
SMTP_TIMEOUT_S = 10.0
DEFAULT_INTERVAL_S = 15.0


class MailDeliveryError(Exception):
    pass


def backoff(attempts: int) -> timedelta:
    """Delay before the next try after ``attempts`` failures (exponential, capped)."""
    if attempts <= 0:
        return timedelta(0)
    delay: timedelta = BACKOFF_BASE * (2 ** min(attempts - 1, 20))
    return min(BACKOFF_CAP, delay)


def smtp_backend(settings: Settings) -> SMTPBackend:
    smtp = settings.smtp
    options: dict[str, Any] = {
        "host": smtp.host,
        "port": smtp.port,
        "timeout": SMTP_TIMEOUT_S,
        "fail_silently": True,
        # Avoid a DNS lookup of our own FQDN (emails' default) on every connection.
        "local_hostname": socket.gethostname() or "localhost",
    }
    if smtp.use_tls:
        # Port 465 speaks TLS from the start (SMTPS); anything else upgrades with STARTTLS.
        options["ssl" if smtp.port == 465 else "tls"] = True
    if smtp.username:
        options["user"] = smtp.username
        options["password"] = smtp.password or ""
    return SMTPBackend(**options)


def deliver(row: NotificationOutbox, settings: Settings, backend: SMTPBackend) -> None:
    """Send one outbox row; raises ``MailDeliveryError`` unless the server said 250."""
    message = html_message(
        html=row.body_html,
        text=row.body_text,
        subject=row.subject,
        mail_from=("hpcgate", settings.smtp.mail_from),
        headers={
            "X-Hpcgate-Event": row.event,
            "X-Hpcgate-Outbox-Id": str(row.id),
            **({"X-Hpcgate-Calculation": str(row.calculation_id)} if row.calculation_id else {}),
        },
    )
    response = message.send(to=row.recipient, smtp=backend)
    if response is None or not response.success:
        error = getattr(response, "error", None)
        status = getattr(response, "status_code", None)
        text = getattr(response, "status_text", None)
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        detail = f"{error!r}" if error is not None else f"SMTP {status} {text or ''}".strip()
        raise MailDeliveryError(detail)


Sender = Callable[[NotificationOutbox, Settings, SMTPBackend], None]


def send_due_mail(
    factory: sessionmaker[Session],
    settings: Settings,
    *,
    now: datetime | None = None,
    batch: int = 100,
    sender: Sender = deliver,
) -> int:
    """Send up to ``batch`` due mails; returns how many were sent. A worker tick."""
    if not settings.smtp.host:
        log.debug("mail: no SMTP host configured; the outbox waits")
        return 0
    now = now or datetime.now(UTC)
    sent = 0
    with smtp_backend(settings) as backend:
        for _ in range(batch):
            with session_scope(factory) as session:
                row = session.scalar(
                    select(NotificationOutbox)
                    .where(
                        NotificationOutbox.sent_at.is_(None),
                        NotificationOutbox.next_attempt_at <= now,
                    )
                    .order_by(NotificationOutbox.next_attempt_at, NotificationOutbox.id)
                    .limit(1)
                    .with_for_update(skip_locked=True)
                )
                if row is None:
                    return sent
                row.attempts += 1
                try:
                    sender(row, settings, backend)
                except Exception as exc:
                    row.last_error = redact(str(exc))[:2000] or type(exc).__name__
                    row.next_attempt_at = now + backoff(row.attempts)
                    log.warning(
                        "mail: delivery of outbox row %s to %s failed (attempt %s, next at %s): %s",
                        row.id,
                        row.recipient,
                        row.attempts,
                        row.next_attempt_at.isoformat(),
                        row.last_error,
                    )
                    backend.close()
                    return sent
                row.sent_at = datetime.now(UTC)
                row.last_error = None
                sent += 1
    return sent
