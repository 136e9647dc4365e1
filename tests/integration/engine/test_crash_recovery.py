"""kill -9 the worker (and the agent) at each point of submission, restart, and check that
no Slurm job is duplicated or lost. Real PostgreSQL, real Slurm, real processes."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from hpcgate.api.app import create_app
from hpcgate.db.models.clusters import AccessMode
from hpcgate.db.session import session_scope
from hpcgate.domain.access import ApiKeyOwner
from hpcgate.domain.states import CalculationState, StepState
from hpcgate.services.api_keys import create_api_key
from hpcgate.services.cluster_ticks import harvest_tick
from hpcgate.services.connections import ClusterConnections
from hpcgate.services.dispatch import dispatch_tick
from tests.helpers.ci import missing
from tests.helpers.engine_env import EngineEnv, engine_env
from tests.helpers.live_api import live_server

pytestmark = [pytest.mark.integration, pytest.mark.slurm]

REPO = Path(__file__).resolve().parents[3]
POINTS = [
    "after_mark_submitting",
    "after_submit",
    "after_submit:2",
    "after_record",
    "before_release",
]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineEnv]:
    import shutil

    if shutil.which("sbatch") is None:
        missing("Slurm is not installed (scripts/services/slurm.sh)")
    with engine_env(tmp_path_factory.mktemp("crash"), "hpcgate_crash") as e:
        yield e


def slurm_jobs_named(names: list[str]) -> Counter[str]:
    """Every job Slurm knows (queue + accounting) by name, counted by distinct job id."""
    seen: dict[str, set[str]] = {}
    acct = subprocess.run(
        [
            "sacct",
            "-X",
            "-n",
            "-P",
            "-S",
            "now-2hours",
            "--name",
            ",".join(names),
            "-o",
            "JobIDRaw,JobName",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    queue = subprocess.run(
        ["squeue", "-h", "-t", "all", "-o", "%i|%j", "-n", ",".join(names)],
        capture_output=True,
        text=True,
        check=True,
    )
    for line in (acct.stdout + queue.stdout).splitlines():
        jid, _, name = line.partition("|")
        if name in names:
            seen.setdefault(name, set()).add(jid.split("_")[0])
    return Counter({n: len(ids) for n, ids in seen.items()})


def _chain(env: EngineEnv, cluster_id: int) -> int:
    return env.create(
        name="crash chain",
        cluster_id=cluster_id,
        logical_queue="default",
        code="generic",
        configuration={
            "kind": "chain",
            "variants": [{"label": f"s{i}", "parameters": {"x": i}} for i in range(3)],
            "inherit": ["carry.txt"],
            "command": ["bash", "-c", 'echo "$HPCGATE_PARAM_X" >> carry.txt'],
            "resources": {"walltime_s": 120},
        },
    )


def _check(env: EngineEnv, calc_id: int) -> None:
    steps = env.steps(calc_id)
    names = [s.job_name for s in steps]
    counts = slurm_jobs_named(names)
    assert counts == Counter(dict.fromkeys(names, 1)), f"duplicated or lost jobs: {counts}"
    assert [s.state for s in steps] == [StepState.HARVESTED] * 3
    carry = Path(steps[-1].workdir or "") / "carry.txt"
    assert carry.read_text().split() == ["0", "1", "2"]


@pytest.mark.parametrize("point", POINTS)
def test_worker_killed_during_submission(env: EngineEnv, tmp_path: Path, point: str) -> None:
    cid = env.add_cluster(
        f"login-{uuid.uuid4().hex[:6]}",
        scheduler="slurm",
        access_mode=AccessMode.LOCAL,
        scratch_root=str(tmp_path / "scratch"),
    )
    calc_id = _chain(env, cid)
    cmd = [sys.executable, "-m", "tests.helpers.crash_worker", env.url, str(tmp_path)]
    crashed = subprocess.run(
        cmd,
        cwd=REPO,
        env={**os.environ, "HPCGATE_FAULT_CRASH_AT": point},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert crashed.returncode == -9, crashed.stderr[-2000:]
    assert env.calc(calc_id).state is CalculationState.SUBMITTING
    restarted = subprocess.run(
        cmd, cwd=REPO, env=os.environ, capture_output=True, text=True, timeout=120
    )
    assert restarted.returncode == 0, restarted.stderr[-2000:]
    assert env.calc(calc_id).state is CalculationState.SUBMITTED
    conns = ClusterConnections()

    def tick() -> None:
        dispatch_tick(env.engine, env.factory, conns, env.settings, claimed_by="crash-worker")
        harvest_tick(env.engine, env.factory, conns, env.settings)

    calc = env.run_until_settled(calc_id, tick, timeout=120)
    conns.close()
    assert calc.state is CalculationState.COMPLETED
    _check(env, calc_id)


@pytest.mark.parametrize("point", POINTS)
def test_agent_killed_during_submission(env: EngineEnv, tmp_path: Path, point: str) -> None:
    name = f"agent-{uuid.uuid4().hex[:6]}"
    scratch = tmp_path / "scratch"
    cid = env.add_cluster(
        name, scheduler="slurm", access_mode=AccessMode.AGENT, scratch_root=str(scratch)
    )
    with session_scope(env.factory) as s:
        _, key = create_api_key(s, owner_kind=ApiKeyOwner.CLUSTER, name="a", cluster_id=cid)
    calc_id = _chain(env, cid)
    app = create_app(env.settings, engine=env.engine)
    with live_server(app) as base:
        cfg = tmp_path / "agent.yaml"
        cfg.write_text(
            yaml.safe_dump(
                {
                    "api_url": base,
                    "api_key": key,
                    "cluster": name,
                    "name": "crashy",
                    "scheduler": "slurm",
                    "scratch_root": str(scratch),
                    "state_dir": str(tmp_path / "state"),
                }
            )
        )
        cmd = [sys.executable, "-m", "hpcgate.cli", "agent", "--config", str(cfg), "--once"]
        crashed = subprocess.run(
            cmd,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "HPCGATE_FAULT_CRASH_AT": point},
        )
        assert crashed.returncode == -9, crashed.stderr[-2000:]
        assert env.calc(calc_id).state is CalculationState.SUBMITTING
        ok = subprocess.run(
            cmd, cwd=REPO, capture_output=True, text=True, timeout=120, env=os.environ
        )
        assert ok.returncode == 0, ok.stderr[-2000:]

        def tick() -> None:
            subprocess.run(
                cmd, cwd=REPO, capture_output=True, timeout=120, env=os.environ, check=True
            )

        calc = env.run_until_settled(calc_id, tick, timeout=150, every=0.2)
    assert calc.state is CalculationState.COMPLETED
    _check(env, calc_id)
