"""Login, refresh rotation and reuse detection, logout, blocking, session revocation, rate
limit - through the HTTP API on the real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from hpcgate.auth.refresh import COOKIE_NAME, hash_token
from hpcgate.db.models import RefreshToken, User
from hpcgate.domain.access import NotifyLevel, Role
from hpcgate.settings import Settings
from tests.helpers.api import PASSWORD, api_client, auth_headers, login, new_user

pytestmark = pytest.mark.integration


def _refresh_with(client: TestClient, token: str | None) -> Response:
    """POST /auth/refresh presenting exactly ``token`` as the cookie."""
    client.cookies.clear()
    if token is not None:
        client.cookies.set(COOKIE_NAME, token)
    return client.post("/auth/refresh")


def _family_rows(engine: Engine, user_id: int) -> list[RefreshToken]:
    with Session(engine) as s:
        return list(
            s.scalars(
                select(RefreshToken)
                .where(RefreshToken.user_id == user_id)
                .order_by(RefreshToken.id)
            )
        )


def test_login_me_and_cookie_attributes(settings: Settings, db_engine: Engine) -> None:
    user = new_user(db_engine, full_name="Ada")
    with api_client(settings, db_engine) as client:
        r = client.post("/auth/login", json={"email": user.email.upper(), "password": PASSWORD})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["token_type"] == "bearer"
        assert 0 < body["expires_in"] <= settings.auth.access_token_minutes * 60
        assert body["user"]["email"] == user.email
        assert "password_hash" not in body["user"]
        cookie = r.headers["set-cookie"]
        assert cookie.startswith(f"{COOKIE_NAME}=")
        lowered = cookie.lower()
        assert "httponly" in lowered
        assert "samesite=strict" in lowered
        assert "path=/auth" in lowered
        me = client.get("/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"})
        assert me.status_code == 200
        assert me.json()["full_name"] == "Ada"
        # Only the hash of the refresh token is stored.
        raw = client.cookies.get(COOKIE_NAME)
        rows = _family_rows(db_engine, user.id)
        assert [row.token_hash for row in rows] == [hash_token(raw)]
        assert raw not in {row.token_hash for row in rows}


def test_secure_cookie_when_configured(settings: Settings, db_engine: Engine) -> None:
    secure = settings.model_copy(
        update={"auth": settings.auth.model_copy(update={"cookie_secure": True})}
    )
    user = new_user(db_engine)
    with api_client(secure, db_engine) as client:
        r = client.post("/auth/login", json={"email": user.email, "password": PASSWORD})
        assert "secure" in r.headers["set-cookie"].lower()


def test_bad_credentials(settings: Settings, db_engine: Engine) -> None:
    user = new_user(db_engine)
    with api_client(settings, db_engine) as client:
        wrong = client.post("/auth/login", json={"email": user.email, "password": "wrong-password"})
        unknown = client.post(
            "/auth/login", json={"email": "nobody@example.org", "password": "x" * 9}
        )
        assert wrong.status_code == unknown.status_code == 401
        assert wrong.json()["detail"] == unknown.json()["detail"]  # no user enumeration
        assert wrong.headers["www-authenticate"] == "Bearer"
        assert client.post("/auth/login", json={"email": user.email}).status_code == 422
        assert client.post("/auth/login", content=b"{not json").status_code == 422


def test_refresh_rotates_and_reuse_revokes_the_family(
    settings: Settings, db_engine: Engine
) -> None:
    user = new_user(db_engine)
    with api_client(settings, db_engine) as client:
        login(client, user.email)
        first = client.cookies.get(COOKIE_NAME)
        r = client.post("/auth/refresh")
        assert r.status_code == 200, r.text
        second = client.cookies.get(COOKIE_NAME)
        assert second
        assert second != first
        assert (
            client.get(
                "/auth/me", headers={"Authorization": f"Bearer {r.json()['access_token']}"}
            ).status_code
            == 200
        )
        rows = _family_rows(db_engine, user.id)
        assert len(rows) == 2
        assert rows[0].rotated_at is not None
        assert rows[1].rotated_at is None
        assert rows[0].family_id == rows[1].family_id

        # The old token shows up again (stolen copy): 401 and the whole family is revoked.
        client.cookies.clear()
        reused = _refresh_with(client, first)
        assert reused.status_code == 401
        assert "reused" in reused.json()["detail"]
        assert all(row.revoked_at is not None for row in _family_rows(db_engine, user.id))
        # ... so the legitimate holder of the newest token is logged out too.
        client.cookies.clear()
        assert _refresh_with(client, second).status_code == 401


def test_reuse_does_not_touch_other_logins(settings: Settings, db_engine: Engine) -> None:
    user = new_user(db_engine)
    with api_client(settings, db_engine) as laptop, api_client(settings, db_engine) as phone:
        login(laptop, user.email)
        login(phone, user.email)
        stolen = laptop.cookies.get(COOKIE_NAME)
        assert laptop.post("/auth/refresh").status_code == 200
        laptop.cookies.clear()
        assert _refresh_with(laptop, stolen).status_code == 401
        assert phone.post("/auth/refresh").status_code == 200


def test_refresh_without_or_with_garbage_cookie(settings: Settings, db_engine: Engine) -> None:
    with api_client(settings, db_engine) as client:
        assert client.post("/auth/refresh").status_code == 401
        assert _refresh_with(client, "garbage").status_code == 401


def test_expired_refresh_token(settings: Settings, db_engine: Engine) -> None:
    user = new_user(db_engine)
    with api_client(settings, db_engine) as client:
        login(client, user.email)
        with Session(db_engine) as s:
            row = s.scalars(select(RefreshToken).where(RefreshToken.user_id == user.id)).one()
            row.expires_at = datetime.now(UTC) - timedelta(seconds=1)
            s.commit()
        r = client.post("/auth/refresh")
        assert r.status_code == 401
        assert "expired" in r.json()["detail"]


def test_logout_revokes_and_clears_cookie(settings: Settings, db_engine: Engine) -> None:
    user = new_user(db_engine)
    with api_client(settings, db_engine) as client:
        login(client, user.email)
        token = client.cookies.get(COOKIE_NAME)
        r = client.post("/auth/logout")
        assert r.status_code == 204
        assert COOKIE_NAME in r.headers["set-cookie"]
        assert "max-age=0" in r.headers["set-cookie"].lower()
        assert all(row.revoked_at is not None for row in _family_rows(db_engine, user.id))
        assert _refresh_with(client, token).status_code == 401
        assert client.post("/auth/logout").status_code == 204  # idempotent


def test_blocked_user_is_refused_everywhere(settings: Settings, db_engine: Engine) -> None:
    user = new_user(db_engine)
    moderator = new_user(db_engine, role=Role.MODERATOR)
    with api_client(settings, db_engine) as client, api_client(settings, db_engine) as mod:
        body = login(client, user.email)
        headers = {"Authorization": f"Bearer {body['access_token']}"}
        assert client.get("/auth/me", headers=headers).status_code == 200

        r = mod.post(f"/users/{user.id}/block", headers=auth_headers(moderator, settings))
        assert r.status_code == 200
        assert r.json()["blocked"] is True

        # the access token issued before the block is refused at once ...
        assert client.get("/auth/me", headers=headers).status_code == 401
        # ... and so is a fresh token signed for the blocked user
        assert client.get("/auth/me", headers=auth_headers(user, settings)).status_code == 401
        # refresh and login are refused
        assert client.post("/auth/refresh").status_code == 401
        r = client.post("/auth/login", json={"email": user.email, "password": PASSWORD})
        assert r.status_code == 403
        assert "blocked" in r.json()["detail"]

        assert (
            mod.post(
                f"/users/{user.id}/unblock", headers=auth_headers(moderator, settings)
            ).status_code
            == 200
        )
        body = login(client, user.email)
        assert (
            client.get(
                "/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"}
            ).status_code
            == 200
        )


def test_admin_revokes_all_sessions(settings: Settings, db_engine: Engine) -> None:
    user = new_user(db_engine)
    admin = new_user(db_engine, role=Role.ADMIN)
    with api_client(settings, db_engine) as client:
        body = login(client, user.email)
        old = {"Authorization": f"Bearer {body['access_token']}"}
        r = client.post(f"/users/{user.id}/revoke-sessions", headers=auth_headers(admin, settings))
        assert r.status_code == 200
        assert r.json()["revoked_refresh_tokens"] == 1
        assert client.get("/auth/me", headers=old).status_code == 401
        assert client.post("/auth/refresh").status_code == 401
        # a new login works straight away
        body = login(client, user.email)
        assert (
            client.get(
                "/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"}
            ).status_code
            == 200
        )


def test_expired_access_token_is_refused(settings: Settings, db_engine: Engine) -> None:
    user = new_user(db_engine)
    with api_client(settings, db_engine) as client:
        r = client.get("/auth/me", headers=auth_headers(user, settings, expired=True))
        assert r.status_code == 401
        assert "expired" in r.json()["detail"]


def test_role_comes_from_the_database_not_the_token(settings: Settings, db_engine: Engine) -> None:
    user = new_user(db_engine)
    with api_client(settings, db_engine) as client:
        # a token that *claims* admin (validly signed, e.g. issued before a demotion)
        r = client.get("/users", headers=auth_headers(user, settings, role=Role.ADMIN))
        assert r.status_code == 403


def test_update_me(settings: Settings, db_engine: Engine) -> None:
    user = new_user(db_engine)
    with api_client(settings, db_engine) as client, api_client(settings, db_engine) as other:
        login(other, user.email)  # another login of the same user
        body = login(client, user.email)
        headers = {"Authorization": f"Bearer {body['access_token']}"}
        r = client.patch(
            "/auth/me", json={"full_name": " Grace ", "notify_level": "info"}, headers=headers
        )
        assert r.status_code == 200
        assert r.json()["full_name"] == "Grace"
        assert r.json()["notify_level"] == "info"

        r = client.patch("/auth/me", json={"new_password": "new-password-123"}, headers=headers)
        assert r.status_code == 422
        r = client.patch(
            "/auth/me",
            json={"new_password": "new-password-123", "current_password": "wrong"},
            headers=headers,
        )
        assert r.status_code == 422
        assert "current_password" in r.json()["detail"]
        r = client.patch(
            "/auth/me",
            json={"new_password": "short", "current_password": PASSWORD},
            headers=headers,
        )
        assert r.status_code == 422
        r = client.patch(
            "/auth/me",
            json={"new_password": "new-password-123", "current_password": PASSWORD},
            headers=headers,
        )
        assert r.status_code == 200
        # every access token issued so far is revoked, and every other login; this login
        # continues with the new refresh cookie set on the answer
        assert client.get("/auth/me", headers=headers).status_code == 401
        assert other.post("/auth/refresh").status_code == 401
        renewed = client.post("/auth/refresh")
        assert renewed.status_code == 200
        headers = {"Authorization": f"Bearer {renewed.json()['access_token']}"}
        login(client, user.email, "new-password-123")
        assert client.patch("/auth/me", json={"role": "admin"}, headers=headers).status_code == 422
    with Session(db_engine) as s:
        fresh = s.get(User, user.id)
        assert fresh is not None
        assert fresh.role is Role.USER
        assert fresh.notify_level is NotifyLevel.INFO


def test_login_rate_limit(settings: Settings, db_engine: Engine) -> None:
    limited = settings.model_copy(
        update={
            "auth": settings.auth.model_copy(
                update={
                    "login_rate_per_minute": 3,
                    # other tests of this session logged in from the same test client
                    "login_rate_per_ip_per_minute": 100_000,
                    "login_rate_global_per_minute": 100_000,
                }
            )
        }
    )
    user = new_user(db_engine)
    other = new_user(db_engine)
    with api_client(limited, db_engine) as client, api_client(limited, db_engine) as second_process:
        for _ in range(3):
            r = client.post("/auth/login", json={"email": user.email, "password": "wrong-one"})
            assert r.status_code == 401
        # the counter is in PostgreSQL: another app instance (process) sees it
        r = second_process.post("/auth/login", json={"email": user.email, "password": PASSWORD})
        assert r.status_code == 429
        retry_after = int(r.headers["retry-after"])
        assert 1 <= retry_after <= 60
        assert r.json()["code"] == "rate_limited"
        assert r.json()["retry_after"] == retry_after
        # another e-mail from the same client is not affected
        assert (
            client.post(
                "/auth/login", json={"email": other.email, "password": PASSWORD}
            ).status_code
            == 200
        )
