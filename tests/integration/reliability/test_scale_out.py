"""Scale-out: two workers, and two API processes with two agents, against one PostgreSQL.

No calculation may be submitted twice and no periodic tick may duplicate work. Checked on
the real Slurm by counting the jobs of every deterministic job name.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
import yaml
from sqlalchemy import select

from hpcgate.db.models import Calculation, Step
from hpcgate.db.models.clusters import AccessMode
from hpcgate.db.session import session_scope
from hpcgate.domain.access import ApiKeyOwner
from hpcgate.domain.states import FINAL_CALCULATION_STATES, CalculationState
from hpcgate.services.api_keys import create_api_key
from tests.helpers.ci import missing
from tests.helpers.engine_env import EngineEnv, engine_env
from tests.helpers.live_api import free_port
from tests.integration.engine.test_crash_recovery import slurm_jobs_named

pytestmark = [pytest.mark.integration, pytest.mark.slurm]
REPO = Path(__file__).resolve().parents[3]
N_CALCS = 12


@pytest.fixture
def env(tmp_path: Path) -> Iterator[EngineEnv]:
    if shutil.which("sbatch") is None:
        missing("Slurm is not installed (scripts/services/slurm.sh)")
    with engine_env(tmp_path, "hpcgate_scale") as e:
        yield e


def _env_vars(env: EngineEnv, **extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("HPCGATE_")}
    return {
        **base,
        "HPCGATE_ENV": "test",
        "HPCGATE_DATABASE_URL": env.url,
        "HPCGATE_SECRET_KEY": "test-secret-key-0123456789abcdef",
        "HPCGATE_SCHEDULER__POLL_INTERVAL_S": "1",
        "HPCGATE_SCHEDULER__HEARTBEAT_INTERVAL_S": "5",
        # Jobs as this user: their scratch is in pytest's tmp dir, 0700 to root (issue 15's
        # job account could not reach it; tests/security/test_job_identity.py covers that).
        "HPCGATE_LOCAL__JOB_USER": "",
        **extra,
    }


def _spawn(
    stack: ExitStack, argv: list[str], env: dict[str, str], log: Path
) -> subprocess.Popen[bytes]:
    fh = stack.enter_context(log.open("wb"))
    proc = subprocess.Popen(
        argv, cwd=REPO, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
    )

    def stop() -> None:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)

    stack.callback(stop)
    return proc


def _create_chains(env: EngineEnv, cluster_id: int) -> list[int]:
    """Calculations with mixed priorities: only a moderator may set one (issue 15 item 4)."""
    from hpcgate.db.models import User
    from hpcgate.db.session import session_scope
    from hpcgate.domain.access import Role

    with session_scope(env.factory) as s:
        user = s.get(User, env.user_id)
        assert user is not None
        user.role = Role.MODERATOR
    return [
        env.create(
            name=f"scale {i}",
            cluster_id=cluster_id,
            logical_queue="default",
            code="generic",
            priority=i % 3,
            configuration={
                "kind": "chain",
                "command": ["true"],
                "variants": [{"label": f"s{j}"} for j in range(2)],
                "resources": {"walltime_s": 120},
            },
        )
        for i in range(N_CALCS)
    ]


def _wait_all(env: EngineEnv, ids: list[int], timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with session_scope(env.factory) as s:
            states = list(s.scalars(select(Calculation.state).where(Calculation.id.in_(ids))))
        if all(st in FINAL_CALCULATION_STATES for st in states):
            break
        time.sleep(1)
    with session_scope(env.factory) as s:
        states = list(s.scalars(select(Calculation.state).where(Calculation.id.in_(ids))))
    assert states == [CalculationState.COMPLETED] * len(ids), states


def _assert_each_job_once(env: EngineEnv, ids: list[int]) -> None:
    with session_scope(env.factory) as s:
        names = list(s.scalars(select(Step.job_name).where(Step.calculation_id.in_(ids))))
    counts = slurm_jobs_named(names)
    duplicated = {n: c for n, c in counts.items() if c != 1}
    missing = set(names) - set(counts)
    assert not duplicated, duplicated
    assert not missing, missing


def test_two_workers_never_submit_twice(env: EngineEnv, tmp_path: Path) -> None:
    cid = env.add_cluster(
        "shared-login",
        scheduler="slurm",
        access_mode=AccessMode.LOCAL,
        scratch_root=str(tmp_path / "scratch"),
    )
    ids = _create_chains(env, cid)
    with ExitStack() as stack:
        for w in ("a", "b"):
            _spawn(
                stack,
                [sys.executable, "-m", "hpcgate.cli", "worker"],
                _env_vars(env, HPCGATE_WORKER_NAME=f"worker-{w}"),
                tmp_path / f"worker-{w}.log",
            )
        _wait_all(env, ids)
    _assert_each_job_once(env, ids)
    with session_scope(env.factory) as s:
        claimers = set(s.scalars(select(Calculation.claimed_by).where(Calculation.id.in_(ids))))
    assert claimers <= {"worker-a", "worker-b"}


def test_two_apis_and_two_agents_never_submit_twice(env: EngineEnv, tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    cid = env.add_cluster(
        "agent-shared", scheduler="slurm", access_mode=AccessMode.AGENT, scratch_root=str(scratch)
    )
    with session_scope(env.factory) as s:
        _, key = create_api_key(s, owner_kind=ApiKeyOwner.CLUSTER, name="k", cluster_id=cid)
    ids = _create_chains(env, cid)
    with ExitStack() as stack:
        bases = []
        for i in range(2):
            port = free_port()
            _spawn(
                stack,
                [sys.executable, "-m", "hpcgate.cli", "serve", "--port", str(port)],
                _env_vars(env),
                tmp_path / f"api-{i}.log",
            )
            bases.append(f"http://127.0.0.1:{port}")
        for base in bases:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(base + "/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, (tmp_path / "api-0.log").read_text()[-2000:]
                time.sleep(0.2)
        for i, base in enumerate(bases):
            cfg = tmp_path / f"agent-{i}.yaml"
            cfg.write_text(
                yaml.safe_dump(
                    {
                        "api_url": base,
                        "api_key": key,
                        "cluster": "agent-shared",
                        "name": f"login{i}",
                        "scheduler": "slurm",
                        "scratch_root": str(scratch),
                        "state_dir": str(tmp_path / f"state-{i}"),
                        "intervals": {
                            "pull_s": 1,
                            "harvest_s": 1,
                            "heartbeat_s": 5,
                            "cleanup_s": 60,
                        },
                    }
                )
            )
            _spawn(
                stack,
                [sys.executable, "-m", "hpcgate.cli", "agent", "--config", str(cfg)],
                _env_vars(env),
                tmp_path / f"agent-{i}.log",
            )
        _wait_all(env, ids)
    _assert_each_job_once(env, ids)
