"""What a harvest woken by a job's end applies (services/cluster_ticks.changed_observations)."""

from __future__ import annotations

import pytest

from hpcgate.domain.states import StepState
from hpcgate.engine.work import ActiveStep, StepObservation, TaskObservation
from hpcgate.services.cluster_ticks import changed_observations

pytestmark = pytest.mark.unit


def _step(step_id: int, state: StepState, array_size: int | None = None) -> ActiveStep:
    return ActiveStep(step_id, 1, str(100 + step_id), "/w", state, array_size=array_size)


def test_only_changed_states_and_arrays_are_applied() -> None:
    steps = [
        _step(1, StepState.RUNNING),  # still running: skipped
        _step(2, StepState.RUNNING),  # ended: applied
        _step(3, StepState.QUEUED),  # started: applied
        _step(4, StepState.QUEUED),  # not seen: left to the periodic harvest
        _step(5, StepState.RUNNING, array_size=2),  # an array: its tasks may have moved
    ]
    observations = [
        StepObservation(1, StepState.RUNNING, cpu_time_s=3.0),
        StepObservation(2, StepState.FINISHED, exit_code=0),
        StepObservation(3, StepState.RUNNING),
        StepObservation(4, None),
        StepObservation(5, StepState.RUNNING, tasks=(TaskObservation(0, StepState.FINISHED),)),
    ]
    assert [o.step_id for o in changed_observations(steps, observations)] == [2, 3, 5]
