"""Stall detection of a sweep's running tasks (issue 17), applied by the harvest.

An array's tasks are independent runs: one stuck variant must be seen while the others
still work. Each running task arrives with its own live sample and output progress
(``engine/live_usage.py``: ``sstat`` of ``<array>_<k>``, a probe of ``task-<k>/``, in the
harvest's same two calls), and is judged exactly like a single step (``services/stall.py``:
the same window, policy and reasons) with its own ``task_liveness`` row. A stalled task is
flagged - ``task_liveness.stalled_at``, the task's ``state_reason`` (``stalled: ...``), a
``stalled`` line in the calculation's log and the notification - and unflagged when it
moves again. Under ``action: cancel_retry`` the task alone is cancelled (``cancel_pending``,
sent by the dispatcher as ``<array job>_<k>``, ``services/cancellations.py``) and marked
``stall_cancelled``: its end is FAILED with the verdict ``incomplete`` (``as_stalled``), so
when the array ends the per-task ladder (``services/task_recovery.py``) continues it, like a
single step handed to the ladder (``services/stall.hand_to_recovery``).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from hpcgate.db.models import ArrayTask, Calculation, Step
from hpcgate.db.models.liveness import TaskLiveness
from hpcgate.domain.states import StepState, step_settled
from hpcgate.engine.observe import aggregate
from hpcgate.engine.work import StepObservation
from hpcgate.services.events import calculation_event
from hpcgate.services.stall import (
    advance,
    mark_resumed,
    policy_of,
    stall_reason,
    store_window,
    window_of,
)
from hpcgate.settings import Settings

__all__ = ["as_stalled", "watch_tasks"]

STALL_CANCELLED = "stalled: cancelled for a retry"


def watch_tasks(
    s: Session, step: Step, obs: StepObservation, now: datetime, settings: Settings
) -> None:
    """Track each running task of the array ``step`` that brought figures this harvest."""
    sampled = {
        t.task_index: t
        for t in obs.tasks
        if t.state is StepState.RUNNING and (t.output_bytes is not None or t.cpu_time_s is not None)
    }
    if not sampled:
        return
    calc = s.get(Calculation, step.calculation_id)
    if calc is None:
        return
    policy = policy_of(calc.configuration, settings)
    tasks = s.scalars(
        select(ArrayTask).where(
            ArrayTask.step_id == step.id, ArrayTask.task_index.in_(list(sampled))
        )
    )
    for task in tasks:
        if task.state is not StepState.RUNNING:
            continue
        row = _row(s, task, now)
        w = advance(window_of(row), sampled[task.task_index], now, policy)
        store_window(row, w)
        reason = stall_reason(w, now, policy)
        if reason is None:
            if row.stalled_at is not None:
                what = f"step {step.index} task {task.task_index} ({task.label})"
                context = {"step_id": step.id, "task_index": task.task_index}
                mark_resumed(s, calc, row, task, what, context)
            continue
        task.state_reason = f"stalled: {reason}"  # the harvest rewrites it every tick
        if row.stalled_at is None:  # flagged (and notified) once
            row.stalled_at, row.stall_reason = now, reason
            message = (
                f"step {step.index} task {task.task_index} ({task.label}) is stalled: {reason}"
            )
            if policy.action == "cancel_retry":  # this task only; its siblings run on
                task.cancel_pending = task.stall_cancelled = True
                message += "; cancelled for a retry"
            calculation_event(s, calc, "stalled", message, level="error", settings=settings)


def _row(s: Session, task: ArrayTask, now: datetime) -> TaskLiveness:
    row = s.get(TaskLiveness, task.id, with_for_update=True)
    if row is None:  # first seen running with figures: the window starts now
        row = TaskLiveness(task_id=task.id, out_sizes={}, markers=0, progress_at=now)
        s.add(row)
        s.flush()
    return row


def as_stalled(s: Session, step: Step, obs: StepObservation) -> StepObservation:
    """An array's observation with its stall-cancelled tasks ended FAILED, not CANCELLED
    (a cancel of ours, not the user's), and the array's state aggregated again."""
    if not any(t.state is StepState.CANCELLED for t in obs.tasks):
        return obs
    rows = s.execute(
        select(ArrayTask.task_index, ArrayTask.state, ArrayTask.stall_cancelled).where(
            ArrayTask.step_id == step.id
        )
    ).all()
    marked = {int(i) for i, _, cancelled in rows if cancelled}
    if not marked:
        return obs
    tasks = tuple(
        replace(t, state=StepState.FAILED, reason=STALL_CANCELLED)
        if t.task_index in marked and t.state is StepState.CANCELLED
        else t
        for t in obs.tasks
    )
    seen = {t.task_index for t in tasks}
    earlier = [st for i, st, _ in rows if i not in seen and step_settled(st)]
    return replace(obs, state=aggregate([*earlier, *(t.state for t in tasks)]), tasks=tasks)
