"""Issue 15 item 6: login floods and password guessing, against the live API.

Exploits replayed over real HTTP (uvicorn on loopback, real PostgreSQL); attackers use their
own loopback source addresses (127.0.0.x), as distinct clients:

* one client sprays random e-mails (each would cost an argon2 hash): beyond the per-address
  limit every attempt is a 429 decided before any password is looked at - even the correct
  password of a real account is refused - and nothing is recorded for it;
* many clients guess one account's password, each staying under the per-address limits:
  after ``lockout_after`` failures the account is locked (429 with ``Retry-After``, even for
  the correct password), in every API process (a second app on the same database), with a
  backoff that doubles at the next failure; the correct password works once it expires and
  clears the count; a moderator's unblock lifts a lockout at once;
* many clients, each under its own limits, together reach the service-wide limit: further
  attempts are refused (429) from any address, the correct password included.

The global test runs last: it exhausts this module's global window for a minute.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine

from hpcgate.api.app import create_app
from tests.helpers.live_api import live_server
from tests.security.conftest import SecurityStack

pytestmark = pytest.mark.integration

PER_EMAIL = 5
PER_IP = 6
GLOBAL = 40
LOCK_AFTER = 3
LOCK_BASE_S = 1.0


@pytest.fixture(scope="module")
def security_settings_overrides() -> dict[str, Any]:
    return {
        "auth": {
            "login_rate_per_minute": PER_EMAIL,
            "login_rate_per_ip_per_minute": PER_IP,
            "login_rate_global_per_minute": GLOBAL,
            "lockout_after": LOCK_AFTER,
            "lockout_base_s": LOCK_BASE_S,
            "lockout_max_s": 60.0,
        }
    }


_next_ip = iter(range(20, 250))


def _client(base_url: str, ip: str | None = None) -> httpx.Client:
    """A client speaking from its own loopback address (a distinct client to the API)."""
    ip = ip or f"127.0.0.{next(_next_ip)}"
    return httpx.Client(
        base_url=base_url, transport=httpx.HTTPTransport(local_address=ip), timeout=30
    )


def _login(client: httpx.Client, email: str, password: str) -> httpx.Response:
    return client.post("/auth/login", json={"email": email, "password": password})


def _random_email() -> str:
    return f"nobody.{uuid.uuid4().hex[:10]}@example.org"


def test_one_client_spraying_emails_is_stopped_per_address(security_stack: SecurityStack) -> None:
    s = security_stack
    real = s.accounts["user"]
    before = s.snapshot("users", "refresh_tokens")
    ip = f"127.0.0.{next(_next_ip)}"
    with _client(s.base_url, ip) as attacker:
        first = [
            _login(attacker, _random_email(), "guess-123456").status_code for _ in range(PER_IP)
        ]
        assert first == [401] * PER_IP
        refused = [_login(attacker, _random_email(), "guess-123456") for _ in range(5)]
        # decided before the password: the right password of a real account is refused too
        correct = _login(attacker, real.email, real.password)
    for r in [*refused, correct]:
        assert r.status_code == 429, r.text
        assert r.json()["code"] == "rate_limited"
        assert 1 <= int(r.headers["retry-after"]) <= 60
    # refused attempts are not recorded: the address still holds exactly its limit
    assert s.scalar("SELECT count(*) FROM login_attempts WHERE key = :k", k=f"login-ip:{ip}") == (
        PER_IP
    )
    assert s.snapshot("users", "refresh_tokens") == before  # no login, no failure counted
    # another address is not affected
    with _client(s.base_url) as someone_else:
        assert _login(someone_else, real.email, real.password).status_code == 200


def test_guessing_one_account_from_many_addresses_locks_it(security_stack: SecurityStack) -> None:
    s = security_stack
    victim = s.accounts["other"]
    tokens_before = s.snapshot("refresh_tokens")
    for _ in range(LOCK_AFTER):  # a botnet: every guess from a new address
        with _client(s.base_url) as bot:
            assert _login(bot, victim.email, "wrong-guess-1").status_code == 401
    with _client(s.base_url) as owner:
        locked = _login(owner, victim.email, victim.password)
    assert locked.status_code == 429, locked.text
    assert "failed logins" in locked.json()["detail"]
    first_wait = int(locked.headers["retry-after"])
    assert 1 <= first_wait <= LOCK_BASE_S + 1
    assert s.snapshot("refresh_tokens") == tokens_before  # the correct password gave nothing
    # durable: a second API process on the same database sees the same lockout
    engine = create_engine(s.database_url, pool_size=2, max_overflow=2)
    try:
        with (
            live_server(create_app(s.settings, engine=engine)) as second_api,
            _client(second_api) as owner,
        ):
            again = _login(owner, victim.email, victim.password)
    finally:
        engine.dispose()
    assert again.status_code == 429, again.text
    # the lock expires; one more wrong password locks again, twice as long
    time.sleep(first_wait + 0.2)
    with _client(s.base_url) as bot:
        assert _login(bot, victim.email, "wrong-guess-2").status_code == 401
    with _client(s.base_url) as owner:
        relocked = _login(owner, victim.email, victim.password)
    assert relocked.status_code == 429, relocked.text
    second_wait = int(relocked.headers["retry-after"])
    assert second_wait > first_wait
    # after it expires the right password works and the count starts again from zero
    time.sleep(second_wait + 0.2)
    with _client(s.base_url) as owner:
        assert _login(owner, victim.email, victim.password).status_code == 200
    row = s.scalar(
        "SELECT failed_logins || ':' || coalesce(locked_until::text, '-') FROM users WHERE id = :i",
        i=victim.id,
    )
    assert row == "0:-"


def test_unblock_lifts_a_lockout(security_stack: SecurityStack) -> None:
    """Someone can keep a victim locked out by guessing; a moderator lets them back in."""
    s = security_stack
    victim = s.accounts["user"]
    for _ in range(LOCK_AFTER):
        with _client(s.base_url) as bot:
            assert _login(bot, victim.email, "wrong-guess-3").status_code == 401
    with _client(s.base_url) as owner:
        assert _login(owner, victim.email, victim.password).status_code == 429
    with s.api("moderator") as moderator:
        assert moderator.post(f"/users/{victim.id}/unblock").status_code == 200
    with _client(s.base_url) as owner:
        assert _login(owner, victim.email, victim.password).status_code == 200


def test_many_clients_together_reach_the_global_limit(security_stack: SecurityStack) -> None:
    s = security_stack
    real = s.accounts["moderator"]
    before = s.snapshot("users", "refresh_tokens")
    recorded = s.scalar("SELECT count(*) FROM login_attempts WHERE key = 'login-global'")
    statuses: list[int] = []
    # each client stays under its own limits (PER_IP - 1 attempts, a new e-mail each time)
    while len(statuses) < GLOBAL - recorded:
        with _client(s.base_url) as bot:
            for _ in range(PER_IP - 1):
                statuses.append(_login(bot, _random_email(), "guess-123456").status_code)
    assert statuses[: GLOBAL - recorded] == [401] * (GLOBAL - recorded)
    assert set(statuses[GLOBAL - recorded :]) <= {429}
    with _client(s.base_url) as newcomer:
        r = _login(newcomer, real.email, real.password)
    assert r.status_code == 429, r.text
    assert int(r.headers["retry-after"]) >= 1
    assert s.scalar("SELECT count(*) FROM login_attempts WHERE key = 'login-global'") == GLOBAL
    assert s.snapshot("users", "refresh_tokens") == before
