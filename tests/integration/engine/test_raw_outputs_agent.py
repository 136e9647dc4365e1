"""Raw outputs of an agent cluster through the fetch relay, with a real ``hpcgate agent``
process (no inbound port: it answers through its long-poll) and a real Slurm job:
the directory listed, a file downloaded in several relay chunks, a symlink planted by the
job refused on the cluster side, the job's stdout followed live until the step ends, and
a clear 504 once the agent is gone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from hpcgate.api.app import create_app
from hpcgate.db.models import User
from hpcgate.db.models.clusters import AccessMode
from hpcgate.db.session import session_scope
from hpcgate.domain.access import ApiKeyOwner
from hpcgate.domain.states import StepState
from hpcgate.services.api_keys import create_api_key
from hpcgate.settings import OutputSettings
from tests.helpers.api import auth_headers
from tests.helpers.ci import require_tool
from tests.helpers.engine_env import EngineEnv, engine_env
from tests.helpers.live_api import live_server

pytestmark = [pytest.mark.integration, pytest.mark.slurm]
REPO = Path(__file__).resolve().parents[3]
SIZE = 300_000  # five relay chunks of 64 KiB


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineEnv]:
    require_tool("sbatch", install_hint="scripts/services/slurm.sh")
    with engine_env(tmp_path_factory.mktemp("outputs-agent"), "hpcgate_outagent") as e:
        yield e


def _agent(
    tmp_path: Path, base: str, key: str, name: str, scratch: Path
) -> subprocess.Popen[bytes]:
    cfg = tmp_path / "agent.yaml"
    cfg.write_text(yaml.safe_dump({
        "api_url": base, "api_key": key, "cluster": name, "name": "relay",
        "scheduler": "slurm", "scratch_root": str(scratch), "state_dir": str(tmp_path / "state"),
        "intervals": {"pull_s": 1, "harvest_s": 1, "pull_wait_s": 5, "jitter": 0},
    }))  # fmt: skip
    log = open(tmp_path / "agent.log", "wb")  # noqa: SIM115 - the process owns it
    return subprocess.Popen(
        [sys.executable, "-m", "hpcgate.cli", "agent", "--config", str(cfg)],
        cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
        env={k: v for k, v in os.environ.items() if not k.startswith("HPCGATE_")},
    )  # fmt: skip


def _wait_state(env: EngineEnv, calc_id: int, states: set[StepState], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if env.steps(calc_id)[0].state in states:
            return
        time.sleep(0.2)
    raise AssertionError(f"step never reached {states}: {env.steps(calc_id)[0].state}")


def test_outputs_through_a_real_agent(env: EngineEnv, tmp_path: Path) -> None:
    name = f"agent-{uuid.uuid4().hex[:6]}"
    scratch = tmp_path / "scratch"
    cid = env.add_cluster(
        name, scheduler="slurm", access_mode=AccessMode.AGENT, scratch_root=str(scratch)
    )
    with session_scope(env.factory) as s:
        _, key = create_api_key(s, owner_kind=ApiKeyOwner.CLUSTER, name="a", cluster_id=cid)
        user = s.get(User, env.user_id)
        assert user is not None
        s.expunge(user)
    secret = tmp_path / "secret.txt"
    secret.write_text("agent-side secret")
    flag = tmp_path / "go"
    script = (
        f"head -c {SIZE} /dev/urandom > data.bin; ln -s {secret} leak; i=0; "
        f"while [ ! -e {flag} ]; do echo tick $i; i=$((i+1)); sleep 0.3; done; echo finished"
    )
    calc_id = env.create(
        name="relay", cluster_id=cid, logical_queue="default", code="generic",
        configuration={"command": ["bash", "-c", script], "resources": {"walltime_s": 300}},
    )  # fmt: skip
    settings = env.settings.model_copy(
        update={"outputs": OutputSettings(relay_chunk_kb=64, relay_timeout_s=4)}
    )
    headers = auth_headers(user, settings)
    with live_server(create_app(settings, engine=env.engine)) as base:
        agent = _agent(tmp_path, base, key, name, scratch)
        try:
            _wait_state(env, calc_id, {StepState.RUNNING}, 120)
            step_url = f"{base}/calculations/{calc_id}/steps/0"
            t0 = time.monotonic()
            r = httpx.get(f"{step_url}/outputs", headers=headers, timeout=30)
            assert r.status_code == 200, r.text
            assert time.monotonic() - t0 < 3  # the long-poll woke the agent
            entries = {e["name"]: e for e in r.json()["entries"]}
            assert entries["data.bin"]["size"] == SIZE
            assert entries["leak"]["kind"] == "link"

            workdir = Path(str(env.steps(calc_id)[0].workdir))
            r = httpx.get(f"{step_url}/outputs/data.bin", headers=headers, timeout=30)
            assert r.status_code == 200
            assert r.content == (workdir / "data.bin").read_bytes()

            r = httpx.get(f"{step_url}/outputs/leak", headers=headers, timeout=30)
            assert r.status_code == 422, r.text
            assert "agent-side secret" not in r.text
            r = httpx.get(f"{step_url}/outputs/nothing.here", headers=headers, timeout=30)
            assert r.status_code == 404

            seen: list[str] = []

            def follow() -> None:
                with httpx.stream("GET", f"{step_url}/tail", headers=headers, timeout=60) as rs:
                    for line in rs.iter_lines():
                        if line.startswith("data: "):
                            seen.append(line[6:])
                            if line == "data: tick 2":
                                flag.touch()

            reader = threading.Thread(target=follow, daemon=True)
            reader.start()
            reader.join(90)
            assert not reader.is_alive(), "the tail did not end with the step"
            assert "tick 0" in seen
            assert "tick 2" in seen
            assert "finished" in seen
            assert '{"state": "finished"}' in seen or '{"state": "harvested"}' in seen
        finally:
            agent.send_signal(signal.SIGTERM)
            agent.wait(30)
        t0 = time.monotonic()
        r = httpx.get(f"{step_url}/outputs", headers=headers, timeout=30)
        assert r.status_code == 504, r.text
        assert "agent" in r.json()["detail"]
        assert time.monotonic() - t0 < 8
