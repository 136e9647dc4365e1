"""Issue 15 item 9: old tokens die at logout and at a password change; logins age out.

Exploits:

* a copied access token kept working for up to 15 min after its owner logged out, and
  after its owner changed the password (which also left copies of the current refresh
  cookie alive);
* a refresh family, refreshed regularly, lived forever.

Now logout and a password change set the user's ``sessions_revoked_at`` (the auth
dependency's one user lookup refuses older tokens), a password change revokes every refresh
family, and a family ends ``auth.refresh_family_max_days`` after its login. Each replay
below is refused and changes nothing.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from hpcgate.auth.refresh import COOKIE_NAME
from tests.security.conftest import PASSWORD, SecurityStack

pytestmark = pytest.mark.integration

TABLES = ("users", "calculations", "steps")
FAMILY_DAYS = 7  # below refresh_token_days (14): a family's last token ends with the family


@pytest.fixture(scope="module")
def security_settings_overrides() -> dict[str, Any]:
    return {"auth": {"refresh_family_max_days": FAMILY_DAYS}}


def _login(s: SecurityStack, who: str) -> tuple[httpx.Client, str, str]:
    """A browser-like client logged in as ``who``: (client, access token, refresh cookie)."""
    client = s.client()
    r = s.login(who, client)
    assert r.status_code == 200, r.text
    return client, str(r.json()["access_token"]), str(client.cookies[COOKIE_NAME])


def _replay(s: SecurityStack, token: str, cookie: str) -> None:
    """The thief's replay: every use of the copied token and cookie is a 401, no change."""
    before = s.snapshot(*TABLES)
    with s.client(Authorization=f"Bearer {token}") as thief:
        assert thief.get("/auth/me").status_code == 401
        assert thief.patch("/auth/me", json={"full_name": "Mallory"}).status_code == 401
        assert thief.post("/calculations", json=s.calculation_body()).status_code == 401
    with s.client() as thief:
        thief.cookies.set(COOKIE_NAME, cookie, path="/auth")
        assert thief.post("/auth/refresh").status_code == 401
    assert s.snapshot(*TABLES) == before


def test_logout_revokes_the_access_token(security_stack: SecurityStack) -> None:
    s = security_stack
    browser, token, cookie = _login(s, "user")
    assert browser.get("/auth/me", headers={"Authorization": f"Bearer {token}"}).is_success
    assert browser.post("/auth/logout").status_code == 204
    _replay(s, token, cookie)
    browser.close()
    # logging in again works
    client, fresh, _ = _login(s, "user")
    assert client.get("/auth/me", headers={"Authorization": f"Bearer {fresh}"}).is_success
    client.close()


def test_logout_with_only_the_access_token(security_stack: SecurityStack) -> None:
    s = security_stack
    _, token, cookie = _login(s, "other")
    with s.client(Authorization=f"Bearer {token}") as cli:
        assert cli.post("/auth/logout").status_code == 204
    with s.client(Authorization=f"Bearer {token}") as thief:
        assert thief.get("/auth/me").status_code == 401
    # the cookie was not presented, so that login may still refresh (a new token)
    with s.client() as owner:
        owner.cookies.set(COOKIE_NAME, cookie, path="/auth")
        assert owner.post("/auth/refresh").status_code == 200


def test_password_change_revokes_every_token(security_stack: SecurityStack) -> None:
    s = security_stack
    laptop, laptop_token, laptop_cookie = _login(s, "moderator")
    phone, phone_token, phone_cookie = _login(s, "moderator")
    new_password = "a-brand-new-password-42"
    r = laptop.patch(
        "/auth/me",
        json={"current_password": PASSWORD, "new_password": new_password},
        headers={"Authorization": f"Bearer {laptop_token}"},
    )
    assert r.status_code == 200, r.text
    s.accounts["moderator"].password = new_password
    # every old access token and every old refresh cookie (both logins) is dead
    _replay(s, laptop_token, laptop_cookie)
    _replay(s, phone_token, phone_cookie)
    assert phone.post("/auth/refresh").status_code == 401
    # the laptop continues with the new cookie it received
    renewed = laptop.post("/auth/refresh")
    assert renewed.status_code == 200, renewed.text
    headers = {"Authorization": f"Bearer {renewed.json()['access_token']}"}
    assert laptop.get("/auth/me", headers=headers).is_success
    laptop.close()
    phone.close()


def test_a_refresh_family_has_an_absolute_lifetime(security_stack: SecurityStack) -> None:
    s = security_stack
    browser, _, _ = _login(s, "admin")
    assert browser.post("/auth/refresh").status_code == 200  # refreshing works...
    cookie = str(browser.cookies[COOKIE_NAME])
    days = s.settings.auth.refresh_family_max_days
    # ...until the login is older than the limit (the clock moved on: the login began
    # ``days`` days ago; its latest token is fresh and unexpired)
    with s.engine.begin() as conn:
        conn.exec_driver_sql(
            "UPDATE refresh_tokens SET family_started_at = family_started_at - "
            f"interval '{days} days 1 minute' WHERE family_id = (SELECT family_id FROM "
            "refresh_tokens WHERE rotated_at IS NULL AND user_id = %(u)s "
            "ORDER BY id DESC LIMIT 1)",
            {"u": s.accounts["admin"].id},
        )
    r = browser.post("/auth/refresh")
    assert r.status_code == 401
    assert "log in again" in r.json()["detail"]
    revoked = s.scalar(
        "SELECT count(*) FROM refresh_tokens WHERE user_id = :u AND revoked_at IS NULL "
        "AND family_started_at < now() - make_interval(days => :d)",
        u=s.accounts["admin"].id,
        d=days,
    )
    assert revoked == 0  # the whole aged family is revoked
    with s.client() as thief:
        thief.cookies.set(COOKIE_NAME, cookie, path="/auth")
        assert thief.post("/auth/refresh").status_code == 401
    browser.close()


def test_new_families_expire_within_the_absolute_lifetime(security_stack: SecurityStack) -> None:
    s = security_stack
    browser, _, _ = _login(s, "other")
    spans = s.scalar(
        "SELECT max(extract(epoch FROM expires_at - family_started_at)) FROM refresh_tokens "
        "WHERE user_id = :u",
        u=s.accounts["other"].id,
    )
    assert s.settings.auth.refresh_token_days > FAMILY_DAYS
    assert float(spans) == pytest.approx(FAMILY_DAYS * 86400, abs=1)
    browser.close()
