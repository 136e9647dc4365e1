"""Live samples and stall detection (issue 17 parts 2-3) on real Slurm and PostgreSQL.

The worker's own ticks (``dispatch_tick``, ``harvest_tick``) drive generic jobs on the
one-node Slurm cluster. No timed assertion: every wait is for a condition, with a
generous deadline; the stall window is made small through ``configuration.stall``.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import select

from hpcgate.db.models import ArrayTask, HeartbeatSample, NotificationOutbox, ServiceLog, Step
from hpcgate.db.models.clusters import AccessMode
from hpcgate.db.models.liveness import StepLiveness, TaskLiveness
from hpcgate.db.session import session_scope
from hpcgate.domain.states import FINAL_CALCULATION_STATES, CalculationState, StepState
from hpcgate.services.cluster_ticks import harvest_tick
from hpcgate.services.connections import ClusterConnections
from hpcgate.services.dispatch import dispatch_tick
from hpcgate.services.series import step_samples
from tests.helpers.ci import missing
from tests.helpers.engine_env import EngineEnv, engine_env

pytestmark = [pytest.mark.integration, pytest.mark.slurm, pytest.mark.timeout(400)]

SCF_THEN_SLEEP = ["bash", "-c", "echo '   scf:    1   -2345.6789   -2345.6000'; exec sleep 200"]
# One long-lived busy process that keeps printing SCF lines. (Slurm's jobacct_gather samples
# the processes alive at each sampling: a loop of short-lived children looks idle to sstat.)
BUSY_PRINTING = [
    "bash",
    "-c",
    "i=0; while [ $i -lt 500000000 ]; do i=$((i+1)); "
    '[ $((i % 50000)) -eq 0 ] && echo "   scf: $i  -2345.6"; done',
]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineEnv]:
    if shutil.which("sbatch") is None or shutil.which("sstat") is None:
        missing("Slurm (sbatch, sstat) is not installed (scripts/services/slurm.sh)")
    with engine_env(tmp_path_factory.mktemp("stall"), "hpcgate_stall") as e:
        yield e


@pytest.fixture
def conns() -> Iterator[ClusterConnections]:
    c = ClusterConnections()
    yield c
    c.close()


def _cluster(env: EngineEnv, tmp_path: Path, name: str) -> int:
    return env.add_cluster(
        name, scheduler="slurm", access_mode=AccessMode.LOCAL,
        scratch_root=str(tmp_path / "scratch"),
    )  # fmt: skip


def _calc(env: EngineEnv, cid: int, command: list[str], **stall: object) -> int:
    config: dict[str, object] = {"kind": "single", "command": command,
                                 "resources": {"walltime_s": 300}}  # fmt: skip
    if stall:
        config["stall"] = stall
    return env.create(name="stall", cluster_id=cid, logical_queue="default", code="generic",
                      configuration=config)  # fmt: skip


def _tick(env: EngineEnv, conns: ClusterConnections) -> None:
    dispatch_tick(env.engine, env.factory, conns, env.settings, claimed_by="stall-test")
    harvest_tick(env.engine, env.factory, conns, env.settings)


def _until(env: EngineEnv, conns: ClusterConnections, what: str, ok: Callable[[], bool],
           timeout: float = 240) -> None:  # fmt: skip
    deadline = time.monotonic() + timeout
    while not ok():
        if time.monotonic() > deadline:
            pytest.fail(f"still not {what} after {timeout} s")
        _tick(env, conns)
        time.sleep(1)


def _step(env: EngineEnv, calc_id: int) -> Step:
    (step,) = env.steps(calc_id)
    return step


def _liveness(env: EngineEnv, step_id: int) -> StepLiveness | None:
    with session_scope(env.factory) as s:
        row = s.get(StepLiveness, step_id)
        if row is not None:
            s.expunge(row)
        return row


def _cancel(env: EngineEnv, *calc_ids: int) -> None:
    jobs = [st.scheduler_job_id for c in calc_ids for st in env.steps(c) if st.scheduler_job_id]
    if jobs:
        subprocess.run(["scancel", *jobs], check=False)


def test_a_running_job_gets_live_samples(env: EngineEnv, conns: ClusterConnections,
                                         tmp_path: Path) -> None:  # fmt: skip
    cid = _cluster(env, tmp_path, "live-samples")
    calc_id = _calc(env, cid, ["timeout", "120", "sha256sum", "/dev/zero"])

    def sampled_while_running() -> bool:
        step = _step(env, calc_id)
        if step.state is not StepState.RUNNING:
            assert step.state in (StepState.PLANNED, StepState.SUBMITTING, StepState.QUEUED)
            return False
        with session_scope(env.factory) as s:
            cpu = s.scalars(
                select(HeartbeatSample.cpu_time_s).where(
                    HeartbeatSample.step_id == step.id, HeartbeatSample.scope == "step"
                )
            ).all()
        return any((c or 0) > 0 for c in cpu) and _step(env, calc_id).state is StepState.RUNNING

    try:
        _until(env, conns, "sampled with CPU time while running", sampled_while_running)
        step = _step(env, calc_id)
        with session_scope(env.factory) as s:
            series = step_samples(s, step.id, None, None, 50)
        assert any((p.values.get("cpu_time_s") or 0) > 0 for p in series.points)
        assert any((p.values.get("max_rss_kb") or 0) > 0 for p in series.points)
    finally:
        _cancel(env, calc_id)


def test_a_silent_job_is_flagged_stalled_and_a_busy_one_is_not(
    env: EngineEnv, conns: ClusterConnections, tmp_path: Path
) -> None:
    cid = _cluster(env, tmp_path, "stall-notify")
    quiet = _calc(env, cid, SCF_THEN_SLEEP, after_s=8)
    busy = _calc(env, cid, BUSY_PRINTING, after_s=8)
    try:

        def flagged() -> bool:
            row = _liveness(env, _step(env, quiet).id)
            return row is not None and row.stalled_at is not None

        _until(env, conns, "flagged stalled", flagged)
        step = _step(env, quiet)
        row = _liveness(env, step.id)
        assert row is not None
        assert step.state is StepState.RUNNING  # flagged, not ended
        assert (step.state_reason or "").startswith("stalled: ")
        assert row.markers == 1  # the one SCF line, counted from the job's own output
        with session_scope(env.factory) as s:
            events = s.scalars(
                select(ServiceLog.message).where(
                    ServiceLog.calculation_id == quiet,
                    ServiceLog.context["event"].astext == "stalled",
                )
            ).all()
            mails = s.scalars(
                select(NotificationOutbox).where(
                    NotificationOutbox.calculation_id == quiet,
                    NotificationOutbox.event == "stalled",
                    NotificationOutbox.user_id == env.user_id,
                )
            ).all()
        assert len(events) == 1
        assert len(mails) == 1
        # The busy one: watched for 30 more harvests (each >= 1 s: over three windows) after
        # its first SCF line, and never flagged.
        busy_step = _step(env, busy).id
        ticks = []

        def busy_for_a_while() -> bool:
            b = _liveness(env, busy_step)
            assert b is None or b.stalled_at is None, b and b.stall_reason
            if b is not None and b.markers > 0:
                ticks.append(b.markers)
            return len(ticks) > 30

        _until(env, conns, "watched busy for 30 harvests", busy_for_a_while)
        assert ticks[-1] > ticks[0]  # it kept printing
        assert _step(env, busy).state is StepState.RUNNING
    finally:
        _cancel(env, quiet, busy)


def test_cancel_retry_cancels_a_stalled_job(env: EngineEnv, conns: ClusterConnections,
                                            tmp_path: Path) -> None:  # fmt: skip
    cid = _cluster(env, tmp_path, "stall-cancel")
    calc_id = _calc(env, cid, SCF_THEN_SLEEP, after_s=8, action="cancel_retry")
    try:
        _until(env, conns, "settled", lambda: env.calc(calc_id).state in FINAL_CALCULATION_STATES)
        step = _step(env, calc_id)
        # generic has no recovery ladder: the step stays FAILED with the stall as its reason
        assert step.state is StepState.FAILED
        assert (step.state_reason or "").startswith("stalled: ")
        assert env.calc(calc_id).state is CalculationState.FAILED
        job = step.scheduler_job_id
        assert job

        def cancelled_in_slurm() -> bool:
            out = subprocess.run(["sacct", "-n", "-X", "-P", "-o", "State", "-j", job],
                                 capture_output=True, text=True).stdout  # fmt: skip
            return out.strip().startswith("CANCELLED")

        _until(env, conns, "cancelled in Slurm", cancelled_in_slurm, timeout=60)
    finally:
        _cancel(env, calc_id)


@contextmanager
def _running_agent(env: EngineEnv, tmp_path: Path, name: str) -> Iterator[int]:
    """An agent cluster served by the real agent (a thread) through the real API; its id."""
    import threading

    from hpcgate.agent.config import AgentConfig
    from hpcgate.agent.loop import Agent
    from hpcgate.api.app import create_app
    from hpcgate.domain.access import ApiKeyOwner
    from hpcgate.services.api_keys import create_api_key
    from tests.helpers.live_api import live_server

    scratch = tmp_path / "scratch"
    cid = env.add_cluster(name, scheduler="slurm", access_mode=AccessMode.AGENT,
                          scratch_root=str(scratch))  # fmt: skip
    with session_scope(env.factory) as s:
        _, key = create_api_key(s, owner_kind=ApiKeyOwner.CLUSTER, name="a", cluster_id=cid)
    app = create_app(env.settings, engine=env.engine)
    stop = threading.Event()
    with live_server(app) as base:
        agent = Agent(AgentConfig(
            api_url=base, api_key=key, cluster=name, name="stall",
            scratch_root=scratch, state_dir=tmp_path / "state",
            intervals={"pull_s": 1, "harvest_s": 1, "heartbeat_s": 3600, "cleanup_s": 3600,
                       "pull_wait_s": 0, "jitter": 0},
        ))  # fmt: skip
        thread = threading.Thread(target=agent.run, args=(stop,), daemon=True)
        thread.start()
        try:
            yield cid
        finally:
            stop.set()
            thread.join(60)


def _wait(what: str, ok: Callable[[], bool], timeout: float = 240) -> None:
    """A wait while the agent does the work (no worker ticks here)."""
    deadline = time.monotonic() + timeout
    while not ok():
        assert time.monotonic() < deadline, f"agent mode: still not {what} after {timeout} s"
        time.sleep(1)


def test_agent_mode_reports_live_samples_and_stalls(env: EngineEnv, tmp_path: Path) -> None:
    """The real agent (thread) and the real API: its harvest samples the running jobs on
    the login node (sstat, the output probe) and the server flags the silent one."""
    with _running_agent(env, tmp_path, "stall-agent") as cid:
        quiet = _calc(env, cid, SCF_THEN_SLEEP, after_s=8)
        busy = _calc(env, cid, ["timeout", "200", "sha256sum", "/dev/zero"], after_s=8)
        try:

            def done() -> bool:
                q = _liveness(env, _step(env, quiet).id)
                b = _step(env, busy)
                with session_scope(env.factory) as s:
                    cpu = s.scalars(select(HeartbeatSample.cpu_time_s).where(
                        HeartbeatSample.step_id == b.id, HeartbeatSample.scope == "step"
                    )).all()  # fmt: skip
                busy_sampled = b.state is StepState.RUNNING and any((c or 0) > 0 for c in cpu)
                return busy_sampled and q is not None and q.stalled_at is not None

            _wait("sampled/flagged", done)
            q = _liveness(env, _step(env, quiet).id)
            assert q is not None
            assert q.markers == 1
            assert (_step(env, quiet).state_reason or "").startswith("stalled: ")
        finally:
            _cancel(env, quiet, busy)


# A 2-task sweep: task 0 prints one SCF line then sleeps, task 1 keeps printing (both run at
# once on the 2-core node). Each task is sampled as its own job (sstat of <array>_<k>).
QUIET_OR_BUSY = [
    "bash",
    "-c",
    'if [ "$HPCGATE_PARAM_MODE" = quiet ]; then echo "   scf:    1   -2345.6789"; '
    "exec sleep 200; fi; " + BUSY_PRINTING[2],
]


def _task_liveness(env: EngineEnv, step_id: int) -> dict[int, TaskLiveness]:
    with session_scope(env.factory) as s:
        rows = s.execute(
            select(ArrayTask.task_index, TaskLiveness)
            .join(TaskLiveness, TaskLiveness.task_id == ArrayTask.id)
            .where(ArrayTask.step_id == step_id)
        ).all()
        for _, row in rows:
            s.expunge(row)
        return {int(i): row for i, row in rows}


def test_a_silent_array_task_is_flagged_stalled_and_its_busy_sibling_is_not(
    env: EngineEnv, conns: ClusterConnections, tmp_path: Path
) -> None:
    cid = _cluster(env, tmp_path, "stall-array")
    calc_id = env.create(
        name="stall sweep", cluster_id=cid, logical_queue="default", code="generic",
        configuration={
            "kind": "sweep", "command": QUIET_OR_BUSY, "resources": {"walltime_s": 300},
            "stall": {"after_s": 8},
            "variants": [{"label": "quiet", "parameters": {"mode": "quiet"}},
                         {"label": "busy", "parameters": {"mode": "busy"}}],
        },
    )  # fmt: skip
    step_id = _step(env, calc_id).id
    try:

        def flagged() -> bool:
            row = _task_liveness(env, step_id).get(0)
            return row is not None and row.stalled_at is not None

        _until(env, conns, "task 0 flagged stalled", flagged)
        rows = _task_liveness(env, step_id)
        assert rows[0].markers == 1  # the one SCF line, from the task's own output
        with session_scope(env.factory) as s:
            tasks = {
                t.task_index: t
                for t in s.scalars(select(ArrayTask).where(ArrayTask.step_id == step_id))
            }
            assert tasks[0].state is StepState.RUNNING  # flagged, not ended
            assert (tasks[0].state_reason or "").startswith("stalled: ")
            events = s.scalars(
                select(ServiceLog.message).where(
                    ServiceLog.calculation_id == calc_id,
                    ServiceLog.context["event"].astext == "stalled",
                )
            ).all()
        assert len(events) == 1
        assert "task 0 (quiet) is stalled" in events[0]
        ticks: list[int] = []

        def busy_for_a_while() -> bool:
            b = _task_liveness(env, step_id).get(1)
            assert b is None or b.stalled_at is None, b and b.stall_reason
            if b is not None and b.markers > 0:
                ticks.append(b.markers)
            return len(ticks) > 30

        _until(env, conns, "task 1 watched busy for 30 harvests", busy_for_a_while)
        assert ticks[-1] > ticks[0]  # it kept printing
        busy = _task_liveness(env, step_id)[1]
        assert (busy.cpu_time_s or 0) > 0  # sstat sampled the task itself
        assert _step(env, calc_id).state is StepState.RUNNING
    finally:
        _cancel(env, calc_id)


# Task "quiet" prints one SCF line and sleeps; task "busy" prints one every ~0.4 s and ends
# (about 30 s of one core).
QUIET_OR_SHORT_BUSY = [
    "bash",
    "-c",
    'if [ "$HPCGATE_PARAM_MODE" = quiet ]; then echo "   scf:    1   -2345.6789"; '
    "exec sleep 200; fi; i=0; while [ $i -lt 4000000 ]; do i=$((i+1)); "
    '[ $((i % 50000)) -eq 0 ] && echo "   scf: $i  -2345.6"; done',
]


def _sacct_state(job: str) -> str:
    out = subprocess.run(["sacct", "-n", "-X", "-P", "-o", "State", "-j", job],
                         capture_output=True, text=True, timeout=30).stdout  # fmt: skip
    return out.strip().split("\n")[0]


def _stall_sweep(env: EngineEnv, cid: int) -> int:
    return env.create(
        name="stall sweep", cluster_id=cid, logical_queue="default", code="generic",
        configuration={
            "kind": "sweep", "command": QUIET_OR_SHORT_BUSY, "resources": {"walltime_s": 300},
            "stall": {"after_s": 8, "action": "cancel_retry"},
            "variants": [{"label": "quiet", "parameters": {"mode": "quiet"}},
                         {"label": "busy", "parameters": {"mode": "busy"}}],
        },
    )  # fmt: skip


def _only_the_quiet_task_was_cancelled(env: EngineEnv, calc_id: int) -> None:
    step = _step(env, calc_id)
    job = step.scheduler_job_id
    assert job
    with session_scope(env.factory) as s:
        tasks = {t.task_index: t for t in
                 s.scalars(select(ArrayTask).where(ArrayTask.step_id == step.id))}  # fmt: skip
        quiet, busy = tasks[0], tasks[1]
        assert quiet.state is StepState.FAILED
        assert quiet.verdict == "incomplete"
        assert quiet.state_reason == "stalled: cancelled for a retry"
        assert quiet.stall_cancelled
        assert not quiet.cancel_pending  # sent and acknowledged
        assert busy.state is StepState.FINISHED
        assert not busy.stall_cancelled
        events = s.scalars(select(ServiceLog.message).where(
            ServiceLog.calculation_id == calc_id,
            ServiceLog.context["event"].astext == "stalled",
        )).all()  # fmt: skip
    assert len(events) == 1
    assert "task 0 (quiet) is stalled" in events[0]
    assert events[0].endswith("; cancelled for a retry")
    assert _sacct_state(f"{job}_0").startswith("CANCELLED")
    assert _sacct_state(f"{job}_1") == "COMPLETED"  # never touched by the cancel
    # generic has no recovery ladder: the sweep fails with the stall as its reason
    assert step.state is StepState.FAILED
    assert env.calc(calc_id).state is CalculationState.FAILED


def test_only_the_stalled_task_is_cancelled_and_its_sibling_finishes(
    env: EngineEnv, conns: ClusterConnections, tmp_path: Path
) -> None:
    """``cancel_retry`` on a sweep: ``scancel <array>_<k>`` for the stalled task alone; it
    ends FAILED with the verdict ``incomplete``, which the per-task ladder continues
    (test_task_recovery_rules.py; ``generic`` has none, so here the sweep ends FAILED)."""
    calc_id = _stall_sweep(env, _cluster(env, tmp_path, "stall-task-cancel"))
    try:
        _until(env, conns, "settled", lambda: env.calc(calc_id).state in FINAL_CALCULATION_STATES)
        _only_the_quiet_task_was_cancelled(env, calc_id)
    finally:
        _cancel(env, calc_id)


def test_agent_mode_cancels_only_the_stalled_task(env: EngineEnv, tmp_path: Path) -> None:
    """The same through the real agent: it receives ``<array>_0`` (in its pull or its
    report's answer), cancels it with its own ``scancel`` and acknowledges that id."""
    with _running_agent(env, tmp_path, "stall-task-agent") as cid:
        calc_id = _stall_sweep(env, cid)
        try:
            _wait("settled", lambda: env.calc(calc_id).state in FINAL_CALCULATION_STATES)
            _only_the_quiet_task_was_cancelled(env, calc_id)
        finally:
            _cancel(env, calc_id)
