"""E-mail notifications, written to the outbox in the caller's transaction (never sent here).

Who gets a calculation event:

- the owner, when their ``notify_level`` admits the event's level (``info``: everything;
  ``error``: errors only);
- every admin, always;
- never a blocked user; one mail per address even if the owner is an admin.

Cluster events (``cluster_offline``, ``agent_too_old``) go to admins only.

The rows are added to ``notification_outbox`` with the caller's session and flushed, not
committed: the mail exists if and only if the state change that caused it is committed (the
outbox pattern). ``hpcgate/services/mail.py`` delivers them later and retries on failure.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
from sqlalchemy import select
from sqlalchemy.orm import Session

from hpcgate.db.models import Calculation, Cluster, NotificationOutbox, User
from hpcgate.domain.access import NotifyLevel, Role
from hpcgate.errors import InvalidInput
from hpcgate.settings import Settings, get_settings

TEMPLATES_DIR = Path(__file__).resolve().parent / "mail_templates"


@dataclass(frozen=True)
class EventKind:
    title: str
    level: NotifyLevel


CALCULATION_EVENTS: dict[str, EventKind] = {
    "submitted": EventKind("submitted to the cluster", NotifyLevel.INFO),
    "finished": EventKind("finished, the report is ready", NotifyLevel.INFO),
    "validation_failed": EventKind("validation failed", NotifyLevel.ERROR),
    "error": EventKind("failed with an error", NotifyLevel.ERROR),
    "lost": EventKind("lost (its jobs vanished from the scheduler)", NotifyLevel.ERROR),
    "cluster_offline": EventKind("its cluster went offline", NotifyLevel.ERROR),
    "stalled": EventKind("has a stalled step (no progress)", NotifyLevel.ERROR),
    "quota_warning": EventKind("created past a soft core-hour quota", NotifyLevel.INFO),
}
CLUSTER_EVENTS: dict[str, EventKind] = {
    "cluster_offline": EventKind("went offline", NotifyLevel.ERROR),
    "agent_too_old": EventKind("has an agent too old for some work", NotifyLevel.ERROR),
}
MAX_MESSAGE = 8000


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        # HTML bodies escaped; plain-text bodies not (they are not markup).
        autoescape=jinja2.select_autoescape(
            enabled_extensions=("html.j2", "html"),
            disabled_extensions=("txt.j2",),
            default=True,
        ),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render(template: str, **context: Any) -> tuple[str, str]:
    """``(text, html)`` bodies from ``<template>.txt.j2`` and ``<template>.html.j2``."""
    env = _environment()
    text = env.get_template(f"{template}.txt.j2").render(**context)
    html = env.get_template(f"{template}.html.j2").render(**context)
    return text, html


def admits(user_level: NotifyLevel | str, event_level: NotifyLevel | str) -> bool:
    """``info`` users get everything, ``error`` users only errors."""
    return NotifyLevel(user_level) is NotifyLevel.INFO or (
        NotifyLevel(event_level) is NotifyLevel.ERROR
    )


def _admins(session: Session) -> list[User]:
    return list(
        session.scalars(
            select(User).where(User.role == Role.ADMIN, User.blocked.is_(False)).order_by(User.id)
        )
    )


@dataclass(frozen=True)
class _Recipient:
    user: User
    why: str


def _dedupe(candidates: Iterable[_Recipient]) -> list[_Recipient]:
    seen: set[str] = set()
    out: list[_Recipient] = []
    for candidate in candidates:
        email = candidate.user.email.strip().lower()
        if candidate.user.blocked or email in seen:
            continue
        seen.add(email)
        out.append(candidate)
    return out


def calculation_recipients(
    session: Session, owner: User | None, level: NotifyLevel
) -> list[_Recipient]:
    candidates: list[_Recipient] = []
    if owner is not None and admits(owner.notify_level, level):
        candidates.append(
            _Recipient(
                owner,
                f"You receive this as the owner of the calculation "
                f"(your notification level: {NotifyLevel(owner.notify_level).value}).",
            )
        )
    candidates.extend(
        _Recipient(a, "You receive this as an hpcgate administrator.") for a in _admins(session)
    )
    return _dedupe(candidates)


def _clean(message: str | None) -> str:
    return str(message or "").replace("\x00", "")[:MAX_MESSAGE]


def _subject(text: str) -> str:
    return " ".join(text.replace("\x00", "").split())[:300]


def _level(event: str, level: NotifyLevel | str | None, table: dict[str, EventKind]) -> EventKind:
    if event not in table:
        raise InvalidInput(f"unknown event {event!r}; one of {', '.join(table)}")
    kind = table[event]
    if level is None:
        return kind
    try:
        return EventKind(kind.title, NotifyLevel(level))
    except ValueError:
        raise InvalidInput(f"unknown level {level!r}; one of info, error") from None


def notify_calculation_event(
    session: Session,
    calculation: Calculation,
    event: str,
    message: str | None = "",
    *,
    level: NotifyLevel | str | None = None,
    settings: Settings | None = None,
) -> list[NotificationOutbox]:
    """Queue the mails for ``event`` on ``calculation`` (flushes; the caller commits).

    ``event``: submitted, finished, validation_failed, error, lost, cluster_offline.
    ``level``: ``info`` or ``error``; defaults per event (submitted/finished are info).
    Pass ``settings`` (for the portal link); ``get_settings()`` is the fallback.
    """
    kind = _level(event, level, CALCULATION_EVENTS)
    settings = settings or get_settings()
    public_url = settings.smtp.public_url.rstrip("/")
    owner = session.get(User, calculation.owner_id)
    cluster = session.get(Cluster, calculation.cluster_id)
    cluster_name = cluster.name if cluster is not None else f"#{calculation.cluster_id}"
    subject = _subject(f"[hpcgate] {calculation.name} (#{calculation.id}): {kind.title}")
    rows = []
    for recipient in calculation_recipients(session, owner, kind.level):
        text, html = render(
            "calculation_event",
            subject=subject,
            recipient_name=recipient.user.full_name or recipient.user.email,
            why=recipient.why,
            public_url=public_url,
            calculation=calculation,
            cluster_name=cluster_name,
            title=kind.title,
            level=kind.level.value,
            message=_clean(message),
            link=f"{public_url}/calculations/{calculation.id}",
        )
        rows.append(
            NotificationOutbox(
                recipient=recipient.user.email,
                user_id=recipient.user.id,
                calculation_id=calculation.id,
                event=event,
                level=kind.level.value,
                subject=subject,
                body_text=text,
                body_html=html,
            )
        )
    session.add_all(rows)
    session.flush()
    return rows


def notify_cluster_event(
    session: Session,
    cluster: Cluster,
    event: str,
    message: str | None = "",
    *,
    settings: Settings | None = None,
) -> list[NotificationOutbox]:
    """Queue a cluster event (``cluster_offline``) for every admin (flushes; caller commits)."""
    kind = _level(event, None, CLUSTER_EVENTS)
    settings = settings or get_settings()
    public_url = settings.smtp.public_url.rstrip("/")
    subject = _subject(f"[hpcgate] cluster {cluster.name} {kind.title}")
    rows = []
    for admin in _admins(session):
        text, html = render(
            "cluster_event",
            subject=subject,
            recipient_name=admin.full_name or admin.email,
            why="You receive this as an hpcgate administrator.",
            public_url=public_url,
            cluster=cluster,
            title=kind.title,
            message=_clean(message),
            link=f"{public_url}/clusters/{cluster.id}",
        )
        rows.append(
            NotificationOutbox(
                recipient=admin.email,
                user_id=admin.id,
                event=event,
                level=kind.level.value,
                subject=subject,
                body_text=text,
                body_html=html,
            )
        )
    session.add_all(rows)
    session.flush()
    return rows


def queue_test_mail(
    session: Session, user: User, message: str = "", *, settings: Settings
) -> NotificationOutbox:
    """A test mail to ``user`` (admins check the SMTP settings with it). Flushes."""
    public_url = settings.smtp.public_url.rstrip("/")
    subject = "[hpcgate] test message"
    text, html = render(
        "test_message",
        subject=subject,
        recipient_name=user.full_name or user.email,
        why="You asked for this test message.",
        public_url=public_url,
        message=_clean(message),
    )
    row = NotificationOutbox(
        recipient=user.email,
        user_id=user.id,
        event="test",
        level=NotifyLevel.INFO.value,
        subject=subject,
        body_text=text,
        body_html=html,
    )
    session.add(row)
    session.flush()
    return row
