"""The per-task recovery ladder's decisions on the real PostgreSQL (issue 17), the harvest
driven directly (``apply_observations``, the code both the worker and the agent reports
reach), so every rule is checked without waiting for a code to run:

* round 1: a converged task stays, an unconverged one is retried alone (its own changed
  input, rows per task and per round, the calculation back to SUBMITTING), a task that
  failed without a recoverable verdict is not retried;
* round 2: the retried task fails again with ``max_attempts`` 2 reached: it gives up (a
  timeline line), the step and the calculation fail, the task's last attempt is recorded
  with its own job id;
* the process applying round 1 is SIGKILLed after the decision was flushed, before the
  commit (crash point ``after_retry_decided``): nothing of it survives, and the same report
  applied again decides the round once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from hpcgate.db.models import ArrayTask, Calculation, ServiceLog, Step, StepAttempt
from hpcgate.db.models.clusters import AccessMode
from hpcgate.db.models.liveness import TaskLiveness
from hpcgate.db.session import session_scope
from hpcgate.domain.states import CalculationState, StepState
from hpcgate.engine.work import StepObservation, TaskObservation
from hpcgate.services.harvest import apply_observations
from tests.helpers.engine_env import EngineEnv, engine_env

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
H2 = "&control\n  calculation='scf'\n/\n&system\n  ecutwfc=25.0\n/\n&electrons\n/\n"
UNCONVERGED = {"status": "scf_not_converged"}


@pytest.fixture
def env(tmp_path: Path, postgres_available: str) -> Iterator[EngineEnv]:
    with engine_env(tmp_path, "hpcgate_task_rules") as e:
        yield e


def _qe_sweep(env: EngineEnv, tmp_path: Path, name: str, n: int, **config: Any) -> tuple[int, int]:
    """A QE sweep of ``n`` variants on a local cluster: (cluster id, calculation id)."""
    scratch = str(tmp_path / "scratch")
    cid = env.add_cluster(name, scheduler="local", access_mode=AccessMode.LOCAL,
                          scratch_root=scratch, queues={"default": "local"})  # fmt: skip
    variants = [{"label": f"v{i}", "parameters": {"system.ecutwfc": 25 + i}} for i in range(n)]
    calc_id = env.create(name=f"H2 {name}", cluster_id=cid, logical_queue="default", code="qe",
                         configuration={"kind": "sweep", "inputs": {"pw.in": H2},
                                        "variants": variants, **config})  # fmt: skip
    return cid, calc_id


def _queued(env: EngineEnv, calc_id: int, job: str) -> Step:
    """The step as the dispatcher leaves it: queued under ``job``."""
    with session_scope(env.factory) as s:
        s.execute(update(Step).where(Step.calculation_id == calc_id)
                  .values(state=StepState.QUEUED, scheduler_job_id=job))  # fmt: skip
        s.execute(update(Calculation).where(Calculation.id == calc_id)
                  .values(state=CalculationState.SUBMITTED))  # fmt: skip
    (step,) = env.steps(calc_id)
    return step


def _report(env: EngineEnv, cid: int, obs: StepObservation) -> None:
    with session_scope(env.factory) as s:
        apply_observations(s, cid, [obs], lost_after=3, settings=env.settings)


def _tasks(env: EngineEnv, step_id: int) -> dict[int, tuple[StepState, int, str | None]]:
    with session_scope(env.factory) as s:
        rows = s.scalars(select(ArrayTask).where(ArrayTask.step_id == step_id))
        return {t.task_index: (t.state, t.attempt, t.verdict) for t in rows}


def _rows(
    env: EngineEnv, step_id: int
) -> list[tuple[int | None, int, str, str | None, str | None]]:
    with session_scope(env.factory) as s:
        rows = s.scalars(
            select(StepAttempt)
            .where(StepAttempt.step_id == step_id)
            .order_by(StepAttempt.task_index.nulls_first(), StepAttempt.attempt)
        )
        return [(r.task_index, r.attempt, r.state, r.verdict, r.scheduler_job_id) for r in rows]


def test_tasks_are_retried_alone_and_give_up_on_their_own(env: EngineEnv, tmp_path: Path) -> None:
    cid, calc_id = _qe_sweep(env, tmp_path, "rules", 3, recovery={"max_attempts": 2})
    step = _queued(env, calc_id, "L1")
    _report(env, cid, StepObservation(step.id, StepState.FAILED, tasks=(
        TaskObservation(0, StepState.FINISHED, exit_code=0, validation={"status": "converged"}),
        TaskObservation(1, StepState.INVALID, exit_code=3, validation=UNCONVERGED),
        TaskObservation(2, StepState.FAILED, exit_code=1),
    )))  # fmt: skip

    (step,) = env.steps(calc_id)
    assert env.calc(calc_id).state is CalculationState.SUBMITTING
    assert (step.state, step.attempt, step.scheduler_job_id) == (StepState.PLANNED, 2, None)
    assert step.spec["array_indices"] == [1]
    assert step.spec["attempt_inherit"]["per_task"] is True
    assert (step.workdir or "").endswith(".a2")
    assert "electron_maxstep" in step.spec["files"]["task-1/pw.in"]
    assert "electron_maxstep" not in step.spec["files"]["task-0/pw.in"]
    assert _tasks(env, step.id) == {
        0: (StepState.FINISHED, 1, "converged"),
        1: (StepState.PLANNED, 2, None),
        2: (StepState.FAILED, 1, None),  # no recoverable verdict: not retried
    }
    assert _rows(env, step.id) == [
        (None, 1, "failed", None, "L1"),
        (None, 2, "planned", None, None),
        (1, 1, "invalid", "scf_not_converged", "L1_1"),
        (1, 2, "planned", None, None),
    ]

    step = _queued(env, calc_id, "M2")  # the round's job; tasks 0 and 2 stay settled
    _report(env, cid, StepObservation(step.id, StepState.FAILED, tasks=(
        TaskObservation(1, StepState.INVALID, exit_code=3, validation=UNCONVERGED),
    )))  # fmt: skip

    (step,) = env.steps(calc_id)
    assert step.state is StepState.FAILED
    assert step.attempt == 2
    assert env.calc(calc_id).state is CalculationState.FAILED
    assert _tasks(env, step.id)[1] == (StepState.INVALID, 2, "scf_not_converged")
    assert _rows(env, step.id)[-1] == (1, 2, "invalid", "scf_not_converged", "M2_1")
    with session_scope(env.factory) as s:
        lines = [m for m in s.scalars(select(ServiceLog.message)
                 .where(ServiceLog.calculation_id == calc_id)) if " recovery: " in m]  # fmt: skip
    assert len([m for m in lines if "task 1 (v1) scf_not_converged: attempt 2" in m]) == 1
    assert len([m for m in lines if "task 1 (v1) gives up after attempt 2" in m]) == 1


def _round_one(step_id: int) -> StepObservation:
    return StepObservation(step_id, StepState.FAILED, tasks=(
        TaskObservation(0, StepState.FINISHED, exit_code=0, validation={"status": "converged"}),
        TaskObservation(1, StepState.INVALID, exit_code=3, validation=UNCONVERGED),
    ))  # fmt: skip


def test_a_harvest_killed_while_deciding_a_round_leaves_nothing(
    env: EngineEnv, tmp_path: Path
) -> None:
    cid, calc_id = _qe_sweep(env, tmp_path, "crash", 2)
    step = _queued(env, calc_id, "L7")
    report = json.dumps(_round_one(step.id).to_dict())
    cmd = [sys.executable, "-m", "tests.helpers.crash_apply", env.url, str(tmp_path), str(cid),
           report]  # fmt: skip
    crashed = subprocess.run(
        cmd, cwd=REPO, env={**os.environ, "HPCGATE_FAULT_CRASH_AT": "after_retry_decided"},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert crashed.returncode == -9, crashed.stderr[-2000:]
    (after,) = env.steps(calc_id)
    assert (after.state, after.attempt, after.scheduler_job_id) == (StepState.QUEUED, 1, "L7")
    assert _rows(env, step.id) == []
    assert _tasks(env, step.id) == {
        0: (StepState.PLANNED, 1, None),
        1: (StepState.PLANNED, 1, None),
    }

    _report(env, cid, StepObservation.from_dict(json.loads(report)))  # the next harvest
    (after,) = env.steps(calc_id)
    assert (after.state, after.attempt, after.spec["array_indices"]) == (StepState.PLANNED, 2, [1])
    assert [r[:2] for r in _rows(env, step.id)] == [(None, 1), (None, 2), (1, 1), (1, 2)]
    _report(env, cid, StepObservation.from_dict(json.loads(report)))  # a stale repeat: ignored
    assert [r[:2] for r in _rows(env, step.id)] == [(None, 1), (None, 2), (1, 1), (1, 2)]


def test_a_task_cancelled_as_stalled_is_continued_alone(env: EngineEnv, tmp_path: Path) -> None:
    """``stall.action: cancel_retry`` on a sweep (services/task_stall.py): the task the
    harvest cancelled as stalled ends CANCELLED in the scheduler; it counts as FAILED with
    the verdict ``incomplete`` (not the user's cancel), so when the array ends it alone is
    continued, watched afresh; its converged sibling stays."""
    cid, calc_id = _qe_sweep(env, tmp_path, "stall-rules", 2, resources={"walltime_s": 600},
                             stall={"after_s": 60, "action": "cancel_retry"})  # fmt: skip
    step = _queued(env, calc_id, "S1")
    with session_scope(env.factory) as s:  # as watch_tasks leaves it (tested on real Slurm)
        s.execute(update(ArrayTask).where(ArrayTask.step_id == step.id, ArrayTask.task_index == 0)
                  .values(state=StepState.RUNNING, stall_cancelled=True))  # fmt: skip
        task0 = s.scalars(select(ArrayTask.id).where(ArrayTask.step_id == step.id,
                                                     ArrayTask.task_index == 0)).one()  # fmt: skip
        now = datetime.now(UTC)
        s.add(TaskLiveness(task_id=task0, out_sizes={}, markers=1, progress_at=now,
                           stalled_at=now))  # fmt: skip
    _report(env, cid, StepObservation(step.id, StepState.CANCELLED, tasks=(
        TaskObservation(0, StepState.CANCELLED, native_state="CANCELLED", exit_code=0),
        TaskObservation(1, StepState.FINISHED, exit_code=0, validation={"status": "converged"}),
    )))  # fmt: skip

    (step,) = env.steps(calc_id)
    assert (step.state, step.attempt) == (StepState.PLANNED, 2)
    assert step.spec["array_indices"] == [0]
    assert env.calc(calc_id).state is CalculationState.SUBMITTING
    assert _tasks(env, step.id) == {
        0: (StepState.PLANNED, 2, None),
        1: (StepState.FINISHED, 1, "converged"),
    }
    assert _rows(env, step.id)[2] == (0, 1, "failed", "incomplete", "S1_0")
    with session_scope(env.factory) as s:
        task = s.get(ArrayTask, task0)
        assert task is not None
        assert not task.stall_cancelled
        assert not task.cancel_pending
        assert s.get(TaskLiveness, task0) is None  # the new run is watched afresh
