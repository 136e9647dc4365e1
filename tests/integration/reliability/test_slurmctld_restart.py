"""slurmctld restarted in the middle of a chain: polls fail transiently meanwhile (no step is
marked failed), and the chain completes afterwards with every job submitted once."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hpcgate.db.models.clusters import AccessMode
from hpcgate.domain.states import CalculationState, StepState
from hpcgate.services.cluster_ticks import harvest_tick
from hpcgate.services.connections import ClusterConnections
from hpcgate.services.dispatch import dispatch_tick
from tests.helpers.ci import missing
from tests.helpers.engine_env import EngineEnv, engine_env
from tests.integration.engine.test_crash_recovery import slurm_jobs_named

pytestmark = [pytest.mark.integration, pytest.mark.slurm]
PIDFILE = Path("/run/slurm/slurmctld.pid")


def _ping() -> bool:
    return (
        subprocess.run(["scontrol", "ping"], capture_output=True, text=True).stdout.count("UP") > 0
    )


def restart_slurmctld(down_s: float = 3.0) -> None:
    pid = int(PIDFILE.read_text().strip())
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        stat = Path(f"/proc/{pid}/stat").read_text() if Path(f"/proc/{pid}/stat").exists() else ""
        if ") Z " in stat:
            break
        time.sleep(0.1)
    time.sleep(down_s)
    subprocess.run(["/usr/sbin/slurmctld"], check=True)
    deadline = time.monotonic() + 30
    while not _ping():
        assert time.monotonic() < deadline, "slurmctld did not come back"
        time.sleep(0.2)


@pytest.fixture
def env(tmp_path: Path) -> Iterator[EngineEnv]:
    if shutil.which("sbatch") is None or not PIDFILE.exists() or os.geteuid() != 0:
        missing("needs the project's Slurm (scripts/services/slurm.sh) and root")
    with engine_env(tmp_path, "hpcgate_ctld") as e:
        yield e


def test_chain_survives_a_slurmctld_restart(env: EngineEnv, tmp_path: Path) -> None:
    cid = env.add_cluster(
        "ctld",
        scheduler="slurm",
        access_mode=AccessMode.LOCAL,
        scratch_root=str(tmp_path / "scratch"),
    )
    calc_id = env.create(
        name="ctld chain",
        cluster_id=cid,
        logical_queue="default",
        code="generic",
        configuration={
            "kind": "chain",
            "inherit": ["n.txt"],
            "command": ["bash", "-c", "sleep 3; echo x >> n.txt"],
            "variants": [{"label": f"s{i}"} for i in range(3)],
            "resources": {"walltime_s": 120},
        },
    )
    conns = ClusterConnections()

    def tick() -> None:
        dispatch_tick(env.engine, env.factory, conns, env.settings, claimed_by="w")
        harvest_tick(env.engine, env.factory, conns, env.settings)

    deadline = time.monotonic() + 60
    while env.steps(calc_id)[0].state is not StepState.RUNNING:
        assert time.monotonic() < deadline
        tick()
        time.sleep(0.5)
    import threading

    restart = threading.Thread(target=restart_slurmctld)
    restart.start()
    while restart.is_alive():  # keep polling through the outage
        tick()
        bad = {s.state for s in env.steps(calc_id)} & {
            StepState.FAILED,
            StepState.LOST,
            StepState.CANCELLED,
        }
        assert not bad, bad
        time.sleep(0.5)
    restart.join()
    calc = env.run_until_settled(calc_id, tick, timeout=180)
    conns.close()
    assert calc.state is CalculationState.COMPLETED
    steps = env.steps(calc_id)
    assert (Path(steps[-1].workdir or "") / "n.txt").read_text().split() == ["x", "x", "x"]
    names = [s.job_name for s in steps]
    assert slurm_jobs_named(names) == dict.fromkeys(names, 1)
