"""Binary inputs arrive byte for byte in the step directories, in local, SSH and agent mode.

Each case uploads, through the live API (multipart), bytes that are not UTF-8 (random
bytes) and a real SIESTA electrode ``.TSHS`` read from the shared fixtures, as a 2-point
sweep; the dispatcher (worker or agent) stages them into every task directory and the job
itself prints their sha256. Real components: PostgreSQL, uvicorn on loopback, the local
executor, the loopback sshd with the one-node Slurm (SSH mode), the agent's HTTP client.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from hpcgate.agent.client import AgentClient
from hpcgate.agent.config import AgentConfig
from hpcgate.agent.loop import Agent
from hpcgate.api.app import create_app
from hpcgate.db.models import InputBlob, User
from hpcgate.db.models.clusters import AccessMode
from hpcgate.db.session import session_scope
from hpcgate.domain.access import ApiKeyOwner
from hpcgate.domain.states import CalculationState
from hpcgate.services.api_keys import create_api_key
from hpcgate.services.cluster_ticks import harvest_tick
from hpcgate.services.connections import ClusterConnections
from hpcgate.services.dispatch import dispatch_tick
from tests.helpers.api import auth_headers
from tests.helpers.ci import missing
from tests.helpers.engine_env import EngineEnv, engine_env
from tests.helpers.fixtures_path import require_siesta_fixture
from tests.helpers.live_api import live_server
from tests.helpers.ssh_env import require_ssh_env

pytestmark = pytest.mark.integration

TSHS = "graphene_transiesta_siesta5/electrode/electrode.TSHS"
TASKS = 2


@dataclass
class Mode:
    name: str
    cluster_id: int
    tick: Callable[[], None]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, postgres_available: str) -> Iterator[EngineEnv]:
    with engine_env(tmp_path_factory.mktemp("blobs"), "hpcgate_blobs") as e:
        yield e


@pytest.fixture(scope="module")
def api(env: EngineEnv) -> Iterator[str]:
    with live_server(create_app(env.settings, engine=env.engine)) as base:
        yield base


@pytest.fixture(params=["local", pytest.param("ssh", marks=pytest.mark.slurm), "agent"])
def mode(
    request: pytest.FixtureRequest, env: EngineEnv, api: str, tmp_path: Path
) -> Iterator[Mode]:
    tag = uuid.uuid4().hex[:8]
    if request.param == "local":
        cid = env.add_cluster(
            f"local-{tag}",
            scheduler="local",
            access_mode=AccessMode.LOCAL,
            scratch_root=str(tmp_path / "scratch"),
            queues={"default": "local"},
        )
        conns = ClusterConnections()

        def tick() -> None:
            dispatch_tick(env.engine, env.factory, conns, env.settings, claimed_by="w")
            harvest_tick(env.engine, env.factory, conns, env.settings)

        yield Mode("local", cid, tick)
        conns.close()
    elif request.param == "ssh":
        ssh = require_ssh_env()
        if shutil.which("sbatch") is None:
            missing("Slurm is not installed (scripts/services/slurm.sh)")
        cid = env.add_cluster(
            f"ssh-{tag}",
            scheduler="slurm",
            access_mode=AccessMode.SSH,
            scratch_root=f"{ssh.scratch}/blobs-{tag}",
            host=ssh.host,
            port=ssh.port,
            login_user=ssh.user,
            options={"key_filename": ssh.key, "known_hosts": ssh.known_hosts},
        )
        conns = ClusterConnections()

        def ssh_tick() -> None:
            dispatch_tick(env.engine, env.factory, conns, env.settings, claimed_by="w")
            harvest_tick(env.engine, env.factory, conns, env.settings)

        yield Mode("ssh", cid, ssh_tick)
        conns.close()
        shutil.rmtree(f"{ssh.scratch}/blobs-{tag}", ignore_errors=True)
    else:
        cid = env.add_cluster(
            f"agent-{tag}",
            scheduler="local",
            access_mode=AccessMode.AGENT,
            scratch_root=str(tmp_path / "scratch"),
            queues={"default": "local"},
        )
        with session_scope(env.factory) as s:
            _, key = create_api_key(s, owner_kind=ApiKeyOwner.CLUSTER, name="a", cluster_id=cid)
        state = tmp_path / "agent-state"
        config = AgentConfig(
            api_url=api,
            api_key=key,
            cluster=f"agent-{tag}",
            scheduler="local",
            scratch_root=tmp_path / "scratch",
            state_dir=state,
            name="test",
        )
        agent = Agent(config, AgentClient(api, key, state_dir=state))

        def agent_tick() -> None:
            agent.pull_and_submit()
            agent.harvest()

        yield Mode("agent", cid, agent_tick)
        agent.adapter.runner.close()
        agent.client.close()
        # the agent fetched each blob once and keeps it, verified, under its sha256
        cached = sorted(p.name for p in (state / "blobs").rglob("*") if p.is_file())
        assert len(cached) == 2


def test_binary_inputs_are_staged_byte_for_byte(mode: Mode, env: EngineEnv, api: str) -> None:
    tshs = require_siesta_fixture(TSHS).read_bytes()
    noise = os.urandom(200_000) + b"\x80\xff\x00\r\n"
    want = {
        "electrode.TSHS": hashlib.sha256(tshs).hexdigest(),
        "noise.bin": hashlib.sha256(noise).hexdigest(),
    }
    with session_scope(env.factory) as s:
        user = s.get(User, env.user_id)
        assert user is not None
        headers = auth_headers(user, env.settings)
    body = {
        "name": f"staging {mode.name}",
        "cluster_id": mode.cluster_id,
        "logical_queue": "default",
        "code": "generic",
        "configuration": {
            "kind": "sweep",
            "variants": [{"label": f"p{i}", "parameters": {"x": i}} for i in range(TASKS)],
            "command": ["sh", "-c", "sha256sum -- electrode.TSHS noise.bin > sums.txt"],
            "resources": {"walltime_s": 120},
        },
    }
    r = httpx.post(
        f"{api}/calculations/upload",
        headers=headers,
        files=[
            ("calculation", (None, json.dumps(body).encode(), "application/json")),
            ("file", ("electrode.TSHS", tshs, "application/octet-stream")),
            ("file", ("noise.bin", noise, "application/octet-stream")),
        ],
        timeout=60,
    )
    assert r.status_code == 201, r.text
    calc_id = r.json()["id"]
    with session_scope(env.factory) as s:
        stored = s.scalar(
            select(func.count()).select_from(InputBlob).where(InputBlob.sha256.in_(want.values()))
        )
    assert stored == 2  # once each, however many tasks use them

    calc = env.run_until_settled(calc_id, mode.tick, timeout=180)
    (step,) = env.steps(calc_id)
    assert calc.state is CalculationState.COMPLETED, [(t.state, t.state_reason) for t in step.tasks]
    for i in range(TASKS):
        task_dir = Path(step.workdir or "") / f"task-{i}"
        for name, digest in want.items():
            assert hashlib.sha256((task_dir / name).read_bytes()).hexdigest() == digest
        lines = (task_dir / "sums.txt").read_text().splitlines()
        printed = {name: digest for digest, name in (ln.split(maxsplit=1) for ln in lines)}
        assert printed == want  # what the job itself read
