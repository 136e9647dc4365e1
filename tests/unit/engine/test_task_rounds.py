"""A sweep's retry round (the recovery ladder per task, issue 17) on the cluster side: the
array's next job holds only the retried tasks, the tasks settled earlier are not read
again but still count for the step's state, and each retried task continues from its own
directory of the previous round."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from hpcgate.domain.states import StepState
from hpcgate.engine import live_usage
from hpcgate.engine.live_usage import task_key, with_live_usage
from hpcgate.engine.observe import observe
from hpcgate.engine.progress import ProgressTracker
from hpcgate.engine.work import ActiveStep, StepObservation, StepWork, TaskObservation
from hpcgate.services.work_items import _of_tasks
from scheduler_adapters.live import LiveUsage
from scheduler_adapters.rendering import Renderer
from scheduler_adapters.runners.local import LocalRunner
from scheduler_adapters.slurm.parse import parse_squeue
from scheduler_adapters.slurm.sstat import parse_sstat
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
    (obs,) = observe(running, [_ROUND])  # type: ignore[arg-type]
    assert [(t.task_index, t.state) for t in obs.tasks] == [(1, StepState.RUNNING)]
    assert obs.state is StepState.RUNNING

    ended = _Adapter(
        acct=[AccountingRecord(JobId("30", 1), JobState.COMPLETED, "COMPLETED", exit_code=0)],
        runner=_Runner({"/w/step-000-sweep.a2/.hpcgate/30_1.ec": "0\n"}),
    )
    (obs,) = observe(ended, [_ROUND])  # type: ignore[arg-type]
    assert [(t.task_index, t.state) for t in obs.tasks] == [(1, StepState.FINISHED)]
    assert obs.state is StepState.FINISHED  # tasks 0 and 2 finished in the first round

    gave_up = replace(_ROUND, settled_tasks=((0, StepState.FINISHED), (2, StepState.INVALID)))
    (obs,) = observe(ended, [gave_up])  # type: ignore[arg-type]
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


# ------------------------------------------------- running tasks: live figures, one by one


@dataclass
class _LiveAdapter:
    """A scheduler whose sstat knows task 1 of array 30 under its raw id 33 (a real runner
    for the probe)."""

    runner: LocalRunner
    asked: list[list[JobId]] = field(default_factory=list)

    def live_usage(self, jobs: list[JobId]) -> dict[JobId, LiveUsage]:
        self.asked.append(list(jobs))
        return {JobId("33"): LiveUsage(JobId("33"), 12.5, 2048, 1)}


@pytest.fixture(autouse=True)
def _always_due(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(live_usage, "_due", lambda runner: True)  # no 2 s spacing here


def test_running_tasks_are_sampled_and_probed_one_by_one(tmp_path: Path) -> None:
    step_dir = tmp_path / "step-000-sweep"
    (step_dir / "task-0").mkdir(parents=True)
    (step_dir / "task-1").mkdir()
    (step_dir / "hpcg-1-ab-0-a1-30_0.out").write_text("   scf:    1   -1.0\n" * 5)
    (step_dir / "hpcg-1-ab-0-a1-30_1.out").write_text("prologue\n")
    (step_dir / "task-1" / "h2o.out").write_text("   scf:    1   -1.0\n   scf:    2   -1.1\n")
    adapter = _LiveAdapter(LocalRunner(str(tmp_path)))
    active = ActiveStep(7, 1, "30", str(step_dir), StepState.RUNNING, array_size=3)
    obs = StepObservation(
        7,
        StepState.RUNNING,
        tasks=(
            TaskObservation(0, StepState.FINISHED),
            TaskObservation(1, StepState.RUNNING, raw_job_id="33"),
            TaskObservation(2, StepState.QUEUED),
        ),
    )
    (out,) = with_live_usage(adapter, [active], [obs], ProgressTracker())  # type: ignore[arg-type]
    assert adapter.asked == [[JobId("33")]]  # one sstat, the running task only
    done, running, queued = out.tasks
    assert (running.cpu_time_s, running.max_rss_kb) == (12.5, 2048)
    # task 1's own directory and its stdout in the step's, never task 0's stdout
    assert running.progress_markers == 2
    assert running.output_bytes == len("prologue\n") + (step_dir / "task-1/h2o.out").stat().st_size
    assert done == obs.tasks[0]
    assert queued == obs.tasks[2]
    assert out.output_bytes is None  # the array itself is not probed as one


def test_a_task_with_nothing_written_yet_is_not_measured(tmp_path: Path) -> None:
    (tmp_path / "s").mkdir()
    adapter = _LiveAdapter(LocalRunner(str(tmp_path)))
    active = ActiveStep(8, 1, "31", str(tmp_path / "s"), StepState.RUNNING, array_size=1)
    obs = StepObservation(8, StepState.RUNNING, tasks=(TaskObservation(0, StepState.RUNNING),))
    (out,) = with_live_usage(adapter, [active], [obs], ProgressTracker())  # type: ignore[arg-type]
    assert adapter.asked == [[JobId("31", 0)]]  # no raw id known: the task's array form
    assert out.tasks[0].output_bytes is None
    assert task_key(8, 0) != task_key(8, 1) - 1  # a task's two probe keys are its own


def test_sstat_counts_an_array_task_once_and_squeue_gives_its_raw_id() -> None:
    # sstat expands any id of an array to all its running tasks, under their raw ids
    rows = "6910.batch|1|00:00:04|6480K|cpu=00:00:04\n6909.batch|1|00:00:05|10K|cpu=00:00:05\n"
    usage = parse_sstat(rows + rows)
    assert usage[JobId("6910")].cpu_time_s == 4.0
    assert usage[JobId("6909")].cpu_time_s == 5.0
    sep = "\x1f"
    line = sep.join(["6909_0", "6910", "6909", "0", "RUNNING", "None", "j"])
    (status,) = parse_squeue(line + "\n")
    assert status.job_id == JobId("6909", 0)
    assert status.raw_id == "6910"
