"""Stall detection of running steps (issue 17 part 3), applied by the harvest.

Each harvest brings, for a RUNNING step, the size of its ``*.out`` files, the count of
progress markers in them (SCF iterations, geometry steps: ``engine/progress.py``) and its
CPU time so far (the live sample: ``engine/live_usage.py``). ``step_liveness`` keeps when
either last moved. A step is **stalled** when, for ``after_s`` seconds,

* its output has not grown and no marker was printed, or
* its CPU use stayed below ``min_cpu_ratio`` (CPU seconds per wall second, over the time
  since the last sample that showed it busy; 0 turns this test off).

Nothing is concluded from what was not measured (an unreadable directory, an adapter
without live samples). A stalled step keeps its state (RUNNING: it may still recover, and
``domain/states.py`` needs no new state); it is flagged: ``step_liveness.stalled_at`` and
its reason, the step's ``state_reason`` (``stalled: ...``), a ``stalled`` event in the
calculation's log (its timeline) and the notification (owner per their level, admins per
the notify rules). When it moves again the flag is cleared (a ``resumed`` log line).

Policy: ``settings.stall`` (``after_s`` 1800, ``min_cpu_ratio`` 0.02, ``action`` notify),
overridden per calculation by ``configuration.stall: {after_s, min_cpu_ratio, action}``.
``action: cancel_retry`` cancels the job (reason ``stalled``) and hands the step to the
recovery ladder (``hand_to_recovery``), which treats the stalled run as ``incomplete``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from hpcgate.db.models import ArrayTask, Calculation, Step
from hpcgate.db.models.liveness import StepLiveness, TaskLiveness
from hpcgate.domain.states import StepState, can_transition_step
from hpcgate.engine.work import StepObservation, TaskObservation
from hpcgate.errors import InvalidInput
from hpcgate.services.events import calculation_event, timeline_line
from hpcgate.settings import Settings

log = logging.getLogger(__name__)

ACTIONS = ("notify", "cancel_retry")
_KEYS = {"after_s", "min_cpu_ratio", "action"}


@dataclass(frozen=True)
class StallPolicy:
    after_s: float
    min_cpu_ratio: float
    action: str


def check_stall_config(configuration: Any) -> None:
    """At creation: ``configuration.stall`` must be well formed (InvalidInput, a 422)."""
    if isinstance(configuration, dict) and "stall" in configuration:
        _parse(configuration["stall"], StallPolicy(1800.0, 0.02, "notify"))


def _parse(raw: Any, base: StallPolicy) -> StallPolicy:
    if not isinstance(raw, dict) or set(raw) - _KEYS:
        raise InvalidInput(f"stall: a mapping of {sorted(_KEYS)}")
    after = raw.get("after_s", base.after_s)
    ratio = raw.get("min_cpu_ratio", base.min_cpu_ratio)
    action = raw.get("action", base.action)
    if isinstance(after, bool) or not isinstance(after, int | float) or not 1 <= after <= 1e7:
        raise InvalidInput("stall.after_s: seconds between 1 and 10,000,000")
    if isinstance(ratio, bool) or not isinstance(ratio, int | float) or not 0 <= ratio <= 1:
        raise InvalidInput("stall.min_cpu_ratio: a number between 0 and 1")
    if action not in ACTIONS:
        raise InvalidInput(f"stall.action: one of {', '.join(ACTIONS)}")
    return StallPolicy(float(after), float(ratio), str(action))


def policy_of(configuration: dict[str, Any], settings: Settings) -> StallPolicy:
    base = StallPolicy(settings.stall.after_s, settings.stall.min_cpu_ratio, settings.stall.action)
    try:
        return _parse(configuration.get("stall", {}), base)
    except InvalidInput as exc:  # checked at creation; an older row may not be
        log.warning("stall settings ignored: %s", exc)
        return base


@dataclass(frozen=True)
class Window:
    """What ``step_liveness`` remembers (the pure part of a row)."""

    output_bytes: int | None
    markers: int
    progress_at: datetime
    cpu_time_s: float | None
    cpu_at: datetime | None


def advance(
    w: Window, obs: StepObservation | TaskObservation, now: datetime, policy: StallPolicy
) -> Window:
    """The window after this observation: reset where the step showed life."""
    if obs.output_bytes is not None and (
        obs.output_bytes != w.output_bytes or (obs.progress_markers or 0) != w.markers
    ):
        w = replace(w, output_bytes=obs.output_bytes, markers=obs.progress_markers or 0,
                    progress_at=now)  # fmt: skip
    cpu = obs.cpu_time_s
    if cpu is None:
        return w
    if w.cpu_at is None or w.cpu_time_s is None or cpu < w.cpu_time_s:
        return replace(w, cpu_time_s=cpu, cpu_at=now)  # first sample (or a restarted count)
    wall = (now - w.cpu_at).total_seconds()
    if wall > 0 and (cpu - w.cpu_time_s) / wall >= policy.min_cpu_ratio > 0:
        return replace(w, cpu_time_s=cpu, cpu_at=now)  # busy since the last busy sample
    return w


def stall_reason(w: Window, now: datetime, policy: StallPolicy) -> str | None:
    """Why the step counts as stalled now, or None."""
    quiet = (now - w.progress_at).total_seconds()
    if w.output_bytes is not None and quiet >= policy.after_s:
        return (
            f"no new output for {quiet:.0f} s ({w.output_bytes} bytes, "
            f"{w.markers} SCF/geometry markers)"
        )
    if policy.min_cpu_ratio > 0 and w.cpu_at is not None:
        idle = (now - w.cpu_at).total_seconds()
        if idle >= policy.after_s:
            return f"CPU use below {policy.min_cpu_ratio:.0%} of one core for {idle:.0f} s"
    return None


def watch_progress(
    s: Session, step: Step, obs: StepObservation, now: datetime, settings: Settings
) -> str | None:
    """Track a RUNNING step's liveness; the job id to cancel if it was cancelled as stalled."""
    if step.state is not StepState.RUNNING or obs.state is not StepState.RUNNING:
        return None
    if step.array_size:
        from hpcgate.services.task_stall import watch_tasks

        watch_tasks(s, step, obs, now, settings)
        return None
    if obs.output_bytes is None and obs.cpu_time_s is None:
        return None
    row = s.get(StepLiveness, step.id, with_for_update=True)
    if row is None:  # first seen running with figures: the window starts now
        s.add(StepLiveness(step_id=step.id, out_sizes={}, markers=0, progress_at=now))
        s.flush()
        row = s.get(StepLiveness, step.id)
        assert row is not None
    calc = s.get(Calculation, step.calculation_id)
    if calc is None:
        return None
    policy = policy_of(calc.configuration, settings)
    w = advance(window_of(row), obs, now, policy)
    store_window(row, w)
    reason = stall_reason(w, now, policy)
    if reason is None:
        if row.stalled_at is not None:
            _resumed(s, calc, step, row)
        return None
    if row.stalled_at is not None:
        return None  # already flagged (and notified)
    row.stalled_at, row.stall_reason = now, reason
    step.state_reason = f"stalled: {reason}"
    message = f"step {step.index} ({step.label}) is stalled: {reason}"
    calculation_event(s, calc, "stalled", message, level="error", settings=settings)
    if policy.action == "cancel_retry":
        return _cancel_stalled(s, step, obs, reason, now, settings)
    return None


