"""A live stack for black-box exploit tests: real uvicorn on loopback, real PostgreSQL.

Each test in ``tests/security/`` replays an exploit as HTTP calls against the running API
and then proves it was refused *with nothing changed*: the same database rows
(``stack.snapshot(...)``) and the same files on disk (``tree_snapshot(path)``).

One stack per test module (``security_stack``):

* a scratch database, migrated with Alembic (the migrations are under test too);
* ``create_app`` served by uvicorn on ``127.0.0.1:<free port>`` (``tests/helpers/live_api.py``);
* seeded accounts ``admin``, ``moderator``, ``user`` and ``other`` (a second plain user);
* a local-executor cluster ``local`` (queue ``default``) with its scratch under the data dir,
  and an ML-API key (``stack.ml_api_key``).

``security_worker`` additionally starts a real ``hpcgate worker`` on the same database, for
tests that need jobs to actually run on the local executor. Modules that need other
settings override the ``security_settings_overrides`` fixture (a dict merged into the
``Settings`` keyword arguments).

Usage::

    def test_exploit(security_stack):
        s = security_stack
        before = s.snapshot("calculations", "steps")
        with s.api("user") as api:
            r = api.post("/calculations", json={...})
        assert r.status_code == 403
        assert s.snapshot("calculations", "steps") == before
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session, sessionmaker

from hpcgate.settings import Settings
from tests.conftest import create_scratch_database, drop_database
from tests.helpers.live_api import live_server

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "security-password-correct-horse"
SECRET = "security-secret-key-0123456789abcdef-0123456789"


@dataclass
class Account:
    email: str
    role: str
    id: int = 0
    password: str = PASSWORD


@dataclass
class SecurityStack:
    base_url: str
    settings: Settings
    engine: Engine
    factory: sessionmaker[Session]
    accounts: dict[str, Account]
    cluster_id: int
    data_dir: Path
    scratch: Path
    ml_api_key: str
    database_url: str
    extra: dict[str, Any] = field(default_factory=dict)

    def login(self, who: str, client: httpx.Client | None = None) -> httpx.Response:
        account = self.accounts[who]
        body = {"email": account.email, "password": account.password}
        if client is not None:
            return client.post("/auth/login", json=body)
        return httpx.post(self.base_url + "/auth/login", json=body, timeout=20)

    def token(self, who: str) -> str:
        r = self.login(who)
        assert r.status_code == 200, r.text
        return str(r.json()["access_token"])

    def client(self, **headers: str) -> httpx.Client:
        """A client with no credentials (cookies it receives are kept)."""
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=30)

    def api(self, who: str) -> httpx.Client:
        """A client logged in as ``who`` (bearer access token)."""
        return self.client(Authorization=f"Bearer {self.token(who)}")

    def ml_api(self) -> httpx.Client:
        """A client that presents the ML-API's key."""
        return self.client(**{"X-API-Key": self.ml_api_key})

    def snapshot(self, *tables: str) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of each table, ordered: equal snapshots mean nothing changed."""
        out: dict[str, list[tuple[Any, ...]]] = {}
        with self.engine.connect() as conn:
            for table in tables:
                if not table.replace("_", "").isalnum():
                    raise ValueError(f"not a table name: {table!r}")
                rows = conn.execute(text(f"SELECT * FROM {table} ORDER BY 1"))
                out[table] = [tuple(r) for r in rows]
        return out

    def scalar(self, sql: str, **params: Any) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(text(sql), params).scalar()

    def calculation_body(self, **overrides: Any) -> dict[str, Any]:
        """A valid generic single-step calculation on the local cluster (override anything)."""
        body: dict[str, Any] = {
            "name": f"sec-{uuid.uuid4().hex[:8]}",
            "cluster_id": self.cluster_id,
            "logical_queue": "default",
            "code": "generic",
            "configuration": {"kind": "single", "command": ["true"]},
        }
        body.update(overrides)
        return body


def tree_snapshot(root: Path) -> dict[str, str]:
    """Relative path -> sha256 (or ``<dir>``/``-> target``) of everything under ``root``."""
    out: dict[str, str] = {}
    if not root.exists():
        return out
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            out[rel] = "-> " + os.readlink(path)
        elif path.is_dir():
            out[rel] = "<dir>"
        else:
            try:
                out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
            except OSError as exc:  # unreadable: still part of the picture
                out[rel] = f"<unreadable {exc.errno}>"
    return out


def _seed(factory: sessionmaker[Session], scratch: Path) -> tuple[dict[str, Account], int, str]:
    from hpcgate.db.models import Cluster, QueueMapping
    from hpcgate.db.models.clusters import AccessMode
    from hpcgate.db.session import session_scope
    from hpcgate.domain.access import ApiKeyOwner, NotifyLevel, Role
    from hpcgate.services.api_keys import create_api_key
    from hpcgate.services.users import create_user

    tag = uuid.uuid4().hex[:6]
    accounts = {
        "admin": Account(f"admin.{tag}@example.org", "admin"),
        "moderator": Account(f"moderator.{tag}@example.org", "moderator"),
        "user": Account(f"user.{tag}@example.org", "user"),
        "other": Account(f"other.{tag}@example.org", "user"),
    }
    with session_scope(factory) as s:
        for acc in accounts.values():
            user = create_user(
                s,
                email=acc.email,
                password=acc.password,
                role=Role(acc.role),
                full_name=acc.role.title(),
                notify_level=NotifyLevel.ERROR,
            )
            s.flush()
            acc.id = user.id
        scratch.mkdir(parents=True, exist_ok=True)
        cluster = Cluster(
            name=f"local-sec-{tag}",
            description="this machine, local executor (security tests)",
            scheduler="local",
            access_mode=AccessMode.LOCAL,
            scratch_root=str(scratch),
            enabled=True,
            options={},
            cleanup_policy={},
        )
        cluster.queues = [QueueMapping(logical_queue="default", partition="local")]
        s.add(cluster)
        s.flush()
        cluster_id = cluster.id
        _, ml_key = create_api_key(
            s, owner_kind=ApiKeyOwner.ML_API, name="security-ml-api", cluster_id=None
        )
    return accounts, cluster_id, ml_key


@pytest.fixture(scope="module")
def security_settings_overrides() -> dict[str, Any]:
    """Override in a test module to change the stack's settings (merged, one level deep)."""
    return {}


