"""The recovery ladder's database side (issue 17): a step that ended unconverged is retried.

Called by the harvest (``services/harvest.py``) in the transaction that records the step's
end, so the decision and the new attempt are committed together - before anything is
submitted - or not at all (a crash before the commit: the next harvest sees the same end
and decides again; after it: the dispatcher finds a PLANNED step and submits it through
the durable submission, whose job name carries the attempt number). In that transaction:

* every attempt gets its ``step_attempts`` row (the ended one: job id, state, verdict,
  workdir; the new one: the rung and the changes made);
* the step becomes the new attempt: PLANNED, no job id, job name ``...-a<N>``, its own
  directory ``<step dir>.a<N>`` (the previous attempt's files stay), the changed input
  and the files to continue from (``spec.attempt_inherit``, rendered by ``_inherit.j2``);
* queued dependents are withdrawn (PLANNED again, renamed, their old job cancelled by the
  dispatcher before it resubmits: ``spec.withdrawn_jobs``), so they run once, after the
  attempt that succeeds;
* the calculation goes back to SUBMITTING, its claim free, the dispatcher woken.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from itertools import pairwise
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, object_session

from hpcgate.codes.recovery import (
    AttemptRecord,
    GiveUp,
    Policy,
    Retry,
    all_changes,
    next_attempt,
    parse_policy,
)
from hpcgate.codes.registry import get_plugin
from hpcgate.db.models import (
    Calculation,
    Cluster,
    QueueMapping,
    Step,
    StepAttempt,
    StepEdge,
)
from hpcgate.db.models.liveness import StepLiveness
from hpcgate.domain.states import CalculationState, StepState, transition_calculation
from hpcgate.engine.faults import crash_point
from hpcgate.engine.observe import TIMEOUT_REASON
from hpcgate.engine.work import StepObservation, TaskObservation
from hpcgate.errors import InvalidInput
from hpcgate.metrics.registry import RECOVERY_ATTEMPTS
from hpcgate.services.events import timeline_line
from hpcgate.services.wakeup import notify_work
from hpcgate.settings import Settings

log = logging.getLogger(__name__)

__all__ = [
    "attempt_history",
    "attempts_of",
    "check_recovery",
    "retry_if_recoverable",
    "verdict_of",
]

RETRYABLE_CALC = (
    CalculationState.SUBMITTED,
    CalculationState.RUNNING,
    CalculationState.SUBMITTING,
)
_WITHDRAWABLE = (StepState.PLANNED, StepState.SUBMITTING, StepState.QUEUED)


def check_recovery(code: str, configuration: Any) -> None:
    """At creation: ``configuration.recovery`` must parse (InvalidInput, a 422, if not)."""
    if isinstance(configuration, dict) and "recovery" in configuration:
        parse_policy(configuration["recovery"], get_plugin(code).recovery)


def verdict_of(obs: StepObservation | TaskObservation) -> str | None:
    """The validator's verdict; a job killed at its time limit is ``incomplete`` (Slurm's
    TIMEOUT and its PBS equivalents arrive as the observation's ``TIMEOUT_REASON``)."""
    status = (obs.validation or {}).get("status")
    if obs.reason == TIMEOUT_REASON or (obs.native_state or "").upper().startswith("TIMEOUT"):
        return "incomplete"
    return str(status) if status else None


def policy_for(calc: Calculation, cluster: Cluster | None) -> Policy:
    recovery = get_plugin(calc.code).recovery
    raw = calc.configuration.get("recovery")
    if raw is None and cluster is not None:
        raw = cluster.options.get("recovery")  # a cluster's own default
    try:
        return parse_policy(raw, recovery)
    except InvalidInput as exc:
        log.warning("calculation %s: recovery settings ignored: %s", calc.id, exc)
        return Policy(enabled=False)


def history_of(rows: Sequence[StepAttempt]) -> list[AttemptRecord]:
    out = [AttemptRecord(1, None, None)]
    for prev, row in pairwise(rows):
        out.append(AttemptRecord(row.attempt, row.rung, prev.verdict))
    return out


def attempt_rows(s: Session, step: Step) -> list[StepAttempt]:
    return list(
        s.scalars(
            select(StepAttempt)
            .where(StepAttempt.step_id == step.id, StepAttempt.task_index.is_(None))
            .order_by(StepAttempt.attempt)
        )
    )


def record_current(
    s: Session, step: Step, rows: list[StepAttempt], verdict: str | None
) -> StepAttempt:
    """The attempt that just ended, as its own row (created for attempt 1)."""
    row = next((r for r in rows if r.attempt == step.attempt), None)
    if row is None:
        row = StepAttempt(step_id=step.id, attempt=step.attempt, job_name=step.job_name, changes=[])
        s.add(row)
        rows.append(row)
    row.job_name = step.job_name
    row.scheduler_job_id = step.scheduler_job_id
    row.state = step.state.value
    row.verdict = verdict
    row.reason = step.state_reason
    row.workdir = step.workdir
    row.submitted_at, row.started_at = step.submitted_at, step.started_at
    row.finished_at = step.finished_at
    return row


