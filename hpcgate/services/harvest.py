"""Apply what a harvest observed (by the worker or reported by an agent) to the database.

Observations arrive typed (``StepState``, ``None`` for a job seen nowhere); applying them
lives here, once, for both modes: transitions go through ``can_transition_step``; a failed
or invalid step cancels its queued descendants (durably, ``cancel_pending``); a job unseen
for N ticks becomes LOST and notifies; a settled job's documents are stored
(``analysis_results``); the calculation's own state follows its steps.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import bindparam, or_, select
from sqlalchemy.orm import Session

from hpcgate.db.base import table_of
from hpcgate.db.models import ArrayTask, Calculation, HeartbeatSample, Step, StepEdge
from hpcgate.domain.states import (
    FAILED_STEP_STATES,
    CalculationState,
    StepState,
    calculation_outcome,
    can_transition_step,
    transition_calculation,
)
from hpcgate.engine.work import ActiveStep, StepObservation, TaskObservation
from hpcgate.metrics.lags import observe_harvest_lag
from hpcgate.services.analysis_results import (
    compute_analyses,
    store_step_results,
    store_task_results,
)
from hpcgate.services.events import calculation_event
from hpcgate.services.recovery import retry_if_recoverable, verdict_of
from hpcgate.services.refinement import refine_ladder
from hpcgate.services.stall import watch_progress
from hpcgate.services.task_stall import STALL_CANCELLED, as_stalled
from hpcgate.services.usage import record_step_usage
from hpcgate.settings import Settings
from scheduler_adapters.types import JobId

log = logging.getLogger(__name__)

ACTIVE = (StepState.SUBMITTING, StepState.QUEUED, StepState.RUNNING, StepState.LOST)
ENDED = (StepState.FINISHED, StepState.INVALID, StepState.FAILED, StepState.CANCELLED)
TASK_SETTLED = ENDED


_st, _tasks = table_of(Step), table_of(ArrayTask)
# An agent's every pull runs this; built once (Core: cache key memoised, rows as tuples).
# One query answers both "what to observe" and "what to cancel"; the OR is a BitmapOr of
# ix_steps_cluster_state and the partial ix_steps_cancel_pending.
_WATCHED = (
    select(
        _st.c.id,
        _st.c.calculation_id,
        _st.c.scheduler_job_id,
        _st.c.workdir,
        _st.c.state,
        _st.c.array_size,
        _st.c.unknown_ticks,
        _st.c.cancel_pending,
    )
    .where(
        _st.c.cluster_id == bindparam("cluster_id"),
        _st.c.scheduler_job_id.is_not(None),
        or_(_st.c.state.in_(ACTIVE), _st.c.cancel_pending.is_(True)),
    )
    .order_by(_st.c.id)
)
# An active array's settled tasks, and its tasks to cancel (a stalled task under
# ``cancel_retry``): one statement for both, only when an active step is an array.
_ARRAY_TASKS = select(
    _tasks.c.step_id, _tasks.c.task_index, _tasks.c.state, _tasks.c.cancel_pending
).where(
    _tasks.c.step_id.in_(bindparam("step_ids", expanding=True)),
    or_(_tasks.c.state.in_(TASK_SETTLED), _tasks.c.cancel_pending.is_(True)),
)


@dataclass(frozen=True)
class WatchedSteps:
    """A cluster's steps the scheduler may still hold, and the jobs waiting to be cancelled."""

    active: list[ActiveStep]
    # (step id, scheduler job id; an array task's is ``<array job>_<index>``)
    cancellations: list[tuple[int, str]]


def watched_steps(s: Session, cluster_id: int) -> WatchedSteps:
    """Only the columns the harvester needs: a step's ``spec`` carries its input files."""
    conn = s.connection()
    rows = conn.execute(_WATCHED, {"cluster_id": cluster_id}).all()
    active = [r for r in rows if r.state in ACTIVE]
    settled: dict[int, list[tuple[int, StepState]]] = {}
    cancellations = [(int(r.id), r.scheduler_job_id or "") for r in rows if r.cancel_pending]
    arrays = {r.id: r.scheduler_job_id for r in active if r.array_size}
    if arrays:
        tasks = conn.execute(_ARRAY_TASKS, {"step_ids": list(arrays)})
        for step_id, index, state, cancel in tasks:
            if state in TASK_SETTLED:
                settled.setdefault(step_id, []).append((index, state))
            elif cancel:
                cancellations.append((step_id, str(JobId(arrays[step_id] or "", index))))
    return WatchedSteps(
        active=[
            ActiveStep(
                settled_tasks=tuple(sorted(settled.get(r.id, []))),
                step_id=r.id,
                calculation_id=r.calculation_id,
                scheduler_job_id=r.scheduler_job_id or "",
                workdir=r.workdir or "",
                state=r.state,
                array_size=r.array_size,
                unknown_ticks=r.unknown_ticks,
            )
            for r in active
        ],
        cancellations=cancellations,
    )


