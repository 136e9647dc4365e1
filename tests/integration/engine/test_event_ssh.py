"""Issue 16, SSH clusters: a job's end is harvested from the remote end spool, streamed over
one long-lived SSH channel (real sshd on loopback, real Slurm, real PostgreSQL).

No periodic harvest runs in these tests at all, so a settled calculation can only have
been harvested because its job announced its end. Waits are bounded so a broken event
path fails instead of hanging; nothing here asserts a duration.
"""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath

import pytest

from hpcgate.db.models.clusters import AccessMode
from hpcgate.domain.states import CalculationState
from hpcgate.engine.end_spool import RemoteEndSpool
from hpcgate.services.connections import ClusterConnections
from hpcgate.services.dispatch import dispatch_tick
from hpcgate.services.end_watch import EndWatcher
from tests.helpers.ci import missing
from tests.helpers.engine_env import EngineEnv, engine_env
from tests.helpers.ssh_env import SshTestEnv, load_ssh_env

pytestmark = [pytest.mark.integration, pytest.mark.slurm, pytest.mark.timeout(300)]


def _cluster_hpcgate() -> str:
    env = Path("/var/lib/hpcgate-test/cluster-python/env")
    if not env.is_file():
        missing("the cluster-side hpcgate is not installed (scripts/services/cluster-python.sh)")
    return env.read_text().strip().split("=", 1)[1]


@pytest.fixture(scope="module")
def ssh() -> SshTestEnv:
    if shutil.which("sbatch") is None:
        missing("Slurm is not installed (scripts/services/slurm.sh)")
    found = load_ssh_env()
    if found is None:
        missing("the loopback sshd is not set up (scripts/services/sshd.sh)")
    return found


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineEnv]:
    with engine_env(tmp_path_factory.mktemp("ssh-events"), "hpcgate_ssh_events") as e:
        yield e


@pytest.fixture
def cluster(env: EngineEnv, ssh: SshTestEnv) -> tuple[int, str]:
    tag = uuid.uuid4().hex[:8]
    scratch = f"{ssh.scratch}/events-{tag}"
    cid = env.add_cluster(
        f"ssh-events-{tag}", scheduler="slurm", access_mode=AccessMode.SSH,
        scratch_root=scratch, host=ssh.host, port=ssh.port, login_user=ssh.user,
        options={"key_filename": ssh.key, "known_hosts": ssh.known_hosts,
                 "hpcgate_command": [_cluster_hpcgate()]},
    )
    return cid, scratch


def _single(env: EngineEnv, cluster_id: int, command: list[str]) -> int:
    return env.create(
        name="ssh-event", cluster_id=cluster_id, logical_queue="default", code="generic",
        configuration={"kind": "single", "command": command, "resources": {"walltime_s": 60}},
    )


def _until(what: str, check: Callable[[], bool], timeout: float = 90.0,
           why: Callable[[], str] | None = None) -> None:  # fmt: skip
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting: {what}" + (f" ({why()})" if why else ""))
        time.sleep(0.05)


def _diagnosis(env: EngineEnv, watcher: EndWatcher, cid: int, calc_id: int) -> str:
    """What a failure needs to be understood: the job in Slurm, the spool, the stream."""
    job = env.steps(calc_id)[0].scheduler_job_id or ""
    acct = subprocess.run(["sacct", "-X", "-n", "-P", "-o", "JobID,State,End", "-j", job],
                          capture_output=True, text=True, timeout=30).stdout.strip()  # fmt: skip
    queue = subprocess.run(["squeue", "-h", "-o", "%i %T", "-j", job],
                           capture_output=True, text=True, timeout=30).stdout.strip()  # fmt: skip
    spool = watcher._clusters().get(cid)
    listing = spool.stream.names() if isinstance(spool, RemoteEndSpool) else None
    return (f"step {env.steps(calc_id)[0].state.value}, sacct {acct!r}, squeue {queue!r}, "
            f"stream listing {listing}, watcher harvests {watcher.harvests}")  # fmt: skip