def retry_if_recoverable(s: Session, step: Step, obs: StepObservation, settings: Settings) -> bool:
    """Called for a step that just ended INVALID or FAILED: schedule its next attempt if the
    ladder has one (True), else record the end of the last attempt and leave it (False)."""
    if step.state not in (StepState.INVALID, StepState.FAILED):
        return False
    if step.array_size:  # a sweep: its tasks, one by one (services/task_recovery.py)
        from hpcgate.services.task_recovery import retry_tasks

        return retry_tasks(s, step, settings)
    calc = s.get(Calculation, step.calculation_id, with_for_update=True)
    if calc is None or calc.state not in RETRYABLE_CALC:
        return False
    cluster = s.get(Cluster, calc.cluster_id)
    verdict = verdict_of(obs)
    rows = attempt_rows(s, step)
    spec = dict(step.spec)
    main = str(spec.get("context", {}).get("input") or "")
    text = dict(spec.get("files", {})).get(main, "")
    resources = dict(spec.get("resources", {}))
    decision = next_attempt(
        get_plugin(calc.code).recovery,
        policy_for(calc, cluster),
        verdict,
        history_of(rows),
        text,
        walltime_s=resources.get("walltime_s"),
        walltime_cap=walltime_cap(s, calc),
    )
    if isinstance(decision, GiveUp):
        if rows:  # a retried step: its last attempt and why there is no other
            record_current(s, step, rows, verdict)
            msg = f"step {step.index} ({step.label}) gives up after attempt {step.attempt}: "
            event(s, calc, step, msg + decision.reason)
        return False
    record_current(s, step, rows, verdict)
    _start_attempt(s, step, decision, main)
    withdrawn = withdraw_dependents(s, step)
    _resubmit(s, calc, step, decision, withdrawn)
    s.flush()
    crash_point("after_retry_decided")  # the kill -9 test: decided, not yet committed
    return True


def event(s: Session, calc: Calculation, step: Step, message: str) -> None:
    """A line of the calculation's log feed (its timeline); no mail: the end is mailed."""
    timeline_line(s, calc, "recovery", message, step_id=step.id, attempt=step.attempt)


def walltime_cap(s: Session, calc: Calculation) -> int | None:
    queue = s.scalar(
        select(QueueMapping).where(
            QueueMapping.cluster_id == calc.cluster_id,
            QueueMapping.logical_queue == calc.logical_queue,
        )
    )
    return queue.max_walltime_s if queue is not None else None


def renamed(name: str, pattern: str, replacement: str) -> str:
    new = re.sub(pattern, replacement, name)
    return new if new != name else f"{name}{replacement.lstrip('-')}"


def _start_attempt(s: Session, step: Step, retry: Retry, main: str) -> None:
    """The step becomes its next attempt: PLANNED, its own directory and job name."""
    recovery = get_plugin(step.calculation.code).recovery
    assert recovery is not None  # a Retry comes only from a code with a ladder
    spec: dict[str, Any] = dict(step.spec)
    files = dict(spec.get("files", {}))
    if main in files:
        files[main] = recovery.apply(files[main], retry.input_changes)
    spec["files"] = files
    if retry.walltime_s is not None:
        spec["resources"] = {**dict(spec.get("resources", {})), "walltime_s": retry.walltime_s}
    spec["attempt_inherit"] = {"dir": step.workdir or "", "patterns": list(retry.inherit)}
    step.spec = spec
    reset_for_attempt(step, retry.attempt, f"{retry.rung} after {retry.verdict}")
    s.add(planned_row(step, retry))
    # A new run is watched afresh: the stall window (and flag) belonged to the last one.
    s.execute(delete(StepLiveness).where(StepLiveness.step_id == step.id))


def planned_row(
    step: Step, retry: Retry | None, task_index: int | None = None, workdir: str | None = None
) -> StepAttempt:
    """The row of an attempt just scheduled (the step, or one of its tasks, by ``retry``)."""
    return StepAttempt(
        step_id=step.id,
        task_index=task_index,
        attempt=retry.attempt if retry is not None else step.attempt,
        job_name=step.job_name,
        state=StepState.PLANNED.value,
        workdir=workdir or step.workdir,
        rung=retry.rung if retry is not None else None,
        changes=[c.to_dict() for c in all_changes(retry)] if retry is not None else [],
    )


def reset_for_attempt(step: Step, attempt: int, why: str) -> None:
    """The step row becomes attempt ``attempt``: PLANNED, its own directory and job name."""
    step.workdir = re.sub(r"\.a\d+$", "", step.workdir or "") + f".a{attempt}"
    step.job_name = renamed(step.job_name, r"-a\d+$", f"-a{attempt}")
    step.attempt = attempt
    step.state = StepState.PLANNED  # INVALID/FAILED -> PLANNED: a new attempt
    step.state_reason = f"attempt {attempt}: {why}"
    step.scheduler_job_id = None
    step.native_state = None
    step.exit_code = None
    step.unknown_ticks = 0
    step.submitted_at = step.started_at = step.finished_at = None


