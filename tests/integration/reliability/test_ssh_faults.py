"""SSH faults against the real sshd and Slurm: a cut connection (iptables DROP on the loopback
port) and a hung host (SIGSTOP of our connection's sshd), during a poll and during a
submission. Promise: noticed within 10 s with the product's default SSH timeouts, jobs never
marked failed, work resumes, and nothing is submitted twice."""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from hpcgate.db.models import Cluster
from hpcgate.db.models.clusters import AccessMode
from hpcgate.db.session import session_scope
from hpcgate.domain.states import CalculationState, StepState
from hpcgate.services.cluster_ticks import harvest_tick
from hpcgate.services.connections import ClusterConnections
from hpcgate.services.dispatch import dispatch_tick
from tests.helpers.ci import missing
from tests.helpers.engine_env import EngineEnv, engine_env
from tests.helpers.ssh_env import (
    FAULT_SOURCE,
    blackholed,
    connection_pids,
    iptables_usable,
    load_ssh_env,
    stopped,
)
from tests.integration.engine.test_crash_recovery import slurm_jobs_named

pytestmark = [pytest.mark.integration, pytest.mark.slurm, pytest.mark.ssh]
# The promise itself. The defaults give about 5 s (request_timeout for a hung sshd,
# dead_peer_timeout_ms for a black hole), so a loaded machine still has room.
NOTICE_LIMIT_S = 10.0


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineEnv]:
    if shutil.which("sbatch") is None or load_ssh_env() is None:
        missing("needs Slurm and the loopback sshd (scripts/services/{slurm,sshd}.sh)")
    with engine_env(tmp_path_factory.mktemp("sshf"), "hpcgate_sshfault") as e:
        yield e


def _cluster(env: EngineEnv) -> int:
    ssh = load_ssh_env()
    assert ssh is not None
    hpcgate = Path("/var/lib/hpcgate-test/cluster-python/env")
    command = hpcgate.read_text().strip().split("=", 1)[1] if hpcgate.exists() else "hpcgate"
    tag = uuid.uuid4().hex[:6]
    return env.add_cluster(
        f"ssh-fault-{tag}",
        scheduler="slurm",
        access_mode=AccessMode.SSH,
        scratch_root=f"{ssh.scratch}/faults-{tag}",
        host=ssh.host,
        port=ssh.port,
        login_user=ssh.user,
        options={
            "key_filename": ssh.key,
            "known_hosts": ssh.known_hosts,
            "hpcgate_command": [command],
            # only the fault scope: every timeout is the product's default
            "ssh_options": {"source_address": FAULT_SOURCE},
        },
    )


def _chain(env: EngineEnv, cid: int) -> int:
    return env.create(
        name="fault chain",
        cluster_id=cid,
        logical_queue="default",
        code="generic",
        configuration={
            "kind": "chain",
            "command": ["sleep", "2"],
            "variants": [{"label": f"s{i}"} for i in range(3)],
            "resources": {"walltime_s": 120},
        },
    )


def _finish(env: EngineEnv, calc_id: int, conns: ClusterConnections) -> None:
    def tick() -> None:
        dispatch_tick(env.engine, env.factory, conns, env.settings, claimed_by="w")
        harvest_tick(env.engine, env.factory, conns, env.settings)

    assert env.run_until_settled(calc_id, tick, timeout=120).state is CalculationState.COMPLETED
    names = [s.job_name for s in env.steps(calc_id)]
    assert slurm_jobs_named(names) == dict.fromkeys(names, 1)


def _no_step_failed(env: EngineEnv, calc_id: int) -> None:
    assert not {s.state for s in env.steps(calc_id)} & {
        StepState.FAILED,
        StepState.LOST,
        StepState.CANCELLED,
    }


@pytest.mark.parametrize("fault", ["cut", "hung"])
def test_fault_during_poll(env: EngineEnv, fault: str) -> None:
    if fault == "cut" and not iptables_usable():
        missing("iptables is not usable here (needs root and the iptables package)")
    ssh = load_ssh_env()
    assert ssh is not None
    cid = _cluster(env)
    calc_id = _chain(env, cid)
    conns = ClusterConnections()
    dispatch_tick(env.engine, env.factory, conns, env.settings, claimed_by="w")
    assert env.calc(calc_id).state is CalculationState.SUBMITTED
    with session_scope(env.factory) as s:
        cluster = s.get(Cluster, cid)
        assert cluster is not None
        runner = conns.adapter_for(cluster).runner
    t0 = time.monotonic()
    if fault == "cut":
        with blackholed(ssh.port):
            harvest_tick(env.engine, env.factory, conns, env.settings)
    else:
        with stopped(connection_pids(ssh, runner)):  # type: ignore[arg-type]
            harvest_tick(env.engine, env.factory, conns, env.settings)
    noticed = time.monotonic() - t0
    print(f"fault {fault} during poll noticed in {noticed:.1f} s")
    assert noticed < NOTICE_LIMIT_S, f"the fault took {noticed:.1f} s to notice"
    _no_step_failed(env, calc_id)
    _finish(env, calc_id, conns)
    conns.close()


@pytest.mark.parametrize("fault", ["cut", "hung"])
def test_fault_during_submission(env: EngineEnv, fault: str) -> None:
    if fault == "cut" and not iptables_usable():
        missing("iptables is not usable here (needs root and the iptables package)")
    ssh = load_ssh_env()
    assert ssh is not None
    cid = _cluster(env)
    conns = ClusterConnections()
    warm = _chain(env, cid)  # opens the connection, so "hung" has a connection to freeze
    dispatch_tick(env.engine, env.factory, conns, env.settings, claimed_by="w")
    calc_id = _chain(env, cid)
    with session_scope(env.factory) as s:
        cluster = s.get(Cluster, cid)
        assert cluster is not None
        runner = conns.adapter_for(cluster).runner
    t0 = time.monotonic()
    if fault == "cut":
        with blackholed(ssh.port):
            dispatch_tick(env.engine, env.factory, conns, env.settings, claimed_by="w")
    else:
        with stopped(connection_pids(ssh, runner)):  # type: ignore[arg-type]
            dispatch_tick(env.engine, env.factory, conns, env.settings, claimed_by="w")
    noticed = time.monotonic() - t0
    print(f"fault {fault} during submission noticed in {noticed:.1f} s")
    assert noticed < NOTICE_LIMIT_S, f"the fault took {noticed:.1f} s to notice"
    assert env.calc(calc_id).state is CalculationState.SUBMITTING  # deferred, not failed
    _no_step_failed(env, calc_id)
    _finish(env, calc_id, conns)
    _finish(env, warm, conns)
    conns.close()