def window_of(row: StepLiveness | TaskLiveness) -> Window:
    total = (row.out_sizes or {}).get("bytes")
    return Window(
        int(total) if total is not None else None,
        row.markers,
        row.progress_at,
        row.cpu_time_s,
        row.cpu_at,
    )


def store_window(row: StepLiveness | TaskLiveness, w: Window) -> None:
    row.out_sizes = {} if w.output_bytes is None else {"bytes": w.output_bytes}
    row.markers, row.progress_at = w.markers, w.progress_at
    row.cpu_time_s, row.cpu_at = w.cpu_time_s, w.cpu_at


def _resumed(s: Session, calc: Calculation, step: Step, row: StepLiveness) -> None:
    what = f"step {step.index} ({step.label})"
    mark_resumed(s, calc, row, step, what, {"step_id": step.id})


def mark_resumed(
    s: Session,
    calc: Calculation,
    row: StepLiveness | TaskLiveness,
    holder: Step | ArrayTask,
    what: str,
    context: dict[str, Any],
) -> None:
    """``holder`` (a step or an array task) moves again: unflagged, a ``resumed`` line."""
    row.stalled_at, row.stall_reason = None, None
    if (holder.state_reason or "").startswith("stalled: "):
        holder.state_reason = None
    timeline_line(s, calc, "resumed", f"{what} makes progress again", **context)


def _cancel_stalled(
    s: Session, step: Step, obs: StepObservation, reason: str, now: datetime, settings: Settings
) -> str | None:
    """Cancel the job (reason ``stalled``), then offer the step to the recovery ladder."""
    job = step.scheduler_job_id
    if job is None or not can_transition_step(step.state, StepState.FAILED):
        return None
    step.cancel_pending = True
    step.state = StepState.FAILED
    step.state_reason = f"stalled: {reason}"[:4000]
    step.finished_at = now
    if hand_to_recovery(s, step, obs, settings):
        # A new attempt (PLANNED, no job id yet): its dispatcher cancels the stalled job
        # before it resubmits, like a withdrawn dependent's.
        spec = dict(step.spec)
        spec["withdrawn_jobs"] = [*spec.get("withdrawn_jobs", []), job]
        step.spec = spec
        step.cancel_pending = False
    return job


def hand_to_recovery(s: Session, step: Step, obs: StepObservation, settings: Settings) -> bool:
    """The hook between stall detection and the recovery ladder (``services/recovery.py``):
    the stalled run is offered as ``incomplete`` (restart from its files). True when the
    ladder scheduled another attempt; False leaves the step FAILED (reason ``stalled``)."""
    from hpcgate.services.recovery import retry_if_recoverable

    stalled = replace(obs, state=StepState.FAILED, native_state="STALLED",
                      validation={"status": "incomplete", "reason": "stalled"})  # fmt: skip
    return retry_if_recoverable(s, step, stalled, settings)
