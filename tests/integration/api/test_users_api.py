"""User administration through the API: who may do what to whom."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from hpcgate.db.models import Calculation, User
from hpcgate.domain.access import Role
from hpcgate.settings import Settings
from tests.helpers.api import PASSWORD, api_client, auth_headers, new_cluster, new_user, unique

pytestmark = pytest.mark.integration


def test_admin_creates_lists_changes_role_and_deletes(
    settings: Settings, db_engine: Engine
) -> None:
    admin = new_user(db_engine, role=Role.ADMIN)
    h = auth_headers(admin, settings)
    email = f"{unique('new')}@Example.org"
    with api_client(settings, db_engine) as client:
        r = client.post(
            "/users",
            json={"email": email, "password": PASSWORD, "role": "moderator", "full_name": "M"},
            headers=h,
        )
        assert r.status_code == 201, r.text
        created = r.json()
        assert created["email"] == email.lower()
        assert created["role"] == "moderator"
        assert (
            client.post(
                "/users", json={"email": email, "password": PASSWORD}, headers=h
            ).status_code
            == 409
        )
        r = client.post("/users", json={"email": "not-an-email", "password": PASSWORD}, headers=h)
        assert r.status_code == 422
        assert "email" in r.json()["detail"]
        assert (
            client.post(
                "/users", json={"email": f"{unique()}@x.org", "password": "short"}, headers=h
            ).status_code
            == 422
        )
        assert (
            client.post(
                "/users",
                json={"email": f"{unique()}@x.org", "password": PASSWORD, "role": "root"},
                headers=h,
            ).status_code
            == 422
        )

        page = client.get("/users", params={"q": email.split("@")[0], "limit": 5}, headers=h).json()
        assert [u["id"] for u in page["items"]] == [created["id"]]
        assert page["total"] == 1
        assert client.get("/users", params={"q": "%"}, headers=h).status_code == 200

        r = client.patch(
            f"/users/{created['id']}", json={"role": "user", "notify_level": "info"}, headers=h
        )
        assert r.status_code == 200
        assert r.json()["role"] == "user"
        assert r.json()["notify_level"] == "info"

        assert client.delete(f"/users/{created['id']}", headers=h).status_code == 204
        assert client.get(f"/users/{created['id']}", headers=h).status_code == 404
        assert client.delete(f"/users/{created['id']}", headers=h).status_code == 404


def test_admin_cannot_lock_themselves_out(settings: Settings, db_engine: Engine) -> None:
    admin = new_user(db_engine, role=Role.ADMIN)
    h = auth_headers(admin, settings)
    with api_client(settings, db_engine) as client:
        for method, path, body in [
            ("PATCH", f"/users/{admin.id}", {"role": "user"}),
            ("DELETE", f"/users/{admin.id}", None),
            ("POST", f"/users/{admin.id}/block", None),
            ("POST", f"/users/{admin.id}/revoke-sessions", None),
        ]:
            r = client.request(method, path, json=body, headers=h)
            assert r.status_code == 403, (method, path, r.text)
        assert client.get("/auth/me", headers=h).json()["role"] == "admin"


def test_moderator_blocks_and_sets_passwords_of_users_only(
    settings: Settings, db_engine: Engine
) -> None:
    moderator = new_user(db_engine, role=Role.MODERATOR)
    other_mod = new_user(db_engine, role=Role.MODERATOR)
    admin = new_user(db_engine, role=Role.ADMIN)
    user = new_user(db_engine)
    h = auth_headers(moderator, settings)
    with api_client(settings, db_engine) as client:
        assert client.get("/users", headers=h).status_code == 200
        assert client.get(f"/users/{admin.id}", headers=h).status_code == 200
        r = client.put(f"/users/{user.id}/password", json={"password": "brand-new-pass"}, headers=h)
        assert r.status_code == 200
        assert (
            client.post(
                "/auth/login", json={"email": user.email, "password": "brand-new-pass"}
            ).status_code
            == 200
        )
        assert client.post(f"/users/{user.id}/block", headers=h).json()["blocked"] is True
        assert client.post(f"/users/{user.id}/unblock", headers=h).json()["blocked"] is False
        for target in (other_mod, admin):
            assert client.post(f"/users/{target.id}/block", headers=h).status_code == 403
            assert (
                client.put(
                    f"/users/{target.id}/password", json={"password": "x" * 10}, headers=h
                ).status_code
                == 403
            )
        # but not create, delete or change roles
        assert (
            client.post(
                "/users", json={"email": f"{unique()}@x.org", "password": PASSWORD}, headers=h
            ).status_code
            == 403
        )
        assert client.delete(f"/users/{user.id}", headers=h).status_code == 403
        assert (
            client.patch(f"/users/{user.id}", json={"role": "admin"}, headers=h).status_code == 403
        )
        assert client.post(f"/users/{user.id}/revoke-sessions", headers=h).status_code == 403
        # admins may block moderators
        assert (
            client.post(
                f"/users/{other_mod.id}/block", headers=auth_headers(admin, settings)
            ).status_code
            == 200
        )


def test_user_owning_calculations_cannot_be_deleted(settings: Settings, db_engine: Engine) -> None:
    admin = new_user(db_engine, role=Role.ADMIN)
    owner = new_user(db_engine)
    cluster = new_cluster(db_engine)
    with Session(db_engine) as s:
        s.add(Calculation(name="c", owner_id=owner.id, cluster_id=cluster.id, logical_queue="q"))
        s.commit()
    with api_client(settings, db_engine) as client:
        r = client.delete(f"/users/{owner.id}", headers=auth_headers(admin, settings))
        assert r.status_code == 409
        assert "block" in r.json()["detail"]
    with Session(db_engine) as s:
        assert s.get(User, owner.id) is not None


def test_demotion_takes_effect_at_once(settings: Settings, db_engine: Engine) -> None:
    admin = new_user(db_engine, role=Role.ADMIN)
    moderator = new_user(db_engine, role=Role.MODERATOR)
    token_headers = auth_headers(moderator, settings)
    with api_client(settings, db_engine) as client:
        assert client.get("/users", headers=token_headers).status_code == 200
        r = client.patch(
            f"/users/{moderator.id}", json={"role": "user"}, headers=auth_headers(admin, settings)
        )
        assert r.status_code == 200
        # the old token (claiming moderator) is refused; a new login gets the user role
        assert client.get("/users", headers=token_headers).status_code == 401
        body = client.post(
            "/auth/login", json={"email": moderator.email, "password": PASSWORD}
        ).json()
        assert body["user"]["role"] == "user"
        assert (
            client.get(
                "/users", headers={"Authorization": f"Bearer {body['access_token']}"}
            ).status_code
            == 403
        )
