"""Helpers for API tests: users, tokens, clusters, API keys and a client - kept small.

The app under test opens its own connections (``create_app(settings, engine=db_engine)``), so
data it must see is committed through ``db_engine``, not added to the rolled-back
``db_session``. Every helper therefore takes the engine, commits, and returns detached
objects whose plain attributes stay readable. Emails and names are random, so tests never
collide in the per-session database.

Typical use::

    from tests.helpers.api import api_client, new_user, auth_headers

    def test_something(settings, db_engine):
        admin = new_user(db_engine, role=Role.ADMIN)
        with api_client(settings, db_engine) as client:
            r = client.get("/users", headers=auth_headers(admin, settings))
            assert r.status_code == 200

    # an agent:
    cluster = new_cluster(db_engine)
    _, key = new_api_key(db_engine, cluster=cluster)
    client.post("/agent/logs", json=..., headers={"X-API-Key": key})
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from hpcgate.api.app import create_app
from hpcgate.auth.jwt import issue_access_token
from hpcgate.db.models import ApiKey, Cluster, User
from hpcgate.db.models.clusters import AccessMode
from hpcgate.domain.access import ApiKeyOwner, NotifyLevel, Role
from hpcgate.services.api_keys import create_api_key
from hpcgate.services.users import create_user
from hpcgate.settings import Settings

PASSWORD = "correct horse battery staple"


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # as declared, with the router prefix: "/clusters/{cluster_id}"
    name: str
    dependant: Any  # fastapi.dependencies.models.Dependant of the effective route


def api_endpoints(app: FastAPI) -> dict[tuple[str, str], Endpoint]:
    """Every (method, path) the app serves through an ``APIRoute`` (HEAD/OPTIONS left out).

    FastAPI >= 0.12x keeps included routers as lazy ``_IncludedRouter`` entries in
    ``app.routes``; ``fastapi.routing.iter_route_contexts`` resolves them to the effective
    routes (full path, router dependencies included). Older versions list routes flat.
    """
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # older FastAPI: app.routes is already flat
        contexts: Iterable[Any] = app.routes
    else:
        contexts = iter_route_contexts(app.routes)
    out: dict[tuple[str, str], Endpoint] = {}
    for ctx in contexts:
        if not isinstance(getattr(ctx, "original_route", ctx), APIRoute):
            continue
        for method in sorted(set(ctx.methods or ()) - {"HEAD", "OPTIONS"}):
            out[(method, ctx.path)] = Endpoint(method, ctx.path, ctx.name, ctx.dependant)
    return out


def unique(prefix: str = "t") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


@contextmanager
def api_client(
    settings: Settings, engine: Engine, *, raise_server_exceptions: bool = True
) -> Iterator[TestClient]:
    """A ``TestClient`` on a fresh app bound to ``engine`` (lifespan run, engine not disposed)."""
    app = create_app(settings, engine=engine)
    with TestClient(app, raise_server_exceptions=raise_server_exceptions) as client:
        yield client


def new_user(
    engine: Engine,
    *,
    role: Role = Role.USER,
    email: str | None = None,
    password: str = PASSWORD,
    notify_level: NotifyLevel = NotifyLevel.ERROR,
    full_name: str = "",
    blocked: bool = False,
) -> User:
    """A committed user (random e-mail unless given); the password is ``PASSWORD``."""
    with Session(engine, expire_on_commit=False) as session:
        user = create_user(
            session,
            email=email or f"{unique(role.value)}@example.org",
            password=password,
            role=role,
            full_name=full_name,
            notify_level=notify_level,
        )
        user.blocked = blocked
        session.commit()
        return user


def access_token(
    user: User, settings: Settings, *, expired: bool = False, role: Role | None = None
) -> str:
    """A signed access token for ``user`` (``expired=True``: one that expired an hour ago)."""
    if expired:
        issued = issue_access_token(
            user.id,
            role or user.role,
            settings,
            now=datetime.now(UTC) - timedelta(hours=2),
            lifetime=timedelta(hours=1),
        )
    else:
        issued = issue_access_token(user.id, role or user.role, settings)
    return issued.token


def auth_headers(user: User, settings: Settings, **kwargs: Any) -> dict[str, str]:
    """``{"Authorization": "Bearer <token>"}`` for ``user`` (kwargs go to ``access_token``)."""
    return {"Authorization": f"Bearer {access_token(user, settings, **kwargs)}"}


def new_cluster(engine: Engine, **overrides: Any) -> Cluster:
    """A committed agent-mode Slurm cluster with a random name (override any column)."""
    values: dict[str, Any] = {
        "name": unique("cluster-"),
        "scheduler": "slurm",
        "access_mode": AccessMode.AGENT,
        "scratch_root": "/scratch/hpcgate",
        **overrides,
    }
    with Session(engine, expire_on_commit=False) as session:
        cluster = Cluster(**values)
        session.add(cluster)
        session.commit()
        return cluster


def new_api_key(
    engine: Engine, *, cluster: Cluster | None = None, revoked: bool = False, name: str = "test"
) -> tuple[ApiKey, str]:
    """``(row, raw key)``: a cluster agent key when ``cluster`` is given, else an ML-API key."""
    with Session(engine, expire_on_commit=False) as session:
        owner = ApiKeyOwner.CLUSTER if cluster is not None else ApiKeyOwner.ML_API
        key, raw = create_api_key(
            session,
            owner_kind=owner,
            name=name,
            cluster_id=cluster.id if cluster is not None else None,
        )
        if revoked:
            key.revoked_at = datetime.now(UTC) - timedelta(seconds=1)
            session.commit()
        return key, raw


def login(client: TestClient, email: str, password: str = PASSWORD) -> dict[str, Any]:
    """POST /auth/login; asserts 200 and returns the body (the client keeps the cookie)."""
    response = client.post("/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body
