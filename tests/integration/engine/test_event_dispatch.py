"""Issue 16: the worker's dispatcher is woken by LISTEN/NOTIFY, on real PostgreSQL and Slurm.

The loop under test polls every hour, so a calculation it submits after its first run can
only have reached it through the notification sent at commit. Waits below are bounded so a
broken event path fails instead of hanging; nothing here asserts a duration.
"""

from __future__ import annotations

import shutil
import stat
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from hpcgate.db.models.clusters import AccessMode
from hpcgate.db.models.users import User
from hpcgate.db.session import session_scope
from hpcgate.domain.access import Role
from hpcgate.domain.states import CalculationState
from hpcgate.engine.end_spool import spool_dir
from hpcgate.services.calculations import approve
from hpcgate.services.connections import ClusterConnections
from hpcgate.services.dispatch import dispatch_tick
from hpcgate.services.dispatch_loop import DispatchLoop
from hpcgate.services.end_watch import EndWatcher
from hpcgate.services.users import create_user
from hpcgate.services.wakeup import libpq_url
from tests.helpers.ci import missing
from tests.helpers.engine_env import EngineEnv, engine_env

pytestmark = [pytest.mark.integration, pytest.mark.slurm]

HOUR = 3600.0


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineEnv]:
    if shutil.which("sbatch") is None:
        missing("Slurm is not installed (scripts/services/slurm.sh)")
    with engine_env(tmp_path_factory.mktemp("events"), "hpcgate_events") as e:
        yield e


@pytest.fixture(scope="module")
def cluster_id(env: EngineEnv, tmp_path_factory: pytest.TempPathFactory) -> int:
    return env.add_cluster(
        "events",
        scheduler="slurm",
        access_mode=AccessMode.LOCAL,
        scratch_root=str(tmp_path_factory.mktemp("events-scratch")),
    )


@pytest.fixture
def loop(env: EngineEnv) -> Iterator[DispatchLoop]:
    conns = ClusterConnections()
    holder: list[DispatchLoop] = []

    def run() -> None:
        dispatch_tick(
            env.engine, env.factory, conns, env.settings, claimed_by="events-worker",
            stopping=lambda: holder[0].stopping,
        )

    lp = DispatchLoop(libpq_url(env.url), run, interval_s=HOUR)
    holder.append(lp)
    lp.ensure_started()
    try:
        yield lp
    finally:
        lp.stop()


def _single(env: EngineEnv, cluster_id: int, name: str = "one") -> int:
    return env.create(
        name=name,
        cluster_id=cluster_id,
        logical_queue="default",
        code="generic",
        configuration={"kind": "single", "command": ["true"], "resources": {"walltime_s": 60}},
    )


