"""Clusters, queue mappings and API keys through the API: validation, CRUD, key lifecycle."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient
from sqlalchemy import Engine, update
from sqlalchemy.orm import Session

from hpcgate.api.app import create_app
from hpcgate.api.deps import MlApiKey
from hpcgate.auth.api_keys import hash_secret, parse_key
from hpcgate.db.models import ApiKey, Calculation
from hpcgate.domain.access import Role
from hpcgate.settings import Settings
from tests.helpers.api import api_client, auth_headers, new_api_key, new_cluster, new_user, unique

pytestmark = pytest.mark.integration


def _cluster(**over: Any) -> dict[str, Any]:
    return {
        "name": unique("c-"),
        "scheduler": "slurm",
        "access_mode": "ssh",
        "host": "login.hpc.example.org",
        "port": 22,
        "login_user": "hpcgate",
        "scratch_root": "/scratch/hpcgate/",
        "options": {"key_file": "/etc/hpcgate/id_ed25519"},
        "queues": [{"logical_queue": "short", "partition": "debug", "max_walltime_s": 3600}],
        **over,
    }


def test_cluster_lifecycle(settings: Settings, db_engine: Engine) -> None:
    admin = auth_headers(new_user(db_engine, role=Role.ADMIN), settings)
    user = auth_headers(new_user(db_engine), settings)
    with api_client(settings, db_engine) as client:
        r = client.post("/clusters", json=_cluster(), headers=admin)
        assert r.status_code == 201, r.text
        created = r.json()
        cid = created["id"]
        assert created["scratch_root"] == "/scratch/hpcgate"  # normalised
        assert created["options"] == {"key_file": "/etc/hpcgate/id_ed25519"}
        assert [q["logical_queue"] for q in created["queues"]] == ["short"]

        # users see clusters, but not the runner options
        listed = client.get("/clusters", headers=user).json()
        assert any(c["id"] == cid for c in listed)
        detail = client.get(f"/clusters/{cid}", headers=user).json()
        assert "options" not in detail
        assert client.get(f"/clusters/{cid}/config", headers=user).status_code == 403
        assert client.get(f"/clusters/{cid}/config", headers=admin).json()["options"]["key_file"]

        r = client.patch(
            f"/clusters/{cid}", json={"port": 2222, "description": "main"}, headers=admin
        )
        assert r.status_code == 200
        assert r.json()["port"] == 2222
        # cross-field: an ssh cluster keeps needing a host
        r = client.patch(f"/clusters/{cid}", json={"host": None}, headers=admin)
        assert r.status_code == 422
        assert "host" in r.json()["detail"]
        r = client.patch(
            f"/clusters/{cid}", json={"access_mode": "agent", "host": None}, headers=admin
        )
        assert r.status_code == 200
        assert r.json()["host"] is None

        assert client.post(f"/clusters/{cid}/disable", headers=admin).json()["enabled"] is False
        assert client.post(f"/clusters/{cid}/enable", headers=admin).json()["enabled"] is True

        # queues
        r = client.post(
            f"/clusters/{cid}/queues",
            json={"logical_queue": "long", "partition": "compute", "qos": "normal", "max_nodes": 4},
            headers=admin,
        )
        assert r.status_code == 201, r.text
        assert (
            client.post(
                f"/clusters/{cid}/queues",
                json={"logical_queue": "long", "partition": "x"},
                headers=admin,
            ).status_code
            == 409
        )
        r = client.patch(
            f"/clusters/{cid}/queues/long", json={"max_nodes": 8, "qos": None}, headers=admin
        )
        assert r.status_code == 200
        assert r.json()["max_nodes"] == 8
        assert r.json()["qos"] is None
        names = [
            q["logical_queue"] for q in client.get(f"/clusters/{cid}/queues", headers=user).json()
        ]
        assert names == ["long", "short"]
        assert client.delete(f"/clusters/{cid}/queues/long", headers=admin).status_code == 204
        assert client.delete(f"/clusters/{cid}/queues/long", headers=admin).status_code == 404

        # names are unique (case-insensitively)
        r = client.post("/clusters", json=_cluster(name=created["name"].upper()), headers=admin)
        assert r.status_code == 409

        assert client.delete(f"/clusters/{cid}", headers=admin).status_code == 204
        assert client.get(f"/clusters/{cid}", headers=user).status_code == 404


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"name": "bad name!"}, "name"),
        ({"name": ""}, "name"),
        ({"host": "http://login.example.org"}, "host"),
        ({"host": "-bad-.example.org"}, "host"),
        ({"port": 0}, "port"),
        ({"port": 70000}, "port"),
        ({"scratch_root": "scratch/relative"}, "scratch_root"),
        ({"scratch_root": "/"}, "scratch_root"),
        ({"scratch_root": "/scratch/../etc"}, "scratch_root"),
        ({"access_mode": "telnet"}, "access_mode"),
        ({"scheduler": "lsf"}, "scheduler"),
        ({"login_user": "root; rm -rf /"}, "login_user"),
        ({"host": None}, "host"),  # ssh needs a host
        ({"options": {"k": "a\u0000b"}}, "options"),
        ({"queues": [{"logical_queue": "q q", "partition": "p"}]}, "logical_queue"),
        ({"queues": [{"logical_queue": "q", "partition": "p", "max_nodes": 0}]}, "max_nodes"),
    ],
)
def test_cluster_validation(
    settings: Settings, db_engine: Engine, override: dict[str, Any], field: str
) -> None:
    admin = auth_headers(new_user(db_engine, role=Role.ADMIN), settings)
    with api_client(settings, db_engine) as client:
        r = client.post("/clusters", json=_cluster(**override), headers=admin)
        assert r.status_code == 422, r.text
        body = r.json()
        assert body["code"] == "invalid_input"
        assert field in body["detail"] or field in str(body.get("errors"))


def test_known_schedulers_are_accepted(settings: Settings, db_engine: Engine) -> None:
    admin = auth_headers(new_user(db_engine, role=Role.ADMIN), settings)
    with api_client(settings, db_engine) as client:
        for scheduler in ("slurm", "pbs", "local"):
            body = _cluster(scheduler=scheduler, access_mode="local", host=None, queues=[])
            assert client.post("/clusters", json=body, headers=admin).status_code == 201


def test_cluster_with_calculations_is_not_deleted(settings: Settings, db_engine: Engine) -> None:
    admin = new_user(db_engine, role=Role.ADMIN)
    cluster = new_cluster(db_engine)
    with Session(db_engine) as s:
        s.add(Calculation(name="c", owner_id=admin.id, cluster_id=cluster.id, logical_queue="q"))
        s.commit()
    with api_client(settings, db_engine) as client:
        r = client.delete(f"/clusters/{cluster.id}", headers=auth_headers(admin, settings))
        assert r.status_code == 409
        assert "disable" in r.json()["detail"]


def test_agent_key_lifecycle(settings: Settings, db_engine: Engine) -> None:
    admin = auth_headers(new_user(db_engine, role=Role.ADMIN), settings)
    cluster = new_cluster(db_engine)
    other = new_cluster(db_engine)
    line = {"lines": [{"level": "info", "message": "hello"}]}
    with api_client(settings, db_engine) as client:
        r = client.post(f"/clusters/{cluster.id}/api-keys", json={"name": "login1"}, headers=admin)
        assert r.status_code == 201, r.text
        created = r.json()
        raw = created["key"]
        prefix, secret = parse_key(raw) or ("", "")
        assert created["prefix"] == prefix
        assert raw.startswith(f"hpcg_{prefix}_")
        # stored hashed, found by prefix
        with Session(db_engine) as s:
            row = s.get(ApiKey, created["id"])
            assert row is not None
            assert row.key_hash == hash_secret(secret)
            assert secret not in row.key_hash

        # never shown again
        listed = client.get(f"/clusters/{cluster.id}/api-keys", headers=admin).json()
        assert [k["id"] for k in listed] == [created["id"]]
        assert "key" not in listed[0]
        assert listed[0]["last_used_at"] is None

        # works as bearer and as X-API-Key; last use recorded
        assert (
            client.post(
                "/agent/logs", json=line, headers={"Authorization": f"Bearer {raw}"}
            ).status_code
            == 201
        )
        assert client.post("/agent/logs", json=line, headers={"X-API-Key": raw}).status_code == 201
        listed = client.get(f"/clusters/{cluster.id}/api-keys", headers=admin).json()
        assert listed[0]["last_used_at"] is not None

        # the key belongs to its cluster only
        assert client.get(f"/clusters/{other.id}/api-keys", headers=admin).json() == []
        assert (
            client.delete(
                f"/clusters/{other.id}/api-keys/{created['id']}", headers=admin
            ).status_code
            == 404
        )

        # a wrong secret with a valid prefix is refused
        forged = f"hpcg_{prefix}_{'A' * 43}"
        assert (
            client.post("/agent/logs", json=line, headers={"X-API-Key": forged}).status_code == 401
        )

        # rotate without grace: old key dead at once, new one works
        r = client.post(f"/clusters/{cluster.id}/api-keys/{created['id']}/rotate", headers=admin)
        assert r.status_code == 201, r.text
        new_raw = r.json()["key"]
        assert new_raw != raw
        assert client.post("/agent/logs", json=line, headers={"X-API-Key": raw}).status_code == 401
        assert (
            client.post("/agent/logs", json=line, headers={"X-API-Key": new_raw}).status_code == 201
        )

        # rotate with a grace period: both work until it ends
        r = client.post(
            f"/clusters/{cluster.id}/api-keys/{r.json()['id']}/rotate",
            json={"grace_seconds": 600},
            headers=admin,
        )
        newest = r.json()
        assert (
            client.post("/agent/logs", json=line, headers={"X-API-Key": new_raw}).status_code == 201
        )
        assert (
            client.post("/agent/logs", json=line, headers={"X-API-Key": newest["key"]}).status_code
            == 201
        )
        old_row = next(
            k
            for k in client.get(f"/clusters/{cluster.id}/api-keys", headers=admin).json()
            if k["prefix"] == parse_key(new_raw)[0]  # type: ignore[index]
        )
        assert old_row["active"] is True
        assert old_row["revoked_at"] is not None
        # ... when the grace period is over, the old key is refused
        with Session(db_engine) as s:
            s.execute(
                update(ApiKey)
                .where(ApiKey.id == old_row["id"])
                .values(revoked_at=datetime.now(UTC) - timedelta(seconds=1))
            )
            s.commit()
        assert (
            client.post("/agent/logs", json=line, headers={"X-API-Key": new_raw}).status_code == 401
        )
        assert (
            client.post(
                f"/clusters/{cluster.id}/api-keys/{old_row['id']}/rotate", headers=admin
            ).status_code
            == 422
        )

        # revoke
        r = client.delete(f"/clusters/{cluster.id}/api-keys/{newest['id']}", headers=admin)
        assert r.status_code == 200
        assert r.json()["active"] is False
        assert (
            client.post("/agent/logs", json=line, headers={"X-API-Key": newest["key"]}).status_code
            == 401
        )


def test_ml_api_keys(settings: Settings, db_engine: Engine) -> None:
    admin = auth_headers(new_user(db_engine, role=Role.ADMIN), settings)
    cluster = new_cluster(db_engine)
    _, agent_key = new_api_key(db_engine, cluster=cluster)
    with api_client(settings, db_engine) as client:
        r = client.post("/ml-api-keys", json={"name": "ml"}, headers=admin)
        assert r.status_code == 201
        ml = r.json()
        assert ml["owner_kind"] == "ml_api"
        assert ml["cluster_id"] is None
        assert any(k["id"] == ml["id"] for k in client.get("/ml-api-keys", headers=admin).json())
        # an ML-API key does not open agent routes
        line = {"lines": [{"message": "x"}]}
        assert (
            client.post("/agent/logs", json=line, headers={"X-API-Key": ml["key"]}).status_code
            == 403
        )
        rotated = client.post(
            f"/ml-api-keys/{ml['id']}/rotate", json={"grace_seconds": 0}, headers=admin
        )
        assert rotated.status_code == 201
        assert (
            client.delete(f"/ml-api-keys/{rotated.json()['id']}", headers=admin).json()["active"]
            is False
        )
        # agent keys are not ML-API keys
        agent_rows = client.get(f"/clusters/{cluster.id}/api-keys", headers=admin).json()
        assert (
            client.delete(f"/ml-api-keys/{agent_rows[0]['id']}", headers=admin).status_code == 404
        )
        assert agent_key.startswith("hpcg_")


def test_last_used_is_written_at_most_once_a_minute(settings: Settings, db_engine: Engine) -> None:
    cluster = new_cluster(db_engine)
    key, raw = new_api_key(db_engine, cluster=cluster)
    line = {"lines": [{"message": "x"}]}
    with api_client(settings, db_engine) as client:
        assert client.post("/agent/logs", json=line, headers={"X-API-Key": raw}).status_code == 201
        with Session(db_engine) as s:
            first = s.get(ApiKey, key.id).last_used_at  # type: ignore[union-attr]
        assert first is not None
        assert client.post("/agent/logs", json=line, headers={"X-API-Key": raw}).status_code == 201
        with Session(db_engine) as s:
            assert s.get(ApiKey, key.id).last_used_at == first  # type: ignore[union-attr]
            s.execute(
                update(ApiKey)
                .where(ApiKey.id == key.id)
                .values(last_used_at=datetime.now(UTC) - timedelta(minutes=2))
            )
            s.commit()
        assert client.post("/agent/logs", json=line, headers={"X-API-Key": raw}).status_code == 201
        with Session(db_engine) as s:
            assert s.get(ApiKey, key.id).last_used_at > first  # type: ignore[operator, union-attr]


_ml_router = APIRouter()


@_ml_router.get("/_test/ml-whoami")
def _ml_whoami(key: MlApiKey) -> dict[str, str]:
    return {"name": key.name, "owner": key.owner_kind.value}


def test_ml_api_key_dependency(settings: Settings, db_engine: Engine) -> None:
    """``MlApiKey`` (for the ML routes other layers add) admits ML-API keys only."""
    app = create_app(settings, engine=db_engine)
    app.include_router(_ml_router)
    _, ml_key = new_api_key(db_engine, name="ml-test")
    _, revoked_ml = new_api_key(db_engine, revoked=True)
    _, agent_key = new_api_key(db_engine, cluster=new_cluster(db_engine))
    admin = new_user(db_engine, role=Role.ADMIN)
    with TestClient(app) as client:
        r = client.get("/_test/ml-whoami", headers={"X-API-Key": ml_key})
        assert r.status_code == 200
        assert r.json() == {"name": "ml-test", "owner": "ml_api"}
        assert (
            client.get(
                "/_test/ml-whoami", headers={"Authorization": f"Bearer {ml_key}"}
            ).status_code
            == 200
        )
        assert client.get("/_test/ml-whoami", headers={"X-API-Key": agent_key}).status_code == 403
        assert client.get("/_test/ml-whoami", headers={"X-API-Key": revoked_ml}).status_code == 401
        assert client.get("/_test/ml-whoami").status_code == 401
        assert (
            client.get("/_test/ml-whoami", headers=auth_headers(admin, settings)).status_code == 401
        )