def apply_observations(
    s: Session,
    cluster_id: int,
    observations: Sequence[StepObservation],
    *,
    lost_after: int,
    settings: Settings,
) -> list[str]:
    """Apply one tick's observations; return scheduler ids the dispatcher must now cancel."""
    now = datetime.now(UTC)
    touched: set[int] = set()
    settled: set[int] = set()  # calculations with a step that ended this tick
    cancels: list[str] = []
    # One statement locks every reported step, in id order (the order every writer takes
    # them), instead of one round trip per step: a report covers every active step.
    locked = {
        st.id: st
        for st in s.scalars(
            select(Step)
            .where(Step.id.in_({o.step_id for o in observations}))
            .order_by(Step.id)
            .with_for_update()
        )
    }
    for obs in sorted(observations, key=lambda o: o.step_id):  # parents before dependents
        step = locked.get(obs.step_id)
        if step is None or step.cluster_id != cluster_id or step.state not in ACTIVE:
            continue  # stale report (e.g. the user cancelled meanwhile)
        touched.add(step.calculation_id)
        _record_sample(s, step, obs, now)
        if step.array_size:
            obs = as_stalled(s, step, obs)  # a task we cancelled as stalled ends FAILED
        if obs.state is None:
            _count_unseen(s, step, lost_after, settings)
        elif _apply_seen(s, step, obs, obs.state, now):
            settled.add(step.calculation_id)
            retry_if_recoverable(s, step, obs, settings)  # the recovery ladder (issue 17)
        elif (job := watch_progress(s, step, obs, now, settings)) is not None:
            settled.add(step.calculation_id)  # cancelled as stalled (services/stall.py)
            cancels.append(job)
    for calc_id in sorted(touched):
        cancels += _settle_calculation(s, calc_id, now, settings, calc_id in settled)
    return cancels


def _count_unseen(s: Session, step: Step, lost_after: int, settings: Settings) -> None:
    """One more tick the scheduler did not know the job; enough of them and it is LOST."""
    step.unknown_ticks += 1
    if step.unknown_ticks < lost_after or step.state is StepState.LOST:
        return
    _move(step, StepState.LOST, f"unknown to the scheduler for {step.unknown_ticks} polls")
    calc = s.get(Calculation, step.calculation_id)
    if calc is not None:
        calculation_event(
            s,
            calc,
            "lost",
            f"step {step.index} ({step.label}) is lost",
            level="error",
            settings=settings,
        )


def _apply_seen(
    s: Session, step: Step, obs: StepObservation, target: StepState, now: datetime
) -> bool:
    """Move a step the scheduler knows towards ``target``; True when it ended this tick."""
    step.unknown_ticks = 0
    step.native_state = (obs.native_state or step.native_state or "")[:64] or None
    if obs.exit_code is not None:
        step.exit_code = obs.exit_code
    if obs.tasks:
        _apply_tasks(s, step, obs.tasks)
    if target is step.state:
        return False
    if target is StepState.RUNNING and step.started_at is None:
        step.started_at = now
    ended = target in ENDED
    if ended:
        step.finished_at = now
        observe_harvest_lag(obs.ended_at, now)
        store_step_results(s, step.id, obs)
        record_step_usage(s, step, obs, target)
    if not can_transition_step(step.state, target):
        # e.g. QUEUED seen while LOST: stay LOST until a real outcome is seen.
        if not (step.state is StepState.LOST and target is StepState.QUEUED):
            log.warning("step %s: ignoring %s -> %s", step.id, step.state, target)
        return ended
    _move(step, target, obs.reason)
    if target is StepState.FINISHED:
        _move(step, StepState.HARVESTED, None)
    return ended


def _move(step: Step, target: StepState, reason: str | None) -> None:
    if can_transition_step(step.state, target):
        step.state = target
        if reason:
            step.state_reason = reason[:4000]


def _apply_tasks(s: Session, step: Step, observed: Sequence[TaskObservation]) -> None:
    by_index = {
        t.task_index: t for t in s.scalars(select(ArrayTask).where(ArrayTask.step_id == step.id))
    }
    for obs in observed:
        task = by_index.get(obs.task_index)
        if task is not None:
            _apply_task(s, step, task, obs)


