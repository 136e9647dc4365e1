"""A sweep's retry round (the recovery ladder per task, issue 17) on the cluster side: the
array's next job holds only the retried tasks, the tasks settled earlier are not read
again but still count for the step's state, and each retried task continues from its own
directory of the previous round."""

from __future__ import annotations

from dataclasses import replace

from hpcgate.domain.states import StepState
from hpcgate.engine.observe import observe
from hpcgate.engine.work import ActiveStep, StepWork
from hpcgate.services.work_items import _of_tasks
from scheduler_adapters.rendering import Renderer
from scheduler_adapters.types import AccountingRecord, JobId, JobState, JobStatus
from tests.unit.engine.test_observe import _Adapter, _Runner

_ROUND = ActiveStep(
    7,
    1,
    "30",
    "/w/step-000-sweep.a2",
    StepState.QUEUED,
    array_size=3,
    settled_tasks=((0, StepState.FINISHED), (2, StepState.FINISHED)),
)


def test_a_round_observes_only_its_own_tasks_and_settles_with_the_earlier_ones() -> None:
    running = _Adapter(live={JobId("30", 1): JobStatus(JobId("30", 1), JobState.RUNNING, "R")})
    (obs,) = observe(running, [_ROUND])  # type: ignore[list-item]
    assert [(t.task_index, t.state) for t in obs.tasks] == [(1, StepState.RUNNING)]
    assert obs.state is StepState.RUNNING

    ended = _Adapter(
        acct=[AccountingRecord(JobId("30", 1), JobState.COMPLETED, "COMPLETED", exit_code=0)],
        runner=_Runner({"/w/step-000-sweep.a2/.hpcgate/30_1.ec": "0\n"}),
    )
    (obs,) = observe(ended, [_ROUND])  # type: ignore[list-item]
    assert [(t.task_index, t.state) for t in obs.tasks] == [(1, StepState.FINISHED)]
    assert obs.state is StepState.FINISHED  # tasks 0 and 2 finished in the first round

    gave_up = replace(_ROUND, settled_tasks=((0, StepState.FINISHED), (2, StepState.INVALID)))
    (obs,) = observe(ended, [gave_up])  # type: ignore[list-item]
    assert obs.state is StepState.INVALID
    assert obs.reason == "1 of 3 tasks did not finish (settled earlier)"


def _round_work(**extra: object) -> StepWork:
    return StepWork.from_dict(
        {"step_id": 7, "index": 0, "label": "sweep", "job_name": "hpcg-1-ab-0-a2",
         "attempt": 2, "template": "siesta.j2", "workdir": "/w/step-000-sweep.a2",
         "array_size": 5, "max_concurrent": 2, **extra}
    )  # fmt: skip


def test_a_round_submits_only_the_retried_indices() -> None:
    spec = _round_work(array_indices=[1, 3]).job_spec()
    assert spec.array is not None
    assert spec.array.indices == (1, 3)
    assert spec.array.max_concurrent == 2
    first = _round_work().job_spec()
    assert first.array is not None
    assert first.array.indices == (0, 1, 2, 3, 4)


def test_a_round_stages_only_its_tasks_files() -> None:
    files = {"task-1/h.fdf": "a", "task-10/h.fdf": "b", "task-3/h.fdf": "c", "x": "d"}
    assert _of_tasks(files, (1, 3)) == {"task-1/h.fdf": "a", "task-3/h.fdf": "c"}
    assert _of_tasks(files, ()) == files


def test_a_retried_task_continues_from_its_own_directory() -> None:
    inherit = [{"dir": "/w/step-000-sweep", "patterns": ["*.DM"], "per_task": True}]
    work = _round_work(
        array_indices=[1],
        context={"per_task_dir": True, "inherit_from": inherit, "input": "h.fdf"},
    )
    script = Renderer("slurm").render(work.job_spec())
    assert "#SBATCH --array=1%2" in script
    assert '/w/step-000-sweep/"task-$HPCGATE_TASK_INDEX"/*.DM' in script
    shared = [{"dir": "/w/parent", "patterns": ["*.DM"]}]
    plain = Renderer("slurm").render(_round_work(context={"inherit_from": shared}).job_spec())
    assert "for f in /w/parent/*.DM; do" in plain
