"""Typed step observations: every scheduler state maps onto exactly one ``StepState``.

The harvester turns what Slurm/PBS say (normalised by the adapters into ``JobState``) and
the job's own files into our states; nothing crosses into the service as a string. A job
seen nowhere is observed without a state (``None``), "unknown" only on the agent's wire.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

import pytest

from hpcgate.domain.states import StepState, step_settled
from hpcgate.engine.observe import LIVE_STATES, aggregate, classify, observe, step_state
from hpcgate.engine.work import (
    OBSERVABLE_STATES,
    ActiveStep,
    StepObservation,
    StepWork,
    TaskObservation,
)
from scheduler_adapters.pbs import states as pbs
from scheduler_adapters.slurm import parse as slurm
from scheduler_adapters.types import AccountingRecord, JobId, JobState, JobStatus

CONVERGED = {"status": "converged"}


@pytest.mark.parametrize("state", list(JobState))
def test_every_job_state_maps_to_exactly_one_observable_step_state(state: JobState) -> None:
    for exit_code in (0, 1, None):
        for validation in (None, CONVERGED, {"status": "not_converged"}):
            observed, _ = step_state(state, "X", exit_code, validation)
            assert isinstance(observed, StepState)
            assert observed in OBSERVABLE_STATES
            # the scheduler's own view decides whether the step is settled, never a file
            assert step_settled(observed) is state.is_final


@pytest.mark.parametrize("native", sorted(slurm._STATES))
def test_every_slurm_state_maps_to_one_step_state(native: str) -> None:
    job_state = slurm.map_state(native)
    observed, _ = step_state(job_state, native, 0, None)
    assert observed in OBSERVABLE_STATES


@pytest.mark.parametrize("letter", sorted(pbs.LIVE_STATES))
def test_every_live_pbs_state_waits_or_runs(letter: str) -> None:
    observed, reason = step_state(pbs.LIVE_STATES[letter], letter, None, None)
    assert observed in (StepState.QUEUED, StepState.RUNNING)
    assert reason is None


@pytest.mark.parametrize(
    "exec_code", sorted({*pbs.PBSPRO_EXEC_CODES.items(), *pbs.TORQUE_EXEC_CODES.items()})
)
def test_every_pbs_exec_code_settles_the_step(exec_code: tuple[int, tuple[str, JobState]]) -> None:
    _, (name, job_state) = exec_code
    observed, reason = step_state(job_state, name, None, None)
    assert step_settled(observed)
    assert observed is not StepState.FINISHED
    assert reason


def test_an_unknown_raw_state_waits_as_queued_and_never_settles() -> None:
    job_state = slurm.map_state("SOMETHING_NEW")
    assert job_state is JobState.UNKNOWN
    assert step_state(job_state, "SOMETHING_NEW", 0, CONVERGED) == (StepState.QUEUED, None)
    assert LIVE_STATES[JobState.UNKNOWN] is StepState.QUEUED


@pytest.mark.parametrize(
    ("final", "exit_code", "validation", "expected", "reason"),
    [
        (JobState.COMPLETED, 0, CONVERGED, StepState.FINISHED, None),
        (JobState.COMPLETED, None, None, StepState.FINISHED, None),
        (JobState.COMPLETED, 0, {"status": "not_converged"}, StepState.INVALID, "validation"),
        (JobState.FAILED, 1, {"status": "not_converged"}, StepState.INVALID, "validation"),
        (JobState.COMPLETED, 3, None, StepState.FAILED, "exit code 3"),
        (JobState.FAILED, 1, None, StepState.FAILED, "exit code 1"),
        (JobState.TIMEOUT, None, None, StepState.FAILED, "walltime"),
        (JobState.OUT_OF_MEMORY, None, None, StepState.FAILED, "out of memory"),
        (JobState.NODE_FAIL, None, None, StepState.FAILED, "node failure"),
        (JobState.CANCELLED, None, None, StepState.CANCELLED, "cancelled (X)"),
        (JobState.DEPENDENCY_NEVER_SATISFIED, None, None, StepState.CANCELLED, "depends"),
    ],
)
def test_classify(
    final: JobState,
    exit_code: int | None,
    validation: dict[str, Any] | None,
    expected: StepState,
    reason: str | None,
) -> None:
    state, why = classify(final, "X", exit_code, validation)
    assert state is expected
    if reason is None:
        assert why is None
    else:
        assert why is not None
        assert reason in why


_F, _Q, _R = StepState.FINISHED, StepState.QUEUED, StepState.RUNNING
_I, _X, _C = StepState.INVALID, StepState.FAILED, StepState.CANCELLED


@pytest.mark.parametrize(
    ("tasks", "expected"),
    [
        ([], None),
        ([None, None], None),
        ([_Q, None], _Q),
        ([_Q, _F], _R),  # some ended, some wait: the array is under way
        ([_R, _Q], _R),
        ([_F, _F], _F),
        ([_F, _C], _C),
        ([_F, _X, _I], _X),
        ([_F, _I], _I),
    ],
)
def test_an_array_is_settled_only_when_every_task_is(
    tasks: list[StepState | None], expected: StepState | None
) -> None:
    assert aggregate(tasks) is expected


# ----------------------------------------------------------------- the wire (agent <-> API)


def test_an_unseen_step_travels_as_unknown_and_comes_back_typed() -> None:
    obs = StepObservation(
        4, None, tasks=(TaskObservation(0, None), TaskObservation(1, StepState.FINISHED))
    )
    wire = obs.to_dict()
    assert wire["state"] == "unknown"
    assert [t["state"] for t in wire["tasks"]] == ["unknown", "finished"]
    back = StepObservation.from_dict(wire)
    assert back == obs
    assert back.state is None
    assert back.tasks[1].state is StepState.FINISHED
    assert back.still_active
    assert not back.tasks[1].still_active


@pytest.mark.parametrize("text", ["lost", "harvested", "planned", "done", ""])
def test_a_state_no_harvest_can_observe_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        StepObservation.from_dict({"step_id": 1, "state": text})


def test_work_items_carry_typed_states() -> None:
    active = ActiveStep.from_dict(
        {
            "step_id": 1,
            "calculation_id": 2,
            "scheduler_job_id": "9",
            "workdir": "/w",
            "state": "running",
            "settled_tasks": [[0, "finished"], [3, "failed"]],
        }
    )
    assert active.state is StepState.RUNNING
    assert active.settled_tasks == ((0, StepState.FINISHED), (3, StepState.FAILED))
    step = StepWork.from_dict(
        {"step_id": 1, "index": 0, "label": "a", "job_name": "j", "attempt": 0,
         "template": "t", "workdir": "/w"}
    )  # fmt: skip
    assert step.state is StepState.PLANNED


# ------------------------------------------------------------ observe, with a fake scheduler


@dataclass
class _Runner:
    files: dict[str, str] = field(default_factory=dict)

    def exists(self, path: PurePosixPath) -> bool:
        return str(path) in self.files

    def read_text(self, path: PurePosixPath, max_bytes: int) -> str:
        return self.files[str(path)]


@dataclass
class _Adapter:
    live: dict[JobId, JobStatus] = field(default_factory=dict)
    acct: list[AccountingRecord] = field(default_factory=list)
    runner: _Runner = field(default_factory=_Runner)
    calls: list[str] = field(default_factory=list)

    def status(self, ids: list[JobId]) -> dict[JobId, JobStatus]:
        self.calls.append("status")
        return dict(self.live)

    def accounting(self, ids: list[JobId]) -> list[AccountingRecord]:
        self.calls.append("accounting")
        return list(self.acct)


def _step(step_id: int, job: str, array_size: int | None = None) -> ActiveStep:
    return ActiveStep(step_id, 1, job, f"/w/{step_id}", StepState.QUEUED, array_size)


def test_observe_types_running_finished_and_unseen_steps() -> None:
    adapter = _Adapter(
        live={JobId("10"): JobStatus(JobId("10"), JobState.RUNNING, "RUNNING")},
        acct=[AccountingRecord(JobId("11"), JobState.COMPLETED, "COMPLETED", exit_code=0)],
        runner=_Runner({"/w/2/.hpcgate/11.ec": "0\n", "/w/2/.hpcgate/validation.json": "{}"}),
    )
    steps = [_step(1, "10"), _step(2, "11"), _step(3, "12")]
    running, finished, unseen = observe(adapter, steps)  # type: ignore[arg-type]
    assert adapter.calls == ["status", "accounting"]  # constant, whatever the step count
    assert running.state is StepState.RUNNING
    assert finished.state is StepState.FINISHED
    assert finished.exit_code == 0
    assert finished.validation == {}
    assert unseen.state is None
    assert unseen.still_active


def test_observe_an_array_task_by_task() -> None:
    adapter = _Adapter(
        live={JobId("20", 1): JobStatus(JobId("20", 1), JobState.RUNNING, "RUNNING")},
        acct=[AccountingRecord(JobId("20", 0), JobState.FAILED, "FAILED", exit_code=2)],
    )
    (obs,) = observe(adapter, [_step(5, "20", array_size=3)])  # type: ignore[list-item]
    assert [t.state for t in obs.tasks] == [StepState.FAILED, StepState.RUNNING, None]
    assert obs.state is StepState.RUNNING
    assert obs.reason == "1 of 3 tasks did not finish (task 0: exit code 2)"