def _apply_task(s: Session, step: Step, task: ArrayTask, obs: TaskObservation) -> None:
    target = obs.state
    if target is not None and target is not task.state and can_transition_step(task.state, target):
        task.state = target
    elif target is not None and task.state is StepState.PLANNED:
        task.state = target  # tasks have no SUBMITTING phase of their own
    task.native_state = obs.native_state
    task.exit_code = obs.exit_code
    task.state_reason = obs.reason
    if task.state in ENDED:  # kept for the recovery ladder, decided when the array ends
        task.verdict = verdict_of(obs)
        if task.stall_cancelled and obs.reason == STALL_CANCELLED:  # ours: to continue
            task.verdict = "incomplete"
    store_task_results(s, step.id, obs)


def _record_sample(s: Session, step: Step, obs: StepObservation, now: datetime) -> None:
    if obs.cpu_time_s is None and obs.max_rss_kb is None:
        return
    s.add(
        HeartbeatSample(
            ts=now,
            cluster_id=step.cluster_id,
            step_id=step.id,
            scope="step",
            cpu_time_s=obs.cpu_time_s,
            max_rss_kb=obs.max_rss_kb,
        )
    )


def _descendants(s: Session, step_ids: set[int]) -> set[int]:
    found: set[int] = set()
    frontier = set(step_ids)
    while frontier:
        children = set(s.scalars(select(StepEdge.child_id).where(StepEdge.parent_id.in_(frontier))))
        frontier = children - found
        found |= children
    return found


def _settle_calculation(
    s: Session, calc_id: int, now: datetime, settings: Settings, step_ended: bool = False
) -> list[str]:
    """The calculation follows its steps; returns the jobs of doomed descendants to cancel."""
    calc = s.get(Calculation, calc_id, with_for_update=True)
    if calc is None:
        return []
    steps = list(s.scalars(select(Step).where(Step.calculation_id == calc_id)))
    cancels = _cancel_descendants_of_failures(s, steps)
    if step_ended and _is_ladder(calc):
        steps += refine_ladder(s, calc, steps)  # new points keep the ladder running
    if calc.state in (CalculationState.SUBMITTED,) and any(
        st.state in (StepState.RUNNING, StepState.FINISHED, StepState.HARVESTED) for st in steps
    ):
        calc.state = transition_calculation(calc.state, CalculationState.RUNNING)
    outcome = calculation_outcome([st.state for st in steps])
    if outcome is None or calc.state not in (CalculationState.SUBMITTED, CalculationState.RUNNING):
        if step_ended and _is_ladder(calc):
            s.flush()
            compute_analyses(s, calc)  # a ladder's I-V grows as its points arrive
        return cancels
    if outcome is CalculationState.CANCELLED:
        outcome = CalculationState.FAILED  # cancellations not asked for by a user are failures
    calc.state = transition_calculation(calc.state, outcome)
    calc.finished_at = now
    if outcome is CalculationState.COMPLETED:
        compute_analyses(s, calc)
        calculation_event(
            s,
            calc,
            "finished",
            "all steps converged; the report is ready",
            level="info",
            settings=settings,
        )
    else:
        _record_failure(s, calc, steps, settings)
    return cancels


def _is_ladder(calc: Calculation) -> bool:
    """A TranSIESTA ladder: its analyses are worth computing before every point is in."""
    return bool(calc.configuration.get("kind") == "transiesta")


def _cancel_descendants_of_failures(s: Session, steps: list[Step]) -> list[str]:
    """A failed or invalid step dooms what depends on it: cancelled now, durably."""
    failed = {st.id for st in steps if st.state in (StepState.FAILED, StepState.INVALID)}
    if not failed:
        return []
    doomed = _descendants(s, failed)
    cancels: list[str] = []
    for st in steps:
        if st.id in doomed and st.state in (StepState.PLANNED, *ACTIVE):
            if st.scheduler_job_id and not st.cancel_pending:
                st.cancel_pending = True
                cancels.append(st.scheduler_job_id)
            _move(st, StepState.CANCELLED, "a step it depends on did not succeed")
    return cancels


def _record_failure(s: Session, calc: Calculation, steps: list[Step], settings: Settings) -> None:
    """The first step that did not succeed (in order) is the calculation's reason."""
    bad = next(
        (
            st
            for st in sorted(steps, key=lambda x: x.index)
            if st.state in FAILED_STEP_STATES and st.state is not StepState.CANCELLED
        ),
        None,
    )
    reason = (
        f"step {bad.index} ({bad.label}): {bad.state_reason or bad.state.value}"
        if bad
        else "a step did not succeed"
    )
    calc.state_reason = reason[:4000]
    if _is_ladder(calc):
        s.flush()
        compute_analyses(s, calc)  # the I-V of the points that did converge (partial)
    event = "validation_failed" if bad and bad.state is StepState.INVALID else "error"
    calculation_event(s, calc, event, reason, level="error", settings=settings)