@pytest.fixture(scope="module")
def security_stack(
    postgres_available: str,
    tmp_path_factory: pytest.TempPathFactory,
    security_settings_overrides: dict[str, Any],
) -> Iterator[SecurityStack]:
    from hpcgate.api.app import create_app
    from hpcgate.db import migrate

    root = tmp_path_factory.mktemp("security")
    data_dir = root / "data"
    data_dir.mkdir()
    scratch = root / "scratch"
    url = create_scratch_database("hpcgate_sec")
    engine: Engine | None = None
    try:
        migrate.upgrade(url)
        engine = create_engine(url, pool_size=10, max_overflow=10)
        factory = sessionmaker(engine, expire_on_commit=False)
        kwargs: dict[str, Any] = {
            "env": "test",
            "database": {"url": url},
            "auth": {"secret_key": SECRET, "cookie_secure": False, "login_rate_per_minute": 1000},
            "paths": {"data_dir": str(data_dir)},
        }
        for key, value in security_settings_overrides.items():
            if isinstance(value, dict) and isinstance(kwargs.get(key), dict):
                kwargs[key] = {**kwargs[key], **value}
            else:
                kwargs[key] = value
        settings = Settings(**kwargs)
        accounts, cluster_id, ml_key = _seed(factory, scratch)
        app = create_app(settings, engine=engine)
        with live_server(app) as base:
            yield SecurityStack(
                base_url=base,
                settings=settings,
                engine=engine,
                factory=factory,
                accounts=accounts,
                cluster_id=cluster_id,
                data_dir=data_dir,
                scratch=scratch,
                ml_api_key=ml_key,
                database_url=url,
            )
    finally:
        if engine is not None:
            engine.dispose()
        drop_database(url)


@pytest.fixture(scope="module")
def security_worker(
    security_stack: SecurityStack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[subprocess.Popen[bytes]]:
    """A real ``hpcgate worker`` on the stack's database (the local executor runs jobs)."""
    s = security_stack
    log_path = tmp_path_factory.mktemp("security-worker") / "worker.log"
    env = {
        **os.environ,
        "HPCGATE_ENV": "test",
        "HPCGATE_DATABASE_URL": s.database_url,
        "HPCGATE_AUTH__SECRET_KEY": SECRET,
        "HPCGATE_PATHS__DATA_DIR": str(s.data_dir),
        "HPCGATE_SCHEDULER__POLL_INTERVAL_S": "1",
        "HPCGATE_SCHEDULER__HEARTBEAT_INTERVAL_S": "2",
        "HPCGATE_WORKER_NAME": f"sec-worker-{uuid.uuid4().hex[:8]}",
    }
    env.pop("HPCGATE_CONFIG_FILE", None)
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "hpcgate.cli", "worker"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=str(REPO),
        start_new_session=True,
    )
    s.extra["worker_log"] = log_path
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        log.close()
