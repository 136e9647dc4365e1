"""The recovery ladder for a sweep's tasks (issue 17): retried one by one, not as a whole.

A sweep is one array step whose tasks are independent variants. When the array has ended
(every task settled) and some tasks of its last round ended with a recoverable verdict
(``array_tasks.verdict``, recorded by the harvest when each task settled), each of them gets
its next attempt from its code's ladder and its *own* history (rungs, ``max_attempts``);
tasks that finished, or gave up, stay as they are and are not submitted again.

The retried tasks form the array's next **round**: the step becomes attempt N, PLANNED,
with ``spec.array_indices`` (the job is ``--array=<those indices>``), its own directory
``<step dir>.a<N>`` in which task k continues from ``task-k`` of the previous round
(``spec.attempt_inherit`` with ``per_task``), each task's changed input, and a walltime
long enough for every task's rung. A task only ever leaves the retried set, so a task of
round N is on its attempt N: the step's ``attempt`` is the round.

Recorded like a single step's attempts (``step_attempts``), in the harvest's transaction
that records the array's end, before anything is submitted: per retried task (``task_index``
set) the ended attempt (job id ``<array job>_<k>``, state, verdict, directory) and the new
one (rung, changes); for the step itself (``task_index`` NULL) the ended round. A kill -9
before the commit leaves the array's end to be observed and decided again; after it the
round is an ordinary PLANNED step with a deterministic job name (``...-a<N>``).
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from hpcgate.codes.recovery import Retry, all_changes, next_attempt
from hpcgate.codes.registry import get_plugin
from hpcgate.db.models import ArrayTask, Calculation, Cluster, Step, StepAttempt
from hpcgate.db.models.liveness import TaskLiveness
from hpcgate.domain.plan import array_task_dirname
from hpcgate.domain.states import StepState
from hpcgate.engine.faults import crash_point
from hpcgate.metrics.registry import RECOVERY_ATTEMPTS
from hpcgate.services.recovery import (
    RETRYABLE_CALC,
    attempt_rows,
    event,
    history_of,
    planned_row,
    policy_for,
    record_current,
    reopen,
    reset_for_attempt,
    row_view,
    walltime_cap,
    withdraw_dependents,
)
from hpcgate.settings import Settings
from scheduler_adapters.types import JobId

log = logging.getLogger(__name__)

__all__ = ["retry_tasks", "round_indices", "task_attempt_history"]

_ENDED_BAD = (StepState.INVALID, StepState.FAILED)


def round_indices(step: Step) -> list[int]:
    """The task indices the step's current job holds (every task on the first round)."""
    indices = step.spec.get("array_indices")
    return [int(i) for i in indices] if indices else list(range(step.array_size or 0))


def _task_rows(s: Session, step_id: int) -> dict[int, list[StepAttempt]]:
    rows = s.scalars(
        select(StepAttempt)
        .where(StepAttempt.step_id == step_id, StepAttempt.task_index.is_not(None))
        .order_by(StepAttempt.task_index, StepAttempt.attempt)
    )
    out: dict[int, list[StepAttempt]] = {}
    for row in rows:
        out.setdefault(int(row.task_index or 0), []).append(row)
    return out


def retry_tasks(s: Session, step: Step, settings: Settings) -> bool:
    """The array ``step`` just ended INVALID/FAILED: schedule a round for its recoverable
    tasks (True), or record why the retried ones give up and leave it (False)."""
    calc = s.get(Calculation, step.calculation_id, with_for_update=True)
    if calc is None or calc.state not in RETRYABLE_CALC:
        return False
    tasks = {
        t.task_index: t for t in s.scalars(select(ArrayTask).where(ArrayTask.step_id == step.id))
    }
    rows = _task_rows(s, step.id)
    decided = _decide(s, calc, step, tasks, rows)
    if not decided:
        return False
    record_current(s, step, attempt_rows(s, step), None)  # the round that ended
    for k in decided:
        _record_task(s, step, tasks[k], rows.setdefault(k, []))
    _start_round(step, decided)
    s.add(planned_row(step, None))
    for k, retry in sorted(decided.items()):
        _retry_task(s, step, tasks[k], retry)
        RECOVERY_ATTEMPTS.labels(code=calc.code, verdict=retry.verdict).inc()
    withdrawn = withdraw_dependents(s, step)
    if withdrawn:
        event(s, calc, step, f"dependents wait for step {step.index}: "
              + ", ".join(str(w.index) for w in withdrawn))  # fmt: skip
    reopen(s, calc)
    s.flush()
    crash_point("after_retry_decided")  # the kill -9 test: decided, not yet committed
    return True