def _until(what: str, check: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting: {what}")
        time.sleep(0.05)


_SUBMITTED = (CalculationState.SUBMITTED, CalculationState.RUNNING, CalculationState.COMPLETED)


def _submitted(env: EngineEnv, calc_id: int) -> bool:
    """Every step has its job id and the calculation says so (the step's id is recorded
    first, the calculation's state right after, in its own transaction)."""
    return env.calc(calc_id).state in _SUBMITTED and all(
        s.scheduler_job_id for s in env.steps(calc_id)
    )


def _idle_after(loop: DispatchLoop, runs: int) -> None:
    _until(
        f"dispatch run {runs} done and waiting", lambda: loop.runs >= runs and loop.idle.is_set()
    )


def test_a_new_calculation_is_dispatched_without_waiting_for_the_poll(
    env: EngineEnv, cluster_id: int, loop: DispatchLoop
) -> None:
    _idle_after(loop, 1)  # the start-up run is over; the next poll is an hour away
    calc_id = _single(env, cluster_id)
    _until("the new calculation is submitted", lambda: _submitted(env, calc_id))
    assert loop.runs == 2  # exactly one more run: the one the notification caused
    assert env.calc(calc_id).state in (
        CalculationState.SUBMITTED,
        CalculationState.RUNNING,
        CalculationState.COMPLETED,
    )


def test_an_approval_wakes_the_dispatcher(
    env: EngineEnv, tmp_path: Path, loop: DispatchLoop
) -> None:
    gated = env.add_cluster(
        "events-gated",
        scheduler="slurm",
        access_mode=AccessMode.LOCAL,
        scratch_root=str(tmp_path / "scratch"),
        require_approval=True,
    )
    _idle_after(loop, 1)
    calc_id = _single(env, gated, "needs approval")
    assert env.calc(calc_id).state is CalculationState.PENDING_APPROVAL
    with session_scope(env.factory) as s:
        moderator = create_user(
            s, email="moderator-events@example.org", password="a-good-password",
            role=Role.MODERATOR,
        )
        s.flush()
        approve(s, calc_id, s.get(User, moderator.id) or moderator)
    _until("the approved calculation is submitted", lambda: _submitted(env, calc_id))


def test_a_lost_listening_connection_is_reestablished(
    env: EngineEnv, cluster_id: int, loop: DispatchLoop
) -> None:
    _idle_after(loop, 1)
    first_pid = loop.backend_pid
    assert loop.connects == 1
    assert first_pid is not None
    with env.engine.connect() as conn:
        killed = conn.execute(
            text("SELECT pg_terminate_backend(:pid)"), {"pid": first_pid}
        ).scalar_one()
    assert killed
    # The loop notices, reconnects, runs once (for anything missed) and listens again.
    _until("listening again", lambda: loop.connects == 2 and loop.idle.is_set())
    assert loop.backend_pid != first_pid
    runs = loop.runs
    calc_id = _single(env, cluster_id, "after reconnect")
    _until("submitted through the new connection", lambda: _submitted(env, calc_id))
    assert loop.runs == runs + 1


def _jobs_named(names: list[str]) -> Counter[str]:
    """Distinct Slurm job ids per job name, from the queue and the accounting together.

    ``JobID`` (``<array id>_<task>``), not ``JobIDRaw``: a finished array task has a raw id
    of its own, which would count a sweep's one submission once per task."""
    seen: dict[str, set[str]] = {}
    acct = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-S", "now-2hours", "--name", ",".join(names),
         "-o", "JobID,JobName"],
        capture_output=True, text=True, check=True,
    )
    queue = subprocess.run(
        ["squeue", "-h", "-t", "all", "-o", "%i|%j", "-n", ",".join(names)],
        capture_output=True, text=True, check=True,
    )
    for line in (acct.stdout + queue.stdout).splitlines():
        jid, _, name = line.partition("|")
        if name in names:
            seen.setdefault(name, set()).add(jid.split("_")[0])
    return Counter({n: len(ids) for n, ids in seen.items()})


def test_concurrent_submission_loses_and_duplicates_nothing(
    env: EngineEnv, tmp_path: Path
) -> None:
    """30 singles, a 3-step chain and a 5-point sweep, drained in batches of 7 with 4
    sbatch calls in flight: every step gets exactly one Slurm job, and a chain and a sweep
    still get their one submission each."""
    cid = env.add_cluster(
        "events-burst",
        scheduler="slurm",
        access_mode=AccessMode.LOCAL,
        scratch_root=str(tmp_path / "scratch"),
    )
    calcs = [_single(env, cid, f"burst-{i}") for i in range(30)]
    calcs.append(
        env.create(
            name="burst chain", cluster_id=cid, logical_queue="default", code="generic",
            configuration={
                "kind": "chain",
                "variants": [{"label": f"s{i}", "parameters": {"x": i}} for i in range(3)],
                "command": ["true"], "resources": {"walltime_s": 60},
            },
        )
    )
    calcs.append(
        env.create(
            name="burst sweep", cluster_id=cid, logical_queue="default", code="generic",
            configuration={
                "kind": "sweep",
                "variants": [{"label": f"p{i}", "parameters": {"x": i}} for i in range(5)],
                "command": ["true"], "resources": {"walltime_s": 60},
            },
        )
    )
    settings = env.settings.model_copy(
        update={
            "scheduler": env.settings.scheduler.model_copy(
                update={"submit_concurrency": 4, "dispatch_batch": 7}
            )
        }
    )
    outcomes = dispatch_tick(
        env.engine, env.factory, ClusterConnections(), settings, claimed_by="burst"
    )
    assert sorted(o.calculation_id for o in outcomes) == sorted(calcs)  # one drain, all of it
    assert all(o.failed is None and o.deferred is None for o in outcomes)
    steps = [st for c in calcs for st in env.steps(c)]
    assert len(steps) == 30 + 3 + 1
    assert all(st.scheduler_job_id for st in steps)
    assert len({st.scheduler_job_id for st in steps}) == len(steps)
    counts = _jobs_named([st.job_name for st in steps])
    assert counts == Counter({st.job_name: 1 for st in steps})
    by_calc = {o.calculation_id: o.submitted for o in outcomes}
    assert by_calc[calcs[-2]] == 3
    assert by_calc[calcs[-1]] == 1


