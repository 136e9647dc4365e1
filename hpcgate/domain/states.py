"""State machines of calculations and steps, with explicit allowed transitions.

The scheduler's ``JobState`` is an observation; these are *our* states, which the
harvester moves along. Every change goes through ``transition`` so an illegal move
(e.g. a finished step going back to RUNNING because of a stale poll) raises
instead of silently corrupting history.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping


class IllegalTransition(Exception):
    def __init__(self, kind: str, current: enum.Enum, target: enum.Enum) -> None:
        super().__init__(f"illegal {kind} transition {current.value} -> {target.value}")
        self.kind = kind
        self.current = current
        self.target = target


class CalculationState(enum.StrEnum):
    PENDING_APPROVAL = "pending_approval"
    READY = "ready"  # approved (or no approval needed), waiting to be dispatched
    SUBMITTING = "submitting"
    SUBMITTED = "submitted"  # every step has a scheduler id
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    REJECTED = "rejected"


class StepState(enum.StrEnum):
    PLANNED = "planned"
    SUBMITTING = "submitting"  # committed before sbatch is called
    QUEUED = "queued"  # has a scheduler id; pending or held
    RUNNING = "running"
    FINISHED = "finished"  # job ended with exit 0 (validation passed inside the job)
    HARVESTED = "harvested"  # extracted results stored centrally
    CLEANED = "cleaned"  # scratch cleaned by policy
    INVALID = "invalid"  # ran, but validation says not converged
    FAILED = "failed"  # non-zero exit, timeout, OOM, node failure, submit refused
    CANCELLED = "cancelled"  # by a user, or because a parent failed
    LOST = "lost"  # unknown to the scheduler for N ticks


_C = CalculationState
_S = StepState

CALCULATION_TRANSITIONS: Mapping[CalculationState, frozenset[CalculationState]] = {
    _C.PENDING_APPROVAL: frozenset({_C.READY, _C.REJECTED, _C.CANCELLED}),
    _C.READY: frozenset({_C.SUBMITTING, _C.CANCELLED}),
    _C.SUBMITTING: frozenset({_C.SUBMITTED, _C.READY, _C.FAILED, _C.CANCELLED}),
    # -> SUBMITTING: a step's retry (recovery ladder) is waiting to be submitted.
    _C.SUBMITTED: frozenset({_C.RUNNING, _C.COMPLETED, _C.FAILED, _C.CANCELLED, _C.SUBMITTING}),
    _C.RUNNING: frozenset({_C.COMPLETED, _C.FAILED, _C.CANCELLED, _C.SUBMITTING}),
    _C.COMPLETED: frozenset(),
    _C.FAILED: frozenset(),
    _C.CANCELLED: frozenset(),
    _C.REJECTED: frozenset(),
}

STEP_TRANSITIONS: Mapping[StepState, frozenset[StepState]] = {
    _S.PLANNED: frozenset({_S.SUBMITTING, _S.CANCELLED}),
    # SUBMITTING -> PLANNED: the submit failed transiently and nothing reached the scheduler.
    _S.SUBMITTING: frozenset({_S.QUEUED, _S.PLANNED, _S.FAILED, _S.CANCELLED}),
    # QUEUED -> PLANNED: a dependent withdrawn to wait for its parent's next attempt.
    _S.QUEUED: frozenset(
        {_S.RUNNING, _S.FINISHED, _S.INVALID, _S.FAILED, _S.CANCELLED, _S.LOST, _S.PLANNED}
    ),
    _S.RUNNING: frozenset({_S.FINISHED, _S.INVALID, _S.FAILED, _S.CANCELLED, _S.LOST}),
    _S.FINISHED: frozenset({_S.HARVESTED, _S.FAILED}),
    _S.HARVESTED: frozenset({_S.CLEANED}),
    _S.CLEANED: frozenset(),
    # -> PLANNED: a new attempt of the step (the recovery ladder, services/recovery.py).
    _S.INVALID: frozenset({_S.CLEANED, _S.PLANNED}),
    _S.FAILED: frozenset({_S.CLEANED, _S.PLANNED}),
    _S.CANCELLED: frozenset({_S.CLEANED}),
    # A LOST job can reappear (e.g. slurmctld was restarted and accounting caught up).
    _S.LOST: frozenset({_S.RUNNING, _S.FINISHED, _S.INVALID, _S.FAILED, _S.CANCELLED}),
}

FINAL_CALCULATION_STATES = frozenset(s for s, nxt in CALCULATION_TRANSITIONS.items() if not nxt)
ACTIVE_STEP_STATES = frozenset({_S.SUBMITTING, _S.QUEUED, _S.RUNNING, _S.LOST})
SUCCESSFUL_STEP_STATES = frozenset({_S.FINISHED, _S.HARVESTED, _S.CLEANED})
FAILED_STEP_STATES = frozenset({_S.INVALID, _S.FAILED, _S.CANCELLED})


def can_transition_calculation(current: CalculationState, target: CalculationState) -> bool:
    return target in CALCULATION_TRANSITIONS[current]


def can_transition_step(current: StepState, target: StepState) -> bool:
    return target in STEP_TRANSITIONS[current]


def transition_calculation(current: CalculationState, target: CalculationState) -> CalculationState:
    if not can_transition_calculation(current, target):
        raise IllegalTransition("calculation", current, target)
    return target


def transition_step(current: StepState, target: StepState) -> StepState:
    if not can_transition_step(current, target):
        raise IllegalTransition("step", current, target)
    return target


def step_settled(state: StepState) -> bool:
    """True once a step will never run again (it may still be harvested or cleaned)."""
    return state in SUCCESSFUL_STEP_STATES or state in FAILED_STEP_STATES


def calculation_outcome(step_states: list[StepState]) -> CalculationState | None:
    """The calculation's final state implied by its steps, or None while work remains."""
    if not step_states or not all(step_settled(s) for s in step_states):
        return None
    if all(s in SUCCESSFUL_STEP_STATES for s in step_states):
        return CalculationState.COMPLETED
    if all(s in SUCCESSFUL_STEP_STATES or s is StepState.CANCELLED for s in step_states) and any(
        s is StepState.CANCELLED for s in step_states
    ):
        return CalculationState.CANCELLED
    return CalculationState.FAILED
