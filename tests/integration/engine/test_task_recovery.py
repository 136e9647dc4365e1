"""The recovery ladder per array task (issue 17) on real SIESTA, real Slurm, real PostgreSQL.

A 3-task sweep of H2O whose middle variant is capped at 3 SCF iterations: the array ends
with that task ``scf_not_converged``; only that task is submitted again (``--array=1``, a
job of its own), continues from its saved DM and converges with the energy of an uncapped
direct run, while the two other tasks ran exactly once. The attempts per task are read
back through the API (``GET /steps/{id}``). Attempts are counted, never timed.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from hpcgate.db.models import ArrayTask, ServiceLog, StepAttempt, User
from hpcgate.db.models.clusters import AccessMode
from hpcgate.db.session import session_scope
from hpcgate.domain.states import CalculationState, StepState
from hpcgate.services.cluster_ticks import harvest_tick
from hpcgate.services.connections import ClusterConnections
from hpcgate.services.dispatch import dispatch_tick
from tests.helpers.api import api_client, auth_headers
from tests.helpers.ci import require_tool
from tests.helpers.engine_env import EngineEnv, engine_env
from tests.helpers.siesta_env import (
    DM_READ_MARKER,
    final_energy_ev,
    require_siesta,
    run_siesta,
    siesta_case,
)

pytestmark = [pytest.mark.integration, pytest.mark.slurm]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineEnv]:
    require_tool("sbatch", install_hint="scripts/services/slurm.sh")
    with engine_env(tmp_path_factory.mktemp("task-recovery"), "hpcgate_task_recovery") as e:
        yield e


def _rows(env: EngineEnv, step_id: int) -> list[StepAttempt]:
    with session_scope(env.factory) as s:
        rows = list(
            s.scalars(
                select(StepAttempt)
                .where(StepAttempt.step_id == step_id)
                .order_by(StepAttempt.task_index.nulls_first(), StepAttempt.attempt)
            )
        )
        for r in rows:
            s.expunge(r)
        return rows


def test_sweep_retries_only_the_unconverged_task(env: EngineEnv, tmp_path: Path) -> None:
    tools = require_siesta()
    cid = env.add_cluster(
        f"task-recovery-{uuid.uuid4().hex[:6]}",
        scheduler="slurm",
        access_mode=AccessMode.LOCAL,
        scratch_root=str(tmp_path / "scratch"),
    )
    calc_id = env.create(
        name="H2O sweep, one variant capped",
        cluster_id=cid,
        logical_queue="default",
        code="siesta",
        configuration={
            "kind": "sweep",
            "inputs": siesta_case("h2o", tools),
            "main_input": "h2o.fdf",
            "resources": {"tasks": 1, "walltime_s": 300},
            "max_concurrent": 2,
            "variants": [
                {"label": "a", "parameters": {"MeshCutoff": "40 Ry"}},
                {"label": "capped", "parameters": {"MaxSCFIterations": 3}},
                {"label": "c", "parameters": {"MeshCutoff": "60 Ry"}},
            ],
        },
    )
    conns = ClusterConnections()

    def tick() -> None:
        dispatch_tick(env.engine, env.factory, conns, env.settings, claimed_by="task-recovery")
        harvest_tick(env.engine, env.factory, conns, env.settings)

    try:
        calc = env.run_until_settled(calc_id, tick, timeout=300)
    finally:
        conns.close()
    (step,) = env.steps(calc_id)
    with session_scope(env.factory) as s:
        tasks = {
            t.task_index: (t.state, t.attempt, t.state_reason)
            for t in s.scalars(select(ArrayTask).where(ArrayTask.step_id == step.id))
        }
        events = [
            m
            for m in s.scalars(
                select(ServiceLog.message).where(ServiceLog.calculation_id == calc_id)
            )
            if " recovery: " in m
        ]
    assert calc.state is CalculationState.COMPLETED, (step.state_reason, tasks)
    assert {k: v[:2] for k, v in tasks.items()} == {
        0: (StepState.FINISHED, 1),
        1: (StepState.FINISHED, step.attempt),
        2: (StepState.FINISHED, 1),
    }
    assert step.attempt >= 2
    assert step.spec["array_indices"] == [1]
    assert any("task 1 (capped) scf_not_converged: attempt 2" in e for e in events), events

    rows = _rows(env, step.id)
    rounds = [r for r in rows if r.task_index is None]
    task1 = [r for r in rows if r.task_index == 1]
    assert {r.task_index for r in rows} == {None, 1}  # tasks 0 and 2 were never retried
    assert [r.attempt for r in rounds] == list(range(1, step.attempt + 1))
    assert [r.attempt for r in task1] == list(range(1, step.attempt + 1))
    assert task1[0].verdict == "scf_not_converged"
    assert task1[0].state == StepState.INVALID.value
    assert {"key": "MaxSCFIterations", "old": "3", "new": 6} in task1[1].changes
    # Every round was its own job; the first round's job ran every task, the others only 1.
    jobs = [r.scheduler_job_id for r in rounds[:-1]] + [step.scheduler_job_id]
    assert all(jobs), jobs
    assert len(set(jobs)) == len(jobs), jobs
    assert task1[0].scheduler_job_id == f"{jobs[0]}_1"
    first_dir = Path(rounds[0].workdir or "")
    last_dir = Path(step.workdir or "")
    for k in (0, 1, 2):  # round 1 ran all three tasks, once each
        assert len(list((first_dir / ".hpcgate").glob(f"*_{k}.start"))) == 1, k
    assert sorted(p.name for p in (last_dir / ".hpcgate").glob("*.start")) == [
        f"{step.scheduler_job_id}_1.start"
    ]
    assert not (last_dir / "task-0").exists()
    assert not (last_dir / "task-2").exists()

    out = last_dir / "task-1" / "h2o.out"
    assert DM_READ_MARKER in out.read_text(errors="replace")  # continued from its own DM
    fdf = siesta_case("h2o", tools)
    reference = final_energy_ev(run_siesta(tmp_path / "direct", fdf, "h2o.fdf"))
    assert final_energy_ev(out) == pytest.approx(reference, abs=1e-3)

    with session_scope(env.factory) as s:
        user = s.get(User, env.user_id)
        assert user is not None
        headers = auth_headers(user, env.settings)
    with api_client(env.settings, env.engine) as client:
        body = client.get(f"/steps/{step.id}", headers=headers)
    assert body.status_code == 200, body.text
    by_index = {t["task_index"]: t for t in body.json()["tasks"]}
    assert by_index[0]["attempts"] == []
    assert by_index[0]["attempt"] == 1
    shown = by_index[1]["attempts"]
    assert [a["attempt"] for a in shown] == list(range(1, step.attempt + 1))
    assert shown[0]["verdict"] == "scf_not_converged"
    assert shown[-1]["state"] == "finished"
    assert shown[-1]["scheduler_job_id"] == f"{step.scheduler_job_id}_1"


def test_agent_mode_retries_the_unconverged_task(env: EngineEnv, tmp_path: Path) -> None:
    """The real agent (thread) and the real API: the round travels as a work item with its
    indices, the agent submits it and reports its tasks; the sweep completes."""
    import threading

    from hpcgate.agent.config import AgentConfig
    from hpcgate.agent.loop import Agent
    from hpcgate.api.app import create_app
    from hpcgate.domain.access import ApiKeyOwner
    from hpcgate.services.api_keys import create_api_key
    from tests.helpers.engine_env import terminal
    from tests.helpers.live_api import live_server

    tools = require_siesta()
    scratch = tmp_path / "scratch"
    name = f"task-agent-{uuid.uuid4().hex[:6]}"
    cid = env.add_cluster(name, scheduler="slurm", access_mode=AccessMode.AGENT,
                          scratch_root=str(scratch))  # fmt: skip
    with session_scope(env.factory) as s:
        _, key = create_api_key(s, owner_kind=ApiKeyOwner.CLUSTER, name="a", cluster_id=cid)
    calc_id = env.create(
        name="H2O sweep via the agent", cluster_id=cid, logical_queue="default", code="siesta",
        configuration={
            "kind": "sweep", "inputs": siesta_case("h2o", tools), "main_input": "h2o.fdf",
            "resources": {"tasks": 1, "walltime_s": 300},
            "variants": [{"label": "capped", "parameters": {"MaxSCFIterations": 3}},
                         {"label": "plain", "parameters": {}}],
        },
    )  # fmt: skip
    app = create_app(env.settings, engine=env.engine)
    stop = threading.Event()
    with live_server(app) as base:
        agent = Agent(AgentConfig(
            api_url=base, api_key=key, cluster=name, name="task-agent",
            scratch_root=scratch, state_dir=tmp_path / "state",
            intervals={"pull_s": 1, "harvest_s": 1, "heartbeat_s": 3600, "cleanup_s": 3600,
                       "pull_wait_s": 0, "jitter": 0},
        ))  # fmt: skip
        thread = threading.Thread(target=agent.run, args=(stop,), daemon=True)
        thread.start()
        try:
            deadline = time.monotonic() + 300
            while not terminal(env.calc(calc_id).state):
                assert time.monotonic() < deadline, "agent mode: the sweep did not settle"
                time.sleep(1)
        finally:
            stop.set()
            thread.join(60)
    (step,) = env.steps(calc_id)
    with session_scope(env.factory) as s:
        tasks = {
            t.task_index: (t.state, t.attempt)
            for t in s.scalars(select(ArrayTask).where(ArrayTask.step_id == step.id))
        }
    assert env.calc(calc_id).state is CalculationState.COMPLETED, (step.state_reason, tasks)
    assert tasks[1] == (StepState.FINISHED, 1)
    assert tasks[0] == (StepState.FINISHED, step.attempt)
    assert step.attempt >= 2
    assert step.spec["array_indices"] == [0]
    out = Path(step.workdir or "") / "task-0" / "h2o.out"
    assert DM_READ_MARKER in out.read_text(errors="replace")
