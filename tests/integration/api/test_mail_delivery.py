"""Notifications through a real SMTP server (aiosmtpd): who gets what, retries, no duplicates.

Runs on a database of its own (``isolated_engine``) so the outbox holds only this module's
mail; each test starts from an empty outbox and with no active admin.
"""

from __future__ import annotations

import email
import email.policy
import mailbox
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import Engine, delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from hpcgate.db.models import Calculation, Cluster, NotificationOutbox, User
from hpcgate.domain.access import NotifyLevel, Role
from hpcgate.services.mail import BACKOFF_CAP, backoff, send_due_mail
from hpcgate.services.notify import notify_calculation_event, notify_cluster_event
from hpcgate.settings import Settings
from tests.helpers.api import new_cluster, new_user, unique
from tests.helpers.ci import missing

pytestmark = pytest.mark.integration


@dataclass
class Inbox:
    messages: list[tuple[list[str], EmailMessage]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        with self.lock:
            self.messages.append((list(envelope.rcpt_tos), msg))  # type: ignore[arg-type]
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[EmailMessage]:
        with self.lock:
            return [m for rcpts, m in self.messages if address in rcpts]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class SmtpServer:
    port: int
    inbox: Inbox
    controller: Controller | None = None

    def start(self) -> None:
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer(port=_free_port(), inbox=Inbox())
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def mail_settings(isolated_settings: Settings, smtp: SmtpServer) -> Settings:
    return isolated_settings.model_copy(
        update={
            "smtp": isolated_settings.smtp.model_copy(
                update={
                    "host": "127.0.0.1",
                    "port": smtp.port,
                    "public_url": "https://hpcgate.example.org/",
                    "mail_from": "noreply@example.org",
                }
            )
        }
    )


@pytest.fixture
def factory(isolated_engine: Engine) -> sessionmaker[Session]:
    """A clean slate: empty outbox, every earlier admin blocked (so none receives mail)."""
    with Session(isolated_engine) as s:
        s.execute(delete(NotificationOutbox))
        s.execute(update(User).where(User.role == Role.ADMIN).values(blocked=True))
        s.commit()
    return sessionmaker(isolated_engine, expire_on_commit=False)


def _calculation(
    engine: Engine, owner: User, cluster: Cluster, name: str = "benzene IV"
) -> Calculation:
    with Session(engine, expire_on_commit=False) as s:
        calc = Calculation(name=name, owner_id=owner.id, cluster_id=cluster.id, logical_queue="q")
        s.add(calc)
        s.commit()
        return calc


def _notify(
    factory: sessionmaker[Session], calc: Calculation, event: str, settings: Settings, **kw: Any
) -> list[str]:
    with factory() as s:
        rows = notify_calculation_event(
            s,
            s.get(Calculation, calc.id),
            event,
            "step 2 did not converge",
            settings=settings,
            **kw,
        )  # type: ignore[arg-type]
        s.commit()
        return [r.recipient for r in rows]


def test_levels_admins_and_blocked_users(
    mail_settings: Settings,
    factory: sessionmaker[Session],
    isolated_engine: Engine,
    smtp: SmtpServer,
) -> None:
    e = isolated_engine
    info_owner = new_user(e, notify_level=NotifyLevel.INFO, full_name="Ivy Info")
    error_owner = new_user(e, notify_level=NotifyLevel.ERROR)
    admin1 = new_user(e, role=Role.ADMIN, notify_level=NotifyLevel.ERROR)
    admin2 = new_user(e, role=Role.ADMIN)
    new_user(e, role=Role.ADMIN, blocked=True)
    new_user(e, role=Role.MODERATOR, notify_level=NotifyLevel.INFO)  # not the owner: nothing
    cluster = new_cluster(e)
    calc_info = _calculation(e, info_owner, cluster)
    calc_error = _calculation(e, error_owner, cluster)

    admins = {admin1.email, admin2.email}
    # an INFO event: the info-level owner and the admins; the error-level owner is skipped
    assert (
        set(_notify(factory, calc_info, "finished", mail_settings)) == {info_owner.email} | admins
    )
    assert set(_notify(factory, calc_error, "submitted", mail_settings)) == admins
    # an ERROR event: every owner and the admins
    assert (
        set(_notify(factory, calc_error, "validation_failed", mail_settings))
        == {error_owner.email} | admins
    )
    # a blocked owner gets nothing (admins still do)
    with Session(e) as s:
        s.execute(update(User).where(User.id == info_owner.id).values(blocked=True))
        s.commit()
    assert set(_notify(factory, calc_info, "error", mail_settings)) == admins

    assert send_due_mail(factory, mail_settings) == 10
    assert send_due_mail(factory, mail_settings) == 0  # nothing twice

    got = smtp.inbox.to(info_owner.email)
    assert len(got) == 1
    msg = got[0]
    assert "benzene IV" in msg["Subject"]
    assert "finished" in msg["Subject"]
    assert msg["From"] == "hpcgate <noreply@example.org>"
    assert msg["X-Hpcgate-Event"] == "finished"
    assert msg["X-Hpcgate-Calculation"] == str(calc_info.id)
    link = f"https://hpcgate.example.org/calculations/{calc_info.id}"
    text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = msg.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert link in text
    assert f'href="{link}"' in html
    assert "Hello Ivy Info" in text
    assert "notification level: info" in text
    assert len(smtp.inbox.to(error_owner.email)) == 1
    assert len(smtp.inbox.to(admin1.email)) == 4  # admins get everything, whatever their level
    assert "administrator" in smtp.inbox.to(admin1.email)[0].get_body(("plain",)).get_content()  # type: ignore[union-attr]
    with factory() as s:
        assert all(
            r.sent_at is not None and r.attempts == 1 for r in s.scalars(select(NotificationOutbox))
        )


def test_owner_who_is_admin_gets_one_mail_and_html_is_escaped(
    mail_settings: Settings,
    factory: sessionmaker[Session],
    isolated_engine: Engine,
    smtp: SmtpServer,
) -> None:
    owner_admin = new_user(isolated_engine, role=Role.ADMIN, notify_level=NotifyLevel.INFO)
    calc = _calculation(
        isolated_engine, owner_admin, new_cluster(isolated_engine), name="<script>x</script>"
    )
    assert _notify(factory, calc, "error", mail_settings) == [owner_admin.email]
    assert send_due_mail(factory, mail_settings) == 1
    (msg,) = smtp.inbox.to(owner_admin.email)
    html = msg.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "<script>" not in html
    assert "&lt;script&gt;" in html


def test_cluster_offline_goes_to_admins_only(
    mail_settings: Settings,
    factory: sessionmaker[Session],
    isolated_engine: Engine,
    smtp: SmtpServer,
) -> None:
    admin = new_user(isolated_engine, role=Role.ADMIN)
    user = new_user(isolated_engine, notify_level=NotifyLevel.INFO)
    cluster = new_cluster(isolated_engine)
    with factory() as s:
        rows = notify_cluster_event(
            s,
            s.get(Cluster, cluster.id),
            "cluster_offline",
            "no heartbeat for 5 min",
            settings=mail_settings,
        )  # type: ignore[arg-type]
        s.commit()
    assert [r.recipient for r in rows] == [admin.email]
    assert send_due_mail(factory, mail_settings) == 1
    (msg,) = smtp.inbox.to(admin.email)
    assert cluster.name in msg["Subject"]
    assert (
        f"https://hpcgate.example.org/clusters/{cluster.id}"
        in msg.get_body(("plain",)).get_content()
    )  # type: ignore[union-attr]
    assert smtp.inbox.to(user.email) == []


def test_delivery_after_the_smtp_server_comes_back(
    mail_settings: Settings,
    factory: sessionmaker[Session],
    isolated_engine: Engine,
    smtp: SmtpServer,
) -> None:
    owner = new_user(isolated_engine, notify_level=NotifyLevel.INFO)
    calc = _calculation(isolated_engine, owner, new_cluster(isolated_engine))
    _notify(factory, calc, "error", mail_settings)
    _notify(factory, calc, "lost", mail_settings)

    smtp.stop()  # the mail server goes away
    t0 = datetime.now(UTC)
    assert send_due_mail(factory, mail_settings, now=t0) == 0
    with factory() as s:
        rows = list(s.scalars(select(NotificationOutbox).order_by(NotificationOutbox.id)))
    failed = [r for r in rows if r.attempts]
    assert len(failed) == 1  # the tick stops at the first failure: the server is down
    assert failed[0].sent_at is None
    assert failed[0].last_error
    assert failed[0].next_attempt_at == t0 + backoff(1)
    # later ticks while it is still down: the failed row waits for its backoff, the other fails
    assert send_due_mail(factory, mail_settings, now=t0 + timedelta(seconds=1)) == 0
    t1 = t0 + timedelta(hours=1)
    assert send_due_mail(factory, mail_settings, now=t1) == 0
    with factory() as s:
        attempts = sorted(r.attempts for r in s.scalars(select(NotificationOutbox)))
    assert attempts == [1, 2]

    smtp.start()  # ... and comes back: everything is delivered, nothing lost
    assert send_due_mail(factory, mail_settings, now=t1 + BACKOFF_CAP) == 2
    assert len(smtp.inbox.to(owner.email)) == 2
    with factory() as s:
        for row in s.scalars(select(NotificationOutbox)):
            assert row.sent_at is not None
            assert row.last_error is None


def test_backoff_is_exponential_and_capped() -> None:
    assert [backoff(n).total_seconds() for n in range(1, 7)] == [30, 60, 120, 240, 480, 600]
    assert backoff(50) == BACKOFF_CAP


def test_concurrent_workers_send_each_mail_once(
    mail_settings: Settings,
    factory: sessionmaker[Session],
    isolated_engine: Engine,
    smtp: SmtpServer,
) -> None:
    admins = [new_user(isolated_engine, role=Role.ADMIN) for _ in range(3)]
    owner = new_user(isolated_engine)
    calc = _calculation(isolated_engine, owner, new_cluster(isolated_engine))
    for _ in range(10):
        _notify(factory, calc, "error", mail_settings)  # 10 x (owner + 3 admins) = 40 mails
    results: list[int] = []

    def worker() -> None:
        results.append(send_due_mail(factory, mail_settings))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sum(results) == 40
    assert len(smtp.inbox.messages) == 40
    for person in [*admins, owner]:
        assert len(smtp.inbox.to(person.email)) == 10


def test_no_smtp_host_means_the_outbox_waits(
    isolated_settings: Settings, factory: sessionmaker[Session], isolated_engine: Engine
) -> None:
    owner = new_user(isolated_engine, notify_level=NotifyLevel.INFO)
    calc = _calculation(isolated_engine, owner, new_cluster(isolated_engine))
    _notify(factory, calc, "finished", isolated_settings)
    assert isolated_settings.smtp.host is None
    assert send_due_mail(factory, isolated_settings) == 0
    with factory() as s:
        (row,) = s.scalars(select(NotificationOutbox))
        assert row.attempts == 0
        assert row.sent_at is None


def test_unknown_event_is_refused(
    mail_settings: Settings, factory: sessionmaker[Session], isolated_engine: Engine
) -> None:
    from hpcgate.errors import InvalidInput

    calc = _calculation(isolated_engine, new_user(isolated_engine), new_cluster(isolated_engine))
    with pytest.raises(InvalidInput):
        _notify(factory, calc, "exploded", mail_settings)
    with pytest.raises(InvalidInput):
        _notify(factory, calc, "error", mail_settings, level="loud")


SINK_ENV = Path(os.environ.get("HPCGATE_TEST_SMTP_ENV", "/var/lib/hpcgate-test/smtp/env"))


def _sink_env() -> dict[str, str]:
    if not SINK_ENV.exists():
        missing(f"SMTP sink not set up: {SINK_ENV} missing (run scripts/services/smtp.sh)")
    out = {}
    for line in SINK_ENV.read_text().splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            out[k] = v
    return out


def test_delivery_to_the_maildir_sink(
    isolated_settings: Settings, factory: sessionmaker[Session], isolated_engine: Engine
) -> None:
    """The shared sink started by scripts/services/smtp.sh, read back from its Maildir."""
    env = _sink_env()
    settings = isolated_settings.model_copy(
        update={
            "smtp": isolated_settings.smtp.model_copy(
                update={
                    "host": env["HPCGATE_TEST_SMTP_HOST"],
                    "port": int(env["HPCGATE_TEST_SMTP_PORT"]),
                }
            )
        }
    )
    owner = new_user(
        isolated_engine, email=f"{unique('sink')}@example.org", notify_level=NotifyLevel.INFO
    )
    calc = _calculation(isolated_engine, owner, new_cluster(isolated_engine))
    _notify(factory, calc, "finished", settings)
    try:
        sent = send_due_mail(factory, settings)
    except OSError as exc:  # pragma: no cover - the sink is down
        missing(f"SMTP sink not answering: {exc}")
    if sent == 0:
        missing("SMTP sink not answering (scripts/services/smtp.sh)")
    box = mailbox.Maildir(env["HPCGATE_TEST_MAILDIR"], create=False)
    deadline = time.monotonic() + 5
    found: list[EmailMessage] = []
    while not found and time.monotonic() < deadline:
        for raw in box:
            msg = email.message_from_bytes(raw.as_bytes(), policy=email.policy.default)
            if owner.email in str(msg.get("X-RcptTo", "")) or msg["To"] == owner.email:
                found.append(msg)  # type: ignore[arg-type]
        time.sleep(0.1)
    assert len(found) == 1
    assert f"/calculations/{calc.id}" in found[0].get_body(("plain",)).get_content()  # type: ignore[union-attr]
