"""Deliver the outbox: ``send_due_mail`` is a worker tick (``services/ticks.py``).

Each tick takes due rows (``sent_at`` null, ``next_attempt_at <= now``) one at a time with
``SELECT ... FOR UPDATE SKIP LOCKED``, so several workers never send the same row, sends it
through the configured relay (``settings.smtp``: plain, STARTTLS or SMTPS, AUTH, verified
certificates; one connection per tick) and marks it sent in the same transaction. A failure
(refused, down, untrusted certificate, AUTH refused) increments ``attempts``, records the
relay's own words in ``last_error`` and pushes ``next_attempt_at`` back exponentially
(30 s, 1 min, 2 min ... capped at 10 min), and ends the tick: the relay is probably down,
later ticks retry. Rows are never deleted or given up on, so an outage delays mail but never
loses it.

Delivery is at-least-once: a crash between the SMTP ``250`` and the commit re-sends that one
mail on the next tick.
"""

from __future__ import annotations

import logging
import smtplib
import socket
import ssl
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from hpcgate.db.models import NotificationOutbox
from hpcgate.db.session import session_scope
from hpcgate.logging import redact
from hpcgate.settings import Settings, SmtpSettings

log = logging.getLogger(__name__)

BACKOFF_BASE = timedelta(seconds=30)
BACKOFF_CAP = timedelta(minutes=10)
DEFAULT_INTERVAL_S = 15.0


class MailDeliveryError(Exception):
    pass


def backoff(attempts: int) -> timedelta:
    """Delay before the next try after ``attempts`` failures (exponential, capped)."""
    if attempts <= 0:
        return timedelta(0)
    delay: timedelta = BACKOFF_BASE * (2 ** min(attempts - 1, 20))
    return min(BACKOFF_CAP, delay)


def tls_context(smtp: SmtpSettings) -> ssl.SSLContext:
    """Certificates are verified, host name included (``smtplib`` alone would not): the
    relay gets our SMTP password, so it must be the relay we configured."""
    return ssl.create_default_context(cafile=str(smtp.ca_file) if smtp.ca_file else None)


class SmtpRelay:
    """One SMTP connection per tick, opened at the first mail: STARTTLS (587-style) or
    implicit TLS (SMTPS, 465-style), then AUTH when a user is configured. With STARTTLS
    configured, a relay that does not offer it is refused before any credential is sent."""

    def __init__(self, smtp: SmtpSettings) -> None:
        self.smtp = smtp
        self._conn: smtplib.SMTP | None = None

    def _open(self) -> smtplib.SMTP:
        smtp = self.smtp
        # Avoid a DNS lookup of our own FQDN (smtplib's default) on every connection.
        local = socket.gethostname() or "localhost"
        host = smtp.host or "localhost"
        conn: smtplib.SMTP
        if smtp.transport == "tls":
            conn = smtplib.SMTP_SSL(
                host, smtp.port, local_hostname=local, timeout=smtp.timeout_s,
                context=tls_context(smtp),
            )  # fmt: skip
        else:
            conn = smtplib.SMTP(host, smtp.port, local_hostname=local, timeout=smtp.timeout_s)
        try:
            conn.ehlo()
            if smtp.transport == "starttls":
                if not conn.has_extn("starttls"):
                    raise MailDeliveryError(
                        f"the relay {host}:{smtp.port} does not offer STARTTLS; "
                        "nothing was sent (smtp.security is starttls)"
                    )
                conn.starttls(context=tls_context(smtp))
                conn.ehlo()
            if smtp.username:
                conn.login(smtp.username, smtp.password or "")
        except BaseException:
            conn.close()
            raise
        return conn

    def send(self, message: EmailMessage) -> None:
        if self._conn is None:
            self._conn = self._open()
        refused = self._conn.send_message(message)
        if refused:
            raise MailDeliveryError(f"recipients refused: {refused}")

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.quit()
            except (smtplib.SMTPException, OSError):
                conn.close()

    def __enter__(self) -> SmtpRelay:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def message_for(row: NotificationOutbox, settings: Settings) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = row.subject
    msg["From"] = Address("hpcgate", addr_spec=settings.smtp.mail_from)
    msg["To"] = row.recipient
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain=settings.smtp.mail_from.rpartition("@")[2] or None)
    msg["X-Hpcgate-Event"] = row.event
    msg["X-Hpcgate-Outbox-Id"] = str(row.id)
    if row.calculation_id:
        msg["X-Hpcgate-Calculation"] = str(row.calculation_id)
    msg.set_content(row.body_text)
    if row.body_html:
        msg.add_alternative(row.body_html, subtype="html")
    return msg


def describe(exc: BaseException) -> str:
    """One line for ``last_error``: the relay's own code and words when it answered."""
    if isinstance(exc, smtplib.SMTPResponseException):
        text = exc.smtp_error
        words = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
        kind = "AUTH refused" if isinstance(exc, smtplib.SMTPAuthenticationError) else "SMTP"
        return f"{kind}: {exc.smtp_code} {words}".strip()
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS: the relay's certificate is not trusted ({exc.verify_message})"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused: the relay is down or not listening"
    return f"{type(exc).__name__}: {exc}"


def deliver(row: NotificationOutbox, settings: Settings, relay: SmtpRelay) -> None:
    """Send one outbox row; raises unless the relay accepted it."""
    relay.send(message_for(row, settings))


Sender = Callable[[NotificationOutbox, Settings, SmtpRelay], None]


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
    with SmtpRelay(settings.smtp) as relay:
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
                    sender(row, settings, relay)
                except Exception as exc:
                    row.last_error = redact(describe(exc))[:2000] or type(exc).__name__
                    row.next_attempt_at = now + backoff(row.attempts)
                    log.warning(
                        "mail: delivery of outbox row %s to %s failed (attempt %s, next at %s): %s",
                        row.id,
                        row.recipient,
                        row.attempts,
                        row.next_attempt_at.isoformat(),
                        row.last_error,
                    )
                    relay.close()
                    return sent
                row.sent_at = datetime.now(UTC)
                row.last_error = None
                sent += 1
    return sent
