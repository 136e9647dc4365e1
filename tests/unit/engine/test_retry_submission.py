"""A chain resubmitted for a retry (the recovery ladder): what reaches the scheduler.

A recording adapter (a fake, in addition to the real-Slurm tests in
tests/integration/engine/test_recovery_ladder.py): the settled first step is no dependency
(its job may have left Slurm), the middle step's new attempt is submitted held (no live
parent, a dependent to follow), the withdrawn last step's old job is cancelled first and
the step waits ``afterok`` on the new attempt; only the new attempt is released.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from hpcgate.domain.states import StepState
from hpcgate.engine.submission import submit_calculation
from hpcgate.engine.work import CalculationWork, StepWork
from scheduler_adapters.errors import SchedulerError
from scheduler_adapters.types import JobId


class _Runner:
    def write_text(self, path: PurePosixPath, text: str) -> None:
        pass


@dataclass
class _Adapter:
    runner: Any = field(default_factory=_Runner)
    calls: list[tuple[str, ...]] = field(default_factory=list)

    def find_by_name(self, name: str) -> list[JobId]:
        return []

    def submit(self, spec: Any, *, after_ok: list[JobId], hold: bool) -> JobId:
        self.calls.append(("submit", spec.name, ",".join(j.value for j in after_ok), str(hold)))
        return JobId(str(200 + len(self.calls)))

    def release(self, job_id: JobId) -> None:
        self.calls.append(("release", job_id.value))

    def cancel(self, job_ids: Sequence[JobId]) -> None:
        self.calls.append(("cancel", *(j.value for j in job_ids)))
        raise SchedulerError("Job has already finished")  # kill_invalid_depend got there first


class _Store:
    def __init__(self) -> None:
        self.submitted = False

    def mark_submitting(self, calculation_id: int, step: StepWork) -> bool:
        return True

    def record_job_id(self, calculation_id: int, step: StepWork, job_id: str, **_: Any) -> None:
        pass

    def mark_submitted(self, calculation_id: int) -> None:
        self.submitted = True

    def mark_failed(self, calculation_id: int, message: str) -> None:
        raise AssertionError(message)


def _step(step_id: int, state: StepState, parents: tuple[int, ...] = (), **kw: Any) -> StepWork:
    return StepWork(
        step_id=step_id,
        index=step_id,
        label=f"s{step_id}",
        job_name=kw.pop("job_name", f"job-{step_id}-a1"),
        attempt=kw.pop("attempt", 1),
        template="siesta.j2",
        workdir=f"/scratch/s{step_id}",
        parents=parents,
        state=state,
        **kw,
    )


def test_retry_of_a_middle_step_resubmits_it_and_its_withdrawn_dependent() -> None:
    steps = (
        _step(1, StepState.HARVESTED, scheduler_job_id="11"),
        _step(2, StepState.PLANNED, (1,), attempt=2, job_name="job-2-a2"),
        _step(3, StepState.PLANNED, (2,), job_name="job-3-a1w1", withdrawn_jobs=("13",)),
    )
    adapter, store = _Adapter(), _Store()
    outcome = submit_calculation(CalculationWork(7, "c", steps), adapter, store)  # type: ignore[arg-type]
    assert outcome.failed is None
    assert outcome.submitted == 2
    assert adapter.calls == [
        ("submit", "job-2-a2", "", "True"),  # no dependency on the settled step 1, held
        ("cancel", "13"),  # the withdrawn job, quietly (already gone here)
        ("submit", "job-3-a1w1", "201", "False"),  # afterok on the new attempt
        ("release", "201"),
    ]
    assert store.submitted


def test_first_submission_unchanged_heads_held_then_released() -> None:
    steps = (_step(1, StepState.PLANNED), _step(2, StepState.PLANNED, (1,)))
    adapter = _Adapter()
    submit_calculation(CalculationWork(8, "c", steps), adapter, _Store())  # type: ignore[arg-type]
    assert adapter.calls == [
        ("submit", "job-1-a1", "", "True"),
        ("submit", "job-2-a1", "201", "False"),
        ("release", "201"),
    ]
