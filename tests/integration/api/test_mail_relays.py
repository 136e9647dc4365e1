"""Mail through relays as labs use them (Mailtrap, SendGrid): STARTTLS + AUTH on a
587-style port and SMTPS (implicit TLS) + AUTH on a 465-style port, against a real aiosmtpd
with TLS (a CA and a server certificate generated here) and authentication, on loopback.

What it proves: both transports deliver, with the session encrypted and authenticated as
configured; the relay's certificate is verified (an untrusted one gets no password); a relay
that does not offer STARTTLS gets no password either; a relay that refuses the login, or is
down, makes the outbox retry with backoff, and once it works every mail arrives exactly once:
nothing is lost.
"""

from __future__ import annotations

import email
import email.policy
import ipaddress
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import Engine, delete, select
from sqlalchemy.orm import Session, sessionmaker

from hpcgate.db.models import NotificationOutbox
from hpcgate.services.mail import backoff, send_due_mail
from hpcgate.services.notify import queue_test_mail
from hpcgate.settings import Settings
from tests.helpers.api import new_user
from tests.helpers.live_api import free_port

pytestmark = [
    pytest.mark.integration,
    # the SMTPS relay requires AUTH on a connection aiosmtpd does not count as TLS (it is)
    pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning"),
]

USER = "lab-relay"
PASSWORD = "relay-secret-4f9c"


