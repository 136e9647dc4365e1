"""Every allowed and every refused transition of both state machines."""

from __future__ import annotations

import itertools

import pytest

from hpcgate.domain.states import (
    CALCULATION_TRANSITIONS,
    STEP_TRANSITIONS,
    CalculationState,
    IllegalTransition,
    StepState,
    calculation_outcome,
    transition_calculation,
    transition_step,
)

C = CalculationState
S = StepState

EXPECTED_CALC_ALLOWED = {
    (C.PENDING_APPROVAL, C.READY),
    (C.PENDING_APPROVAL, C.REJECTED),
    (C.PENDING_APPROVAL, C.CANCELLED),
    (C.READY, C.SUBMITTING),
    (C.READY, C.CANCELLED),
    (C.SUBMITTING, C.SUBMITTED),
    (C.SUBMITTING, C.READY),
    (C.SUBMITTING, C.FAILED),
    (C.SUBMITTING, C.CANCELLED),
    (C.SUBMITTED, C.RUNNING),
    (C.SUBMITTED, C.COMPLETED),
    (C.SUBMITTED, C.FAILED),
    (C.SUBMITTED, C.CANCELLED),
    (C.RUNNING, C.COMPLETED),
    (C.RUNNING, C.FAILED),
    (C.RUNNING, C.CANCELLED),
    # A step's retry (recovery ladder) waits to be submitted.
    (C.SUBMITTED, C.SUBMITTING),
    (C.RUNNING, C.SUBMITTING),
}

EXPECTED_STEP_ALLOWED = {
    (S.PLANNED, S.SUBMITTING),
    (S.PLANNED, S.CANCELLED),
    (S.SUBMITTING, S.QUEUED),
    (S.SUBMITTING, S.PLANNED),
    (S.SUBMITTING, S.FAILED),
    (S.SUBMITTING, S.CANCELLED),
    *((S.QUEUED, t) for t in (S.RUNNING, S.FINISHED, S.INVALID, S.FAILED, S.CANCELLED, S.LOST)),
    *((S.RUNNING, t) for t in (S.FINISHED, S.INVALID, S.FAILED, S.CANCELLED, S.LOST)),
    (S.FINISHED, S.HARVESTED),
    (S.FINISHED, S.FAILED),
    (S.HARVESTED, S.CLEANED),
    (S.INVALID, S.CLEANED),
    (S.FAILED, S.CLEANED),
    (S.CANCELLED, S.CLEANED),
    *((S.LOST, t) for t in (S.RUNNING, S.FINISHED, S.INVALID, S.FAILED, S.CANCELLED)),
    # The recovery ladder: a new attempt, and a dependent withdrawn until it is submitted.
    (S.INVALID, S.PLANNED),
    (S.FAILED, S.PLANNED),
    (S.QUEUED, S.PLANNED),
}


def test_tables_cover_every_state() -> None:
    assert set(CALCULATION_TRANSITIONS) == set(C)
    assert set(STEP_TRANSITIONS) == set(S)


def test_calculation_table_is_exactly_the_expected_one() -> None:
    actual = {(a, b) for a, targets in CALCULATION_TRANSITIONS.items() for b in targets}
    assert actual == EXPECTED_CALC_ALLOWED


def test_step_table_is_exactly_the_expected_one() -> None:
    actual = {(a, b) for a, targets in STEP_TRANSITIONS.items() for b in targets}
    assert actual == EXPECTED_STEP_ALLOWED


@pytest.mark.parametrize(("current", "target"), list(itertools.product(C, C)))
def test_calculation_transition(current: C, target: C) -> None:
    if (current, target) in EXPECTED_CALC_ALLOWED:
        assert transition_calculation(current, target) is target
    else:
        with pytest.raises(IllegalTransition) as info:
            transition_calculation(current, target)
        assert info.value.current is current
        assert info.value.target is target
        assert f"{current.value} -> {target.value}" in str(info.value)


@pytest.mark.parametrize(("current", "target"), list(itertools.product(S, S)))
def test_step_transition(current: S, target: S) -> None:
    if (current, target) in EXPECTED_STEP_ALLOWED:
        assert transition_step(current, target) is target
    else:
        with pytest.raises(IllegalTransition):
            transition_step(current, target)


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        ([], None),
        ([S.FINISHED, S.RUNNING], None),
        ([S.HARVESTED, S.FINISHED, S.CLEANED], C.COMPLETED),
        ([S.FINISHED, S.INVALID, S.CANCELLED], C.FAILED),
        ([S.FINISHED, S.CANCELLED], C.CANCELLED),
        ([S.FAILED], C.FAILED),
        ([S.LOST, S.FINISHED], None),
    ],
)
def test_calculation_outcome(states: list[S], expected: C | None) -> None:
    assert calculation_outcome(states) == expected
