"""Cluster-wide telemetry on the real Slurm (issue 18): another user's jobs, submitted with
``sbatch`` directly (not through hpcgate), are counted per partition in the heartbeats of the
worker and of an agent; the stored counts equal ``squeue`` run here, node states equal
``sinfo``; the API, the Prometheus gauges and the lag histograms (after real jobs ran, in
both dispatch modes) say the same; the worker's and the agent's exporters are scraped too.
Other tests share the cluster: a comparison is made when
``squeue`` read the same before and after the heartbeat.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import func, select

from hpcgate.agent.client import AgentClient
from hpcgate.agent.config import AgentConfig
from hpcgate.agent.loop import Agent
from hpcgate.api.app import create_app
from hpcgate.db.models import ClusterNode, PartitionSample, User
from hpcgate.db.models.clusters import AccessMode
from hpcgate.db.session import session_scope
from hpcgate.domain.access import ApiKeyOwner
from hpcgate.metrics.exporter import serve_metrics, timed
from hpcgate.services.api_keys import create_api_key
from hpcgate.services.cluster_ticks import harvest_tick, heartbeat_tick
from hpcgate.services.connections import ClusterConnections
from hpcgate.services.dispatch import dispatch_tick
from tests.helpers.api import auth_headers
from tests.helpers.ci import missing
from tests.helpers.engine_env import EngineEnv, engine_env
from tests.helpers.live_api import free_port, live_server
from tests.integration.test_metrics import _scrape, _value

pytestmark = [pytest.mark.integration, pytest.mark.slurm, pytest.mark.timeout(300)]

TOKEN = "scrape-" + uuid.uuid4().hex
OTHER_USER = "hpctest"
Counts = dict[str, tuple[int, int]]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, postgres_available: str) -> Iterator[EngineEnv]:
    if shutil.which("sbatch") is None:
        missing("Slurm is not installed (scripts/services/slurm.sh)")
    with engine_env(tmp_path_factory.mktemp("ctel"), "hpcgate_clustertel") as e:
        yield e


@pytest.fixture(scope="module")
def api(env: EngineEnv) -> Iterator[str]:
    settings = env.settings.model_copy(
        update={"metrics": env.settings.metrics.model_copy(update={"token": SecretStr(TOKEN)})}
    )
    with live_server(create_app(settings, engine=env.engine)) as base:
        yield base


def _as_other_user() -> list[str]:
    """``sudo -n -u hpctest`` when we are root and the account exists, else ourselves."""
    try:
        pwd.getpwnam(OTHER_USER)
    except KeyError:
        return []
    return ["sudo", "-n", "-u", OTHER_USER] if os.geteuid() == 0 else []


@pytest.fixture(scope="module")
def foreign_jobs() -> Iterator[list[str]]:
    """One running-or-waiting job in ``long`` and one held (always pending) in ``debug``."""
    prefix, ids = _as_other_user(), []
    for args in (["-p", "long"], ["-p", "debug", "--hold"]):
        out = subprocess.run(
            [*prefix, "sbatch", "--parsable", "-t", "5", "-o", "/dev/null", "-J", "ctel-other",
             "--chdir", "/tmp", *args, "--wrap", "sleep 240"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        ids.append(out.stdout.strip().split(";")[0])
    yield ids
    subprocess.run(["scancel", *ids], check=False)


def _squeue() -> Counts:
    """What squeue says right now, counted here (every user, array tasks one by one)."""
    out = subprocess.run(
        ["squeue", "--all", "--noheader", "--array", "-o", "%P|%T"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    counts: dict[str, list[int]] = {}
    for line in out.splitlines():
        part, state = line.split("|")
        row = counts.setdefault(part.split(",")[0], [0, 0])
        if state == "PENDING":
            row[0] += 1
        elif state in ("RUNNING", "COMPLETING", "CONFIGURING"):
            row[1] += 1
    return {p: (a, b) for p, (a, b) in counts.items() if a or b}


def _sinfo() -> dict[str, str]:
    out = subprocess.run(
        ["sinfo", "-N", "-h", "-o", "%N|%T"], capture_output=True, text=True, check=True
    ).stdout
    return dict(line.split("|") for line in out.splitlines() if line.strip())


def _stored(env: EngineEnv, cid: int) -> tuple[Counts, dict[str, str]]:
    with session_scope(env.factory) as s:
        latest = s.scalar(select(func.max(PartitionSample.ts)).where(
            PartitionSample.cluster_id == cid))  # fmt: skip
        rows = s.execute(select(PartitionSample.partition, PartitionSample.pending,
                                PartitionSample.running).where(
            PartitionSample.cluster_id == cid, PartitionSample.ts == latest)).all()  # fmt: skip
        nodes = s.execute(select(ClusterNode.node, ClusterNode.state).where(
            ClusterNode.cluster_id == cid)).all()  # fmt: skip
    return {p: (a, b) for p, a, b in rows}, {n: st for n, st in nodes}


def _beat_until_steady(env: EngineEnv, cid: int, beat: object) -> tuple[Counts, dict[str, str]]:
    """Heartbeat until squeue and sinfo read the same before and after it (other tests'
    jobs come and go); then the stored figures must equal them."""
    for _ in range(20):
        queue, nodes = _squeue(), _sinfo()
        beat()  # type: ignore[operator]
        if _squeue() == queue and _sinfo() == nodes:
            stored, stored_nodes = _stored(env, cid)
            assert {p: c for p, c in stored.items() if c != (0, 0)} == queue
            assert stored_nodes == nodes
            assert {"debug", "long"} <= set(stored)  # empty partitions listed at zero
            return stored, stored_nodes
        time.sleep(0.5)
    pytest.fail("the queue never held still for one heartbeat")


def _headers(env: EngineEnv) -> dict[str, str]:
    with session_scope(env.factory) as s:
        user = s.get(User, env.user_id)
        assert user is not None
        return auth_headers(user, env.settings)


def _check_api_and_gauges(env: EngineEnv, api: str, cid: int, name: str) -> None:
    stored, nodes = _stored(env, cid)
    r = httpx.get(f"{api}/clusters/{cid}/telemetry", headers=_headers(env), timeout=10)
    assert r.status_code == 200, r.text
    body = r.json()
    assert {p["partition"]: (p["pending"], p["running"]) for p in body["partitions"]} == stored
    assert {n["node"]: n["state"] for n in body["nodes"]} == nodes
    assert body["series"]
    assert {pt["partition"] for pt in body["series"]} >= set(stored)
    time.sleep(5.1)  # past the collector's cache
    metrics = _scrape(f"{api}/metrics", Authorization=f"Bearer {TOKEN}")
    for part, (pending, running) in stored.items():
        labels = {"cluster": name, "partition": part}
        assert _value(metrics, "hpcgate_partition_jobs", state="pending", **labels) == pending
        assert _value(metrics, "hpcgate_partition_jobs", state="running", **labels) == running
    assert _value(metrics, "hpcgate_nodes", cluster=name) == len(nodes)


def _run_one_job(env: EngineEnv, cid: int, tick: object) -> None:
    calc = env.create(name=f"lag-{uuid.uuid4().hex[:6]}", cluster_id=cid, logical_queue="default",
                      code="generic", configuration={"kind": "single", "command": ["true"],
                                                     "resources": {"walltime_s": 60}})  # fmt: skip
    final = env.run_until_settled(calc, tick)  # type: ignore[arg-type]
    assert final.state.value == "completed", final.state_reason


def test_worker_heartbeat_counts_every_users_jobs(
    env: EngineEnv, api: str, foreign_jobs: list[str], tmp_path: Path
) -> None:
    name = f"ctel-w-{uuid.uuid4().hex[:6]}"
    cid = env.add_cluster(name, scheduler="slurm", access_mode=AccessMode.LOCAL,
                          scratch_root=str(tmp_path / "scratch"))  # fmt: skip
    conns = ClusterConnections()
    try:
        stored, _ = _beat_until_steady(env, cid, lambda: heartbeat_tick(env.factory, conns))
        assert stored["debug"][0] >= 1  # the other user's held job
        _check_api_and_gauges(env, api, cid, name)
        # the lag histograms of the worker, scraped from its exporter, after a real job
        port = free_port()
        serve_metrics("127.0.0.1", port)
        before = _scrape(f"http://127.0.0.1:{port}/metrics")

        def tick() -> None:
            dispatch_tick(env.engine, env.factory, conns, env.settings, claimed_by="ctel")
            harvest_tick(env.engine, env.factory, conns, env.settings)

        _run_one_job(env, cid, tick)
        after = _scrape(f"http://127.0.0.1:{port}/metrics")
    finally:
        conns.close()
    for lag in ("hpcgate_dispatch_lag_seconds_count", "hpcgate_harvest_lag_seconds_count"):
        assert _value(after, lag) >= _value(before, lag) + 1, lag


def test_agent_heartbeat_counts_every_users_jobs(
    env: EngineEnv, api: str, foreign_jobs: list[str], tmp_path: Path
) -> None:
    name = f"ctel-a-{uuid.uuid4().hex[:6]}"
    cid = env.add_cluster(name, scheduler="slurm", access_mode=AccessMode.AGENT,
                          scratch_root=str(tmp_path / "scratch"))  # fmt: skip
    with session_scope(env.factory) as s:
        _, key = create_api_key(s, owner_kind=ApiKeyOwner.CLUSTER, name="agent", cluster_id=cid)
    state = tmp_path / "agent-state"
    config = AgentConfig(api_url=api, api_key=key, cluster=name, scheduler="slurm",
                         scratch_root=tmp_path / "scratch", state_dir=state,
                         name="ctel")  # fmt: skip
    agent = Agent(config, AgentClient(api, key, state_dir=state))
    port = free_port()  # the agent's exporter (agent.yaml metrics_port), as its CLI starts it
    serve_metrics("127.0.0.1", port)
    beats = "hpcgate_tick_duration_seconds_count"
    before = _value(_scrape(f"http://127.0.0.1:{port}/metrics"), beats, process="agent",
                    tick="heartbeat")  # fmt: skip
    stored, _ = _beat_until_steady(env, cid, timed("agent", "heartbeat", agent.heartbeat))
    assert stored["debug"][0] >= 1
    after = _value(_scrape(f"http://127.0.0.1:{port}/metrics"), beats, process="agent",
                   tick="heartbeat")  # fmt: skip
    assert after >= before + 1
    _check_api_and_gauges(env, api, cid, name)
    # agents' submissions and ends are recorded by the API: its /metrics has the lags
    auth = {"Authorization": f"Bearer {TOKEN}"}
    before = _scrape(f"{api}/metrics", **auth)

    def tick() -> None:
        agent.pull_and_submit()
        agent.harvest()

    _run_one_job(env, cid, tick)
    after = _scrape(f"{api}/metrics", **auth)
    for lag in ("hpcgate_dispatch_lag_seconds_count", "hpcgate_harvest_lag_seconds_count"):
        assert _value(after, lag) >= _value(before, lag) + 1, lag


def test_an_agent_without_partitions_is_still_accepted(env: EngineEnv, api: str,
                                                       tmp_path: Path) -> None:  # fmt: skip
    cid = env.add_cluster(f"ctel-old-{uuid.uuid4().hex[:6]}", scheduler="slurm",
                          access_mode=AccessMode.AGENT, scratch_root=str(tmp_path))  # fmt: skip
    with session_scope(env.factory) as s:
        _, key = create_api_key(s, owner_kind=ApiKeyOwner.CLUSTER, name="old", cluster_id=cid)
    headers = {"Authorization": f"Bearer {key}"}
    old = {"ts": "2026-12-07T10:00:00+00:00", "queue_depth": 1, "running_jobs": 0,
           "sample_key": uuid.uuid4().hex, "nodes": [{"name": "n1", "state": "idle",
           "cpus_total": 4, "cpus_allocated": 0, "memory_total_mb": 100}]}  # fmt: skip
    r = httpx.post(f"{api}/agent/heartbeats", json={"samples": [old]}, headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["stored"] == 1
    stored, nodes = _stored(env, cid)
    assert stored == {}
    assert nodes == {"n1": "idle"}
    bad = {**old, "sample_key": uuid.uuid4().hex, "partitions": [{"partition": 3}]}
    r = httpx.post(f"{api}/agent/heartbeats", json={"samples": [bad]}, headers=headers)
    assert 400 <= r.status_code < 500