@dataclass
class Certs:
    ca: Path
    cert: Path
    key: Path


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    """A private CA and a certificate for 127.0.0.1/localhost signed by it."""
    out = tmp_path_factory.mktemp("smtp-tls")
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("hpcgate test relay CA"))
        .issuer_name(_name("hpcgate test relay CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.OID_SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = Certs(out / "ca.pem", out / "relay.pem", out / "relay.key")
    paths.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


def _over_tls(server: Any, session: Any) -> bool:
    """STARTTLS sets ``session.ssl``; an SMTPS connection is TLS at the transport."""
    return session.ssl is not None or server.transport.get_extra_info("ssl_object") is not None


@dataclass
class Relay:
    """What the relay saw: logins tried (and over TLS or not) and messages accepted."""

    password: str = PASSWORD
    logins: list[tuple[str, str, bool]] = field(default_factory=list)
    messages: list[tuple[list[str], EmailMessage, bool, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        login, password = data.login.decode(), data.password.decode()
        with self.lock:
            self.logins.append((login, password, _over_tls(server, session)))
        ok = login == USER and password == self.password
        return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        with self.lock:
            self.messages.append(
                (list(envelope.rcpt_tos), msg, _over_tls(server, session), session.authenticated)  # type: ignore[arg-type]
            )
        return "250 Message accepted for delivery"


def _server_context(certs: Certs) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(certs.cert, certs.key)
    return ctx


@contextmanager
def relay_on(port: int, certs: Certs, *, implicit_tls: bool, offer_tls: bool = True,
             relay: Relay | None = None) -> Iterator[Relay]:  # fmt: skip
    """aiosmtpd on 127.0.0.1:port: SMTPS when ``implicit_tls``, else STARTTLS (required
    before AUTH and mail) when ``offer_tls``; AUTH always required."""
    relay = relay or Relay()
    kwargs: dict[str, Any] = {
        "authenticator": relay.authenticate,
        "auth_required": True,
        # aiosmtpd counts only STARTTLS as TLS here; SMTPS sessions are TLS from the start
        # (the authenticator records it, and the tests check it)
        "auth_require_tls": offer_tls and not implicit_tls,
    }
    if implicit_tls:
        kwargs["ssl_context"] = _server_context(certs)
    elif offer_tls:
        kwargs.update(tls_context=_server_context(certs), require_starttls=True)
    controller = Controller(relay, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    try:
        yield relay
    finally:
        controller.stop()


@pytest.fixture
def factory(isolated_engine: Engine) -> sessionmaker[Session]:
    with Session(isolated_engine) as s:
        s.execute(delete(NotificationOutbox))
        s.commit()
    return sessionmaker(isolated_engine, expire_on_commit=False)


def _settings(base: Settings, port: int, certs: Certs | None, **smtp: Any) -> Settings:
    values = {
        "host": "127.0.0.1",
        "port": port,
        "username": USER,
        "password": PASSWORD,
        "ca_file": certs.ca if certs else None,
        "mail_from": "noreply@lab.example.org",
        **smtp,
    }
    return base.model_copy(update={"smtp": base.smtp.model_copy(update=values)})


def _queue(factory: sessionmaker[Session], engine: Engine, settings: Settings, n: int) -> list[str]:
    users = [new_user(engine) for _ in range(n)]
    with factory() as s:
        for u in users:
            queue_test_mail(s, u, f"hello {u.email}", settings=settings)
        s.commit()
    return [u.email for u in users]


def _rows(factory: sessionmaker[Session]) -> list[NotificationOutbox]:
    with factory() as s:
        return list(s.scalars(select(NotificationOutbox).order_by(NotificationOutbox.id)))


@pytest.mark.parametrize(
    ("security", "implicit"),
    [("starttls", False), ("tls", True)],
    ids=["587-starttls", "465-smtps"],
)
def test_both_relay_styles_deliver_encrypted_and_authenticated(
    isolated_settings: Settings,
    isolated_engine: Engine,
    factory: sessionmaker[Session],
    certs: Certs,
    security: str,
    implicit: bool,
) -> None:
    port = free_port()
    settings = _settings(isolated_settings, port, certs, security=security)
    to = _queue(factory, isolated_engine, settings, 3)
    with relay_on(port, certs, implicit_tls=implicit) as relay:
        assert send_due_mail(factory, settings) == 3
        assert send_due_mail(factory, settings) == 0
    assert relay.logins == [(USER, PASSWORD, True)]  # one connection, one login, over TLS
    assert sorted(r[0][0] for r in relay.messages) == sorted(to)
    for _, msg, over_tls, auth in relay.messages:
        assert over_tls
        assert auth is True
        assert msg["From"] == "hpcgate <noreply@lab.example.org>"
        assert msg["X-Hpcgate-Event"] == "test"
        assert "hello " in msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        assert msg.get_body(("html",)) is not None
    assert all(r.sent_at is not None and r.attempts == 1 for r in _rows(factory))


def test_a_refused_login_is_retried_with_backoff_and_nothing_is_lost(
    isolated_settings: Settings,
    isolated_engine: Engine,
    factory: sessionmaker[Session],
    certs: Certs,
) -> None:
    port = free_port()
    settings = _settings(isolated_settings, port, certs, security="starttls")
    to = _queue(factory, isolated_engine, settings, 2)
    t0 = datetime.now(UTC)
    relay = Relay(password="rotated-by-the-provider")
    with relay_on(port, certs, implicit_tls=False, relay=relay):
        assert send_due_mail(factory, settings, now=t0) == 0
        first = _rows(factory)
        assert [r.attempts for r in first] == [1, 0]  # the tick stopped at the first failure
        assert first[0].sent_at is None
        assert first[0].last_error is not None
        assert first[0].last_error.startswith("AUTH refused: 535")
        assert first[0].next_attempt_at == t0 + backoff(1)
        assert PASSWORD not in first[0].last_error
        # the second row was due: the next tick tries again, fails again
        assert send_due_mail(factory, settings, now=t0 + timedelta(seconds=1)) == 0
        assert [r.attempts for r in _rows(factory)] == [1, 1]
        # the first row is not due before its backoff has passed
        assert send_due_mail(factory, settings, now=t0 + timedelta(seconds=2)) == 0
        assert [r.attempts for r in _rows(factory)] == [1, 1]
        assert send_due_mail(factory, settings, now=t0 + backoff(1)) == 0
        assert [r.attempts for r in _rows(factory)] == [2, 1]
        assert _rows(factory)[0].next_attempt_at == t0 + backoff(1) + backoff(2)
        relay.password = PASSWORD  # the admin fixes the relay account
        assert send_due_mail(factory, settings, now=t0 + timedelta(hours=1)) == 2
    assert sorted(r[0][0] for r in relay.messages) == sorted(to)
    assert relay.logins[-1] == (USER, PASSWORD, True)  # over TLS, every time
    assert all(over_tls for *_, over_tls in relay.logins)
    assert all(r.sent_at is not None and r.last_error is None for r in _rows(factory))


def test_a_relay_that_is_down_gets_retries_and_every_mail_arrives_once(
    isolated_settings: Settings,
    isolated_engine: Engine,
    factory: sessionmaker[Session],
    certs: Certs,
) -> None:
    port = free_port()  # nothing listens yet
    settings = _settings(isolated_settings, port, certs, security="tls")
    to = _queue(factory, isolated_engine, settings, 3)
    t0 = datetime.now(UTC)
    assert send_due_mail(factory, settings, now=t0) == 0
    assert send_due_mail(factory, settings, now=t0 + backoff(1)) == 0
    rows = _rows(factory)
    assert sorted(r.attempts for r in rows) == [0, 1, 1]  # one try per tick, then it waits
    assert {r.last_error for r in rows if r.attempts} == {
        "connection refused: the relay is down or not listening"
    }
    assert all(r.sent_at is None for r in rows)
    with relay_on(port, certs, implicit_tls=True) as relay:
        assert send_due_mail(factory, settings, now=t0 + timedelta(hours=1)) == 3
        assert send_due_mail(factory, settings, now=t0 + timedelta(hours=2)) == 0
    assert sorted(r[0][0] for r in relay.messages) == sorted(to)  # each once


@pytest.mark.parametrize("implicit", [False, True], ids=["starttls", "smtps"])
def test_an_untrusted_certificate_gets_no_password(
    isolated_settings: Settings,
    isolated_engine: Engine,
    factory: sessionmaker[Session],
    certs: Certs,
    implicit: bool,
) -> None:
    """Someone answering on the relay's address with another certificate (here: ours, but
    the service trusts only the system's CAs) never sees the relay password."""
    port = free_port()
    settings = _settings(isolated_settings, port, None, security="tls" if implicit else "starttls")
    _queue(factory, isolated_engine, settings, 1)
    with relay_on(port, certs, implicit_tls=implicit) as relay:
        assert send_due_mail(factory, settings) == 0
    assert relay.logins == []
    assert relay.messages == []
    (row,) = _rows(factory)
    assert row.last_error is not None
    assert row.last_error.startswith("TLS: the relay's certificate is not trusted")
    assert row.sent_at is None


def test_starttls_configured_but_not_offered_sends_no_password(
    isolated_settings: Settings,
    isolated_engine: Engine,
    factory: sessionmaker[Session],
    certs: Certs,
) -> None:
    port = free_port()
    settings = _settings(isolated_settings, port, certs, security="starttls")
    _queue(factory, isolated_engine, settings, 1)
    with relay_on(port, certs, implicit_tls=False, offer_tls=False) as relay:
        assert send_due_mail(factory, settings) == 0
    assert relay.logins == []
    (row,) = _rows(factory)
    assert row.last_error is not None
    assert "does not offer STARTTLS" in row.last_error


def test_clear_text_credentials_to_a_remote_relay_are_refused() -> None:
    with pytest.raises(ValueError, match=r"smtp\.username needs TLS"):
        Settings(env="dev", smtp={"host": "smtp.sendgrid.net", "port": 25, "username": "apikey"})
    ok = Settings(env="dev", smtp={"host": "smtp.sendgrid.net", "port": 587, "use_tls": True,
                                   "username": "apikey"})  # fmt: skip
    assert ok.smtp.transport == "starttls"
    assert Settings(env="dev", smtp={"port": 465, "use_tls": True}).smtp.transport == "tls"
