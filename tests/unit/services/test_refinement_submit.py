"""How refinement points are handed to the durable submission (engine/added_steps, run by
the worker's services/refinement_submit and by the agent's loop).

A recording adapter (a fake, in addition to the real-Slurm test in
tests/integration/transiesta/test_ladder_refine.py) shows what reaches the scheduler: the
new device point has no dependency on its start point (it already succeeded; its job may
have left Slurm) and is not held, its TBtrans waits ``afterok`` on the device job just
submitted, and nothing is released (no step of these work items is a head).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from hpcgate.domain.states import StepState
from hpcgate.engine.added_steps import submit_added_steps, work_for
from hpcgate.engine.submission import submit_calculation
from hpcgate.engine.work import CalculationWork, StepWork
from scheduler_adapters.types import JobId


class _Runner:
    def write_text(self, path: PurePosixPath, text: str) -> None:
        pass


@dataclass
class _Adapter:
    runner: Any = field(default_factory=_Runner)
    submitted: list[tuple[str, list[str], bool]] = field(default_factory=list)
    released: list[str] = field(default_factory=list)

    def find_by_name(self, name: str) -> list[JobId]:
        return []

    def submit(self, spec: Any, *, after_ok: list[JobId], hold: bool) -> JobId:
        self.submitted.append((spec.name, [j.value for j in after_ok], hold))
        return JobId(str(100 + len(self.submitted)))

    def release(self, job_id: JobId) -> None:
        self.released.append(job_id.value)


class _Store:
    def mark_submitting(self, calculation_id: int, step: StepWork) -> bool:
        return True

    def record_job_id(self, calculation_id: int, step: StepWork, job_id: str, **_: Any) -> None:
        pass

    def mark_submitted(self, calculation_id: int) -> None:
        pass

    def mark_failed(self, calculation_id: int, message: str) -> None:
        raise AssertionError(message)


def _step(
    step_id: int, state: StepState, parents: tuple[int, ...] = (), job: str | None = None
) -> StepWork:
    return StepWork(
        step_id=step_id,
        index=step_id,
        label=f"s{step_id}",
        job_name=f"job-{step_id}",
        attempt=1,
        template="siesta.j2",
        workdir=f"/scratch/s{step_id}",
        parents=parents,
        scheduler_job_id=job,
        state=state,
    )


def test_a_new_point_then_its_tbtrans_without_holds_or_stale_dependencies() -> None:
    done = StepState.HARVESTED
    steps = (
        _step(1, done, job="11"),  # electrode
        _step(2, done, (1,), job="12"),  # device 0 V: the nearest converged point
        _step(5, StepState.PLANNED, (1, 2)),  # device +0.1 V, added
        _step(6, StepState.PLANNED, (5,)),  # tbtrans +0.1 V, added
    )
    work = CalculationWork(calculation_id=7, cluster="c", steps=steps)
    by_id = {s.step_id: s for s in steps}
    adapter = _Adapter()
    job_ids: dict[int, str] = {}
    for step in steps[2:]:
        one = work_for(work, step, by_id, {5, 6}, job_ids)
        assert one is not None
        outcome = submit_calculation(one, adapter, _Store())  # type: ignore[arg-type]
        job_ids[step.step_id] = outcome.job_ids[step.step_id]
    assert adapter.submitted == [("job-5", [], False), ("job-6", [job_ids[5]], False)]
    assert adapter.released == []


def test_after_a_crash_the_tbtrans_waits_afterok_on_the_device_job_already_queued() -> None:
    steps = (
        _step(2, StepState.HARVESTED, job="12"),
        _step(5, StepState.QUEUED, (2,), job="15"),  # submitted before the crash
        _step(6, StepState.PLANNED, (5,)),
    )
    work = CalculationWork(calculation_id=7, cluster="c", steps=steps)
    by_id = {s.step_id: s for s in steps}
    one = work_for(work, steps[2], by_id, {6}, {})
    assert one is not None
    adapter = _Adapter()
    submit_calculation(one, adapter, _Store())  # type: ignore[arg-type]
    assert adapter.submitted == [("job-6", ["15"], False)]
    assert adapter.released == []


def test_a_step_waits_while_a_parent_has_no_job_or_did_not_succeed() -> None:
    steps = (
        _step(2, StepState.INVALID, job="12"),
        _step(3, StepState.HARVESTED, job="13"),
        _step(5, StepState.PLANNED, (2,)),
        _step(6, StepState.PLANNED, (3,)),
        _step(7, StepState.PLANNED, (6,)),
    )
    work = CalculationWork(calculation_id=7, cluster="c", steps=steps)
    by_id = {s.step_id: s for s in steps}
    assert work_for(work, steps[2], by_id, {5, 6, 7}, {}) is None  # its start point failed
    assert work_for(work, steps[4], by_id, {5, 6, 7}, {}) is None  # its device has no job
    one = work_for(work, steps[4], by_id, {5, 6, 7}, {6: "16"})
    assert one is not None
    assert [(s.step_id, s.scheduler_job_id, s.parents) for s in one.steps] == [
        (6, "16", (3,)),
        (7, None, (6,)),
    ]


@dataclass
class _Recovering(_Adapter):
    """A scheduler that already holds some jobs by name (submitted just before a crash)."""

    existing: dict[str, str] = field(default_factory=dict)

    def find_by_name(self, name: str) -> list[JobId]:
        return [JobId(self.existing[name])] if name in self.existing else []


class _Marked(_Store):
    """Every step was marked ``submitting`` by an earlier, killed dispatcher."""

    def __init__(self) -> None:
        self.recorded: list[tuple[int, str, bool]] = []

    def mark_submitting(self, calculation_id: int, step: StepWork) -> bool:
        return False

    def record_job_id(self, calculation_id: int, step: StepWork, job_id: str, **kw: Any) -> None:
        self.recorded.append((step.step_id, job_id, bool(kw["recovered"])))


def test_one_round_submits_the_point_then_its_tbtrans_afterok_on_it() -> None:
    done = StepState.HARVESTED
    steps = (
        _step(1, done, job="11"),
        _step(2, done, (1,), job="12"),
        _step(5, StepState.PLANNED, (1, 2)),
        _step(6, StepState.PLANNED, (5,)),
    )
    adapter = _Adapter()
    outcomes = submit_added_steps(
        CalculationWork(calculation_id=7, cluster="c", steps=steps),
        adapter,  # type: ignore[arg-type]
        _Store(),
    )
    assert [o.submitted for o in outcomes] == [1, 1]
    assert adapter.submitted == [("job-5", [], False), ("job-6", ["101"], False)]
    assert adapter.released == []


def test_after_a_kill_the_point_submitted_before_it_is_adopted_not_resubmitted() -> None:
    """Killed after sbatch of the device point, before its id was recorded: the restarted
    dispatcher finds it by its deterministic name and the TBtrans waits on that job."""
    steps = (
        _step(2, StepState.HARVESTED, job="12"),
        _step(5, StepState.SUBMITTING, (2,)),
        _step(6, StepState.PLANNED, (5,)),
    )
    adapter = _Recovering(existing={"job-5": "4242"})
    store = _Marked()
    outcomes = submit_added_steps(
        CalculationWork(calculation_id=7, cluster="c", steps=steps),
        adapter,  # type: ignore[arg-type]
        store,
    )
    assert [(o.submitted, o.recovered) for o in outcomes] == [(0, 1), (1, 0)]
    assert adapter.submitted == [("job-6", ["4242"], False)]
    assert store.recorded == [(5, "4242", True), (6, "101", False)]