def _decide(
    s: Session,
    calc: Calculation,
    step: Step,
    tasks: dict[int, ArrayTask],
    rows: dict[int, list[StepAttempt]],
) -> dict[int, Retry]:
    """Each task of the round that ended badly: its next attempt, or why it gives up."""
    recovery = get_plugin(calc.code).recovery
    policy = policy_for(calc, s.get(Cluster, calc.cluster_id))
    spec = dict(step.spec)
    files = dict(spec.get("files", {}))
    main = str(spec.get("context", {}).get("input") or "")
    walltime = dict(spec.get("resources", {})).get("walltime_s")
    cap = walltime_cap(s, calc)
    decided: dict[int, Retry] = {}
    for k in round_indices(step):
        task = tasks.get(k)
        if task is None or task.state not in _ENDED_BAD:
            continue
        text = files.get(f"{array_task_dirname(k)}/{main}", "")
        history = history_of(rows.get(k, []))
        decision = next_attempt(
            recovery, policy, task.verdict, history, text, walltime_s=walltime, walltime_cap=cap
        )
        if isinstance(decision, Retry):
            decided[k] = decision
        elif rows.get(k):  # a retried task: its last attempt and why there is no other
            _record_task(s, step, task, rows[k])
            msg = f"step {step.index} task {k} ({task.label}) gives up after attempt "
            event(s, calc, step, f"{msg}{task.attempt}: {decision.reason}")
    return decided


def _start_round(step: Step, decided: dict[int, Retry]) -> None:
    """The step becomes the array's next round: only the retried tasks, each continuing
    from its own directory of the previous round."""
    recovery = get_plugin(step.calculation.code).recovery
    assert recovery is not None  # a Retry comes only from a code with a ladder
    spec: dict[str, Any] = dict(step.spec)
    files = dict(spec.get("files", {}))
    main = str(spec.get("context", {}).get("input") or "")
    patterns: list[str] = []
    for k, retry in sorted(decided.items()):
        path = f"{array_task_dirname(k)}/{main}"
        if path in files:
            files[path] = recovery.apply(files[path], retry.input_changes)
        patterns += [p for p in retry.inherit if p not in patterns]
    spec["files"] = files
    longer = [r.walltime_s for r in decided.values() if r.walltime_s is not None]
    if longer:
        spec["resources"] = {**dict(spec.get("resources", {})), "walltime_s": max(longer)}
    spec["array_indices"] = sorted(decided)
    spec["attempt_inherit"] = {"dir": step.workdir or "", "patterns": patterns, "per_task": True}
    step.spec = spec
    reset_for_attempt(step, step.attempt + 1, f"tasks {', '.join(map(str, sorted(decided)))}")


def _task_job(step: Step, k: int) -> str | None:
    return str(JobId(step.scheduler_job_id, k)) if step.scheduler_job_id else None


def _record_task(s: Session, step: Step, task: ArrayTask, rows: list[StepAttempt]) -> None:
    """The task's attempt that just ended, as its own row (created for attempt 1)."""
    row = next((r for r in rows if r.attempt == task.attempt), None)
    if row is None:
        row = StepAttempt(step_id=step.id, task_index=task.task_index, attempt=task.attempt,
                          job_name=step.job_name, changes=[])  # fmt: skip
        s.add(row)
        rows.append(row)
    row.job_name = step.job_name
    row.scheduler_job_id = _task_job(step, task.task_index)
    row.state = task.state.value
    row.verdict = task.verdict
    row.reason = task.state_reason
    row.workdir = f"{step.workdir}/{array_task_dirname(task.task_index)}"
    row.submitted_at, row.started_at = step.submitted_at, step.started_at
    row.finished_at = step.finished_at


def _retry_task(s: Session, step: Step, task: ArrayTask, retry: Retry) -> None:
    """Task ``task`` becomes its attempt ``retry.attempt`` in the round ``step`` now is."""
    task.attempt = retry.attempt
    task.state = StepState.PLANNED
    task.state_reason = f"attempt {retry.attempt}: {retry.rung} after {retry.verdict}"
    task.verdict = task.native_state = None
    task.exit_code = None
    task.cancel_pending = task.stall_cancelled = False  # a new run, watched afresh
    s.execute(delete(TaskLiveness).where(TaskLiveness.task_id == task.id))
    workdir = f"{step.workdir}/{array_task_dirname(task.task_index)}"
    s.add(planned_row(step, retry, task.task_index, workdir))
    changes = ", ".join(c.describe() for c in all_changes(retry)) or "no change"
    message = (
        f"step {step.index} task {task.task_index} ({task.label}) {retry.verdict}: "
        f"attempt {retry.attempt} ({retry.rung}): {changes}"
    )
    event(s, step.calculation, step, message)
    log.info("calculation %s: %s", step.calculation_id, message)


def task_attempt_history(
    s: Session, step: Step, tasks: list[ArrayTask]
) -> dict[int, list[dict[str, Any]]]:
    """Every attempt of each retried task of ``step``, oldest first, the current one as the
    task shows it now; a task never retried has none (its one attempt is the task itself)."""
    if step.attempt <= 1 or not step.array_size:
        return {}
    rows = _task_rows(s, step.id)
    current_round = set(round_indices(step))
    out: dict[int, list[dict[str, Any]]] = {}
    for task in tasks:
        found = rows.get(task.task_index)
        if not found:
            continue
        views = [row_view(r) for r in found if r.attempt <= task.attempt]
        last = views[-1]
        last.update(state=task.state.value, reason=task.state_reason, verdict=task.verdict)
        if task.task_index in current_round and last["attempt"] == step.attempt:
            last.update(
                scheduler_job_id=_task_job(step, task.task_index),
                submitted_at=step.submitted_at,
                started_at=step.started_at,
                finished_at=step.finished_at,
            )
        out[task.task_index] = views
    return out