def test_a_jobs_end_is_harvested_from_the_spool_without_the_periodic_harvest(
    env: EngineEnv, tmp_path: Path
) -> None:
    """Only the end-spool watcher runs (the periodic harvest never does): the job's own
    epilogue announcing its end is what gets the calculation COMPLETED."""
    scratch = tmp_path / "scratch"
    cid = env.add_cluster(
        "events-ends", scheduler="slurm", access_mode=AccessMode.LOCAL, scratch_root=str(scratch)
    )
    calc_id = _single(env, cid, "ends")
    conns = ClusterConnections()
    dispatch_tick(env.engine, env.factory, conns, env.settings, claimed_by="ends")
    job_id = env.steps(calc_id)[0].scheduler_job_id
    assert job_id
    watcher = EndWatcher(env.engine, env.factory, conns, env.settings, interval_s=0.1)
    watcher.ensure_started()
    try:
        _until(
            "completed through the end spool",
            lambda: env.calc(calc_id).state is CalculationState.COMPLETED,
        )
    finally:
        watcher.stop()
    assert watcher.harvests >= 1
    spool = spool_dir(scratch)
    assert stat.S_IMODE(spool.stat().st_mode) == 0o1733
    _until("the settled entry is removed", lambda: not any(spool.iterdir()), timeout=10)


def test_a_spool_entry_is_a_hint_not_a_verdict(env: EngineEnv, tmp_path: Path) -> None:
    """A forged entry for a job that is still running causes one harvest and nothing else."""
    scratch = tmp_path / "scratch"
    cid = env.add_cluster(
        "events-forged", scheduler="slurm", access_mode=AccessMode.LOCAL,
        scratch_root=str(scratch),
    )
    calc_id = env.create(
        name="sleeper", cluster_id=cid, logical_queue="default", code="generic",
        configuration={"kind": "single", "command": ["sleep", "30"],
                       "resources": {"walltime_s": 60}},
    )
    conns = ClusterConnections()
    dispatch_tick(env.engine, env.factory, conns, env.settings, claimed_by="forged")
    job_id = env.steps(calc_id)[0].scheduler_job_id
    assert job_id
    watcher = EndWatcher(env.engine, env.factory, conns, env.settings)
    try:
        assert cid not in watcher.check_once()  # creates the spool; nothing announced yet
        (spool_dir(scratch) / job_id).write_text("")
        assert cid in watcher.check_once()
        assert env.calc(calc_id).state in (CalculationState.SUBMITTED, CalculationState.RUNNING)
        assert env.steps(calc_id)[0].state.value in ("queued", "running")
    finally:
        subprocess.run(["scancel", job_id], check=False)


def test_a_refused_submission_fails_the_calculation_and_its_steps(
    env: EngineEnv, tmp_path: Path
) -> None:
    """A queue mapped to a partition Slurm does not have: `sbatch` refuses for good, the
    calculation fails with Slurm's reason and its steps with it (services/dispatch
    apply_submit_failed, which locks the steps before the calculation: docs/engine.md)."""
    bad = env.add_cluster(
        "events-bad-partition",
        scheduler="slurm",
        access_mode=AccessMode.LOCAL,
        scratch_root=str(tmp_path / "scratch"),
        queues={"default": "no-such-partition"},
    )
    calc_id = env.create(
        name="refused",
        cluster_id=bad,
        logical_queue="default",
        code="generic",
        configuration={"kind": "chain", "command": ["true"],
                       "variants": [{"label": "a"}, {"label": "b"}]},
    )  # fmt: skip
    conns = ClusterConnections()
    try:
        calc = env.run_until_settled(
            calc_id,
            lambda: dispatch_tick(env.engine, env.factory, conns, env.settings, claimed_by="t"),
            timeout=60,
        )
    finally:
        conns.close()
    assert calc.state is CalculationState.FAILED
    assert "partition" in (calc.state_reason or "").lower()
    states = {s.state.value for s in env.steps(calc_id)}
    assert states <= {"failed", "cancelled"}, states