def _spool_entries(conns: ClusterConnections, env: EngineEnv, cid: int, scratch: str
                   ) -> list[str]:
    from hpcgate.db.models import Cluster
    from hpcgate.db.session import session_scope

    with session_scope(env.factory) as s:
        cluster = s.get(Cluster, cid)
        assert cluster is not None
        runner = conns.adapter_for(cluster).runner
    out = runner.run(["ls", "-A", f"{scratch}/hpcgate/.ended"], timeout=30)
    return out.stdout.split()


def test_an_ssh_jobs_end_is_harvested_from_the_streamed_spool(
    env: EngineEnv, cluster: tuple[int, str]
) -> None:
    """Dispatch once, then only the end watcher runs: the job's own announcement, read
    through the stream, settles it; the entry is removed on the login node; after the
    connection is dropped the stream comes back and a second job settles the same way."""
    cid, scratch = cluster
    conns = ClusterConnections()
    watcher = EndWatcher(env.engine, env.factory, conns, env.settings, interval_s=0.1)
    watcher.ensure_started()
    try:
        first = _single(env, cid, ["bash", "-c", "echo $((1+2))"])
        dispatch_tick(env.engine, env.factory, conns, env.settings, claimed_by="ssh-ev")
        assert env.steps(first)[0].scheduler_job_id
        _until("completed through the streamed end spool",
               lambda: env.calc(first).state is CalculationState.COMPLETED,
               why=lambda: _diagnosis(env, watcher, cid, first))
        # counted just after the harvest commits; nothing else harvests in this test
        _until("the watcher counts its harvest", lambda: watcher.harvests >= 1, timeout=10)
        _until("the settled entry is removed remotely",
               lambda: not _spool_entries(conns, env, cid, scratch), timeout=30)
        spool = watcher._clusters()[cid]
        assert isinstance(spool, RemoteEndSpool)
        connects = spool.stream.connects  # type: ignore[attr-defined]

        spool.runner.close()  # the connection (and the stream's channel) goes away
        second = _single(env, cid, ["true"])
        dispatch_tick(env.engine, env.factory, conns, env.settings, claimed_by="ssh-ev")
        _until("the second job completed through the re-opened stream",
               lambda: env.calc(second).state is CalculationState.COMPLETED,
               why=lambda: _diagnosis(env, watcher, cid, second))
        assert spool.stream.connects > connects  # type: ignore[attr-defined]
    finally:
        watcher.stop()


def test_a_forged_or_repeated_ssh_spool_entry_changes_nothing(
    env: EngineEnv, cluster: tuple[int, str]
) -> None:
    """Entries for a running job, for a settled one and with a name that is no job id cost
    a harvest at most: states stay, nothing is submitted twice."""
    cid, scratch = cluster
    conns = ClusterConnections()
    watcher = EndWatcher(env.engine, env.factory, conns, env.settings)
    sleeper = _single(env, cid, ["sleep", "60"])
    dispatch_tick(env.engine, env.factory, conns, env.settings, claimed_by="ssh-forged")
    job_id = env.steps(sleeper)[0].scheduler_job_id
    assert job_id
    try:
        _until("the stream lists the spool", lambda: bool(watcher._clusters().get(cid))
               and watcher._clusters()[cid].ensure())
        spool = watcher._clusters()[cid]
        runner = spool.runner  # type: ignore[attr-defined]
        spool_path = PurePosixPath(scratch) / "hpcgate" / ".ended"
        for name in (job_id, "999999999", "not-a-job"):
            runner.write_text(spool_path / name, "")
        _until("the forged entries are streamed",
               lambda: job_id in spool.pending() and "999999999" in spool.pending())
        assert "not-a-job" not in spool.pending()
        assert cid in watcher.check_once()
        assert env.calc(sleeper).state in (CalculationState.SUBMITTED, CalculationState.RUNNING)
        assert env.steps(sleeper)[0].state.value in ("queued", "running")
        assert env.steps(sleeper)[0].scheduler_job_id == job_id
    finally:
        runner.run(["scancel", job_id], timeout=30)
        watcher.stop()