def withdraw_dependents(s: Session, step: Step) -> list[Step]:
    """Queued descendants wait again, renamed, for the new attempt (they run only once)."""
    found: set[int] = set()
    frontier = {step.id}
    while frontier:
        children = set(s.scalars(select(StepEdge.child_id).where(StepEdge.parent_id.in_(frontier))))
        frontier = children - found
        found |= children
    withdrawn = []
    for child in s.scalars(select(Step).where(Step.id.in_(found)).order_by(Step.id)):
        if child.state not in _WITHDRAWABLE or child.scheduler_job_id is None:
            continue
        spec = dict(child.spec)
        spec["withdrawn_jobs"] = [*spec.get("withdrawn_jobs", []), child.scheduler_job_id]
        child.spec = spec
        n = len(spec["withdrawn_jobs"])
        child.job_name = renamed(child.job_name, r"(-a\d+)(w\d+)?$", rf"\1w{n}")
        child.scheduler_job_id = None
        child.state = StepState.PLANNED
        child.state_reason = f"waits for attempt {step.attempt} of step {step.index}"
        child.native_state = None
        child.submitted_at = None
        withdrawn.append(child)
    return withdrawn


def _resubmit(
    s: Session,
    calc: Calculation,
    step: Step,
    retry: Retry,
    withdrawn: list[Step],
) -> None:
    """The calculation waits for the dispatcher again; the retry is told and counted."""
    changes = ", ".join(c.describe() for c in all_changes(retry)) or "no change"
    message = (
        f"step {step.index} ({step.label}) {retry.verdict}: attempt {retry.attempt} "
        f"({retry.rung}): {changes}"
    )
    if withdrawn:
        message += f"; dependents wait for it: {', '.join(str(w.index) for w in withdrawn)}"
    event(s, calc, step, message)
    RECOVERY_ATTEMPTS.labels(code=calc.code, verdict=retry.verdict).inc()
    reopen(s, calc)
    log.info("calculation %s: %s", calc.id, message)


def reopen(s: Session, calc: Calculation) -> None:
    """The calculation waits for the dispatcher again (claim free, dispatcher woken)."""
    if calc.state is not CalculationState.SUBMITTING:
        calc.state = transition_calculation(calc.state, CalculationState.SUBMITTING)
    calc.claimed_at = None  # any dispatcher may take it now
    notify_work(s, calc.cluster_id)


def attempts_of(s: Session, step_ids: Sequence[int]) -> dict[int, list[StepAttempt]]:
    """Recorded attempts by step id (steps never retried have none)."""
    out: dict[int, list[StepAttempt]] = {}
    if not step_ids:
        return out
    rows = s.scalars(
        select(StepAttempt)
        .where(StepAttempt.step_id.in_(list(step_ids)), StepAttempt.task_index.is_(None))
        .order_by(StepAttempt.step_id, StepAttempt.attempt)
    )
    for row in rows:
        out.setdefault(row.step_id, []).append(row)
    return out


def attempt_history(step: Step) -> list[dict[str, Any]]:
    """Every attempt of ``step``, oldest first, the current one as the step shows it now.

    A step never retried has no rows: its one attempt is the step itself (no query).
    """
    rows: list[StepAttempt] = []
    session = object_session(step)
    if step.attempt > 1 and session is not None:
        rows = attempts_of(session, [step.id]).get(step.id, [])
    out = [row_view(r) for r in rows if r.attempt < step.attempt]
    current = next((r for r in rows if r.attempt == step.attempt), None)
    out.append(
        {
            "attempt": step.attempt,
            "job_name": step.job_name,
            "scheduler_job_id": step.scheduler_job_id,
            "state": step.state.value,
            "verdict": None,
            "reason": step.state_reason,
            "workdir": step.workdir,
            "rung": current.rung if current else None,
            "changes": list(current.changes) if current else [],
            "submitted_at": step.submitted_at,
            "started_at": step.started_at,
            "finished_at": step.finished_at,
        }
    )
    return out


def row_view(r: StepAttempt) -> dict[str, Any]:
    """One recorded attempt as the API shows it (``AttemptOut``)."""
    return {
        "attempt": r.attempt,
        "job_name": r.job_name,
        "scheduler_job_id": r.scheduler_job_id,
        "state": r.state,
        "verdict": r.verdict,
        "reason": r.reason,
        "workdir": r.workdir,
        "rung": r.rung,
        "changes": list(r.changes),
        "submitted_at": r.submitted_at,
        "started_at": r.started_at,
        "finished_at": r.finished_at,
    }
