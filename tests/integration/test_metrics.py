"""Prometheus metrics, scraped over HTTP from a live API (uvicorn, real PostgreSQL) and from a
worker's exporter, and parsed with the Prometheus text parser (prometheus_client.parser).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from sqlalchemy import func, insert, select

from hpcgate.api.app import create_app
from hpcgate.db.models import Calculation, Cluster, HeartbeatSample, User
from hpcgate.db.models.clusters import AccessMode
from hpcgate.db.session import session_scope
from hpcgate.domain.access import NotifyLevel, Role
from hpcgate.metrics.exporter import serve_metrics
from hpcgate.services.users import create_user
from hpcgate.worker import _guarded
from tests.helpers.api import auth_headers
from tests.helpers.engine_env import EngineEnv, engine_env
from tests.helpers.live_api import free_port, live_server

pytestmark = pytest.mark.integration

TOKEN = "scrape-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, postgres_available: str) -> Iterator[EngineEnv]:
    with engine_env(tmp_path_factory.mktemp("metrics"), "hpcgate_metrics") as e:
        yield e


@pytest.fixture(scope="module")
def api(env: EngineEnv) -> Iterator[str]:
    settings = env.settings.model_copy(
        update={"metrics": env.settings.metrics.model_copy(update={"token": SecretStr(TOKEN)})}
    )
    with live_server(create_app(settings, engine=env.engine)) as base:
        yield base


def _scrape(url: str, **headers: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    r = httpx.get(url, headers=headers, timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(r.text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return out


def _value(metrics: dict, name: str, **labels: str) -> float:  # type: ignore[type-arg]
    return sum(
        v for lab, v in metrics.get(name, []) if all(lab.get(k) == x for k, x in labels.items())
    )


def _headers(env: EngineEnv, role: Role) -> dict[str, str]:
    with session_scope(env.factory) as s:
        user = create_user(
            s,
            email=f"{uuid.uuid4().hex[:8]}@example.org",
            password="a-good-password",
            role=role,
            notify_level=NotifyLevel.INFO,
        )
        s.flush()
        return auth_headers(user, env.settings)


def test_metrics_need_the_token_or_an_admin(env: EngineEnv, api: str) -> None:
    assert httpx.get(f"{api}/metrics").status_code == 401
    wrong = httpx.get(f"{api}/metrics", headers={"Authorization": "Bearer not-the-token"})
    assert wrong.status_code == 401
    assert httpx.get(f"{api}/metrics", headers=_headers(env, Role.USER)).status_code == 403
    assert httpx.get(f"{api}/metrics", headers=_headers(env, Role.MODERATOR)).status_code == 403
    assert httpx.get(f"{api}/metrics", headers=_headers(env, Role.ADMIN)).status_code == 200
    _scrape(f"{api}/metrics", Authorization=f"Bearer {TOKEN}")


def test_request_latency_is_labelled_by_route_template(env: EngineEnv, api: str) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with session_scope(env.factory) as s:
        user = s.get(User, env.user_id)
        assert user is not None
        headers = auth_headers(user, env.settings)
    name = "hpcgate_http_request_duration_seconds_count"
    before = _scrape(f"{api}/metrics", **auth)
    for i in range(3):
        assert httpx.get(f"{api}/calculations/{900000 + i}", headers=headers).status_code == 404
    assert httpx.get(f"{api}/no/such/{uuid.uuid4().hex}").status_code == 404
    after = _scrape(f"{api}/metrics", **auth)
    route = "/calculations/{calc_id}"
    assert (
        _value(after, name, route=route, status="4xx")
        - _value(before, name, route=route, status="4xx")
        == 3
    )
    assert _value(after, name, route="unmatched") - _value(before, name, route="unmatched") == 1
    assert not any("no/such" in lab.get("route", "") for lab, _ in after[name])


def test_state_gauges_match_the_database(env: EngineEnv, api: str, tmp_path: Path) -> None:
    cid = env.add_cluster(f"m-{uuid.uuid4().hex[:6]}", scheduler="local",
                          access_mode=AccessMode.LOCAL, scratch_root=str(tmp_path),
                          queues={"default": "local"})  # fmt: skip
    for i in range(2):
        env.create(name=f"metrics {i}", cluster_id=cid, logical_queue="default", code="generic",
                   configuration={"kind": "single", "command": ["true"]})  # fmt: skip
    beat = datetime.now(UTC) - timedelta(seconds=5)
    with session_scope(env.factory) as s:
        s.execute(insert(HeartbeatSample), [dict(ts=beat, cluster_id=cid, scope="cluster",
                  queue_depth=17, running_jobs=5, cpus_allocated=40, cpus_total=64)])  # fmt: skip
        states = dict(
            s.execute(select(Calculation.state, func.count()).group_by(Calculation.state)).all()
        )
        cluster = s.get(Cluster, cid)
        assert cluster is not None
        cluster_name = cluster.name
    time.sleep(5.1)  # past the collector's cache
    metrics = _scrape(f"{api}/metrics", Authorization=f"Bearer {TOKEN}")
    for state, count in states.items():
        assert _value(metrics, "hpcgate_calculations", state=state.value) == count
    assert _value(metrics, "hpcgate_cluster_queue_depth", cluster=cluster_name) == 17
    assert _value(metrics, "hpcgate_cluster_running_jobs", cluster=cluster_name) == 5
    assert _value(metrics, "hpcgate_cluster_cpus_total", cluster=cluster_name) == 64
    # two calculations wait for a dispatcher (no worker runs here): the backlog has an age
    assert _value(metrics, "hpcgate_dispatch_backlog_age_seconds") > 0


def test_a_workers_exporter_reports_its_ticks() -> None:
    port = free_port()
    serve_metrics("127.0.0.1", port)

    def broken() -> None:
        raise RuntimeError("a failing tick")

    name = f"t{uuid.uuid4().hex[:6]}"
    _guarded(name, lambda: None)()
    _guarded(name + "x", broken)()  # logged, counted, not raised
    metrics = _scrape(f"http://127.0.0.1:{port}/metrics")
    assert _value(metrics, "hpcgate_tick_duration_seconds_count", process="worker", tick=name) == 1
    assert _value(metrics, "hpcgate_tick_failures_total", process="worker", tick=name + "x") == 1
    assert _value(metrics, "hpcgate_tick_failures_total", process="worker", tick=name) == 0
