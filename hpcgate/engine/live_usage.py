"""Live samples and output progress of the running steps, added to a harvest's observations.

After ``observe`` (one ``status`` + at most one ``accounting`` call), the steps it saw
RUNNING get, with one more scheduler call and one more runner command per harvest whatever
their number:

* their CPU time and peak memory so far (``SchedulerAdapter.live_usage``: ``sstat``,
  ``qstat -f`` resources_used, ``/proc``), stored by the service as step-scope samples, so
  the resource graphs show running jobs;
* the size of their ``*.out`` files and the count of progress markers in them
  (``engine/progress.py``), which the service's stall detection compares over time.

Either may be missing (no sample yet, an adapter that cannot sample, an unreadable
directory): the observation then carries ``None`` and nothing is concluded from it. A
failure here is logged and never fails the harvest. An array's running tasks are sampled
one by one in the same two calls (``sstat --jobs=123_4,...``, a probe of ``task-4/``): their
figures travel on their ``TaskObservation`` and each task is watched for stalls.

A runner is sampled at most every ``MIN_INTERVAL_S`` (2) seconds: the end-spool harvests
(several a second when many jobs end) skip it, and scheduler samples are not fresher
than that anyway (Slurm ``JobAcctGatherFrequency``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import TypeVar

from hpcgate.domain.plan import array_task_dirname
from hpcgate.domain.states import StepState
from hpcgate.engine.progress import TRACKER, OutputProgress, ProbeTarget, ProgressTracker
from hpcgate.engine.work import ActiveStep, StepObservation, TaskObservation
from scheduler_adapters.base import SchedulerAdapter
from scheduler_adapters.errors import SchedulerError
from scheduler_adapters.live import LiveUsage
from scheduler_adapters.types import JobId

log = logging.getLogger(__name__)

MIN_INTERVAL_S = 2.0
TASK_KEYS = 10**17  # probe keys of array tasks start here (step ids are far below)
_last: dict[int, float] = {}  # id(runner) -> monotonic time of its last sampling
_last_lock = threading.Lock()


def _due(runner: object) -> bool:
    now = time.monotonic()
    with _last_lock:
        if now - _last.get(id(runner), -MIN_INTERVAL_S) < MIN_INTERVAL_S:
            return False
        _last[id(runner)] = now
        return True


def with_live_usage(
    adapter: SchedulerAdapter,
    steps: Sequence[ActiveStep],
    observations: list[StepObservation],
    tracker: ProgressTracker = TRACKER,
) -> list[StepObservation]:
    """``observations`` with live usage and output progress for the running steps and the
    running tasks of arrays (each task its own job id, ``123_4``, and directory)."""
    by_id = {s.step_id: s for s in steps}
    jobs: dict[int, JobId] = {}  # key -> job (a single step, or an array task)
    targets: list[ProbeTarget] = []
    for obs in observations:
        step = by_id.get(obs.step_id)
        if step is None or obs.state is not StepState.RUNNING:
            continue
        if not step.array_size:
            jobs[step.step_id] = JobId.parse(step.scheduler_job_id)
            targets.append(ProbeTarget(step.step_id, step.workdir))
        for task in obs.tasks if step.array_size else ():
            if task.state is StepState.RUNNING:
                key = task_key(step.step_id, task.task_index)
                jobs[key] = _task_job(step.scheduler_job_id, task)
                targets += _task_targets(key, step.workdir, task.task_index)
    if not jobs or not _due(adapter.runner):
        return observations
    usage = _sample(adapter, list(jobs.values()))
    progress = tracker.probe(adapter.runner, targets)
    figures = {k: (usage.get(job), _progress_of(k, progress)) for k, job in jobs.items()}
    return [_with_figures(obs, figures) for obs in observations]


def task_key(step_id: int, task_index: int) -> int:
    """An array task's key among the probe's (step ids stay below it); even: see below."""
    return TASK_KEYS + (step_id * 4_194_304 + task_index) * 2  # 2**22: Slurm's largest array


def _task_job(array_job: str, task: TaskObservation) -> JobId:
    """Where the scheduler reports a running task's usage: its own id (Slurm's raw id, which
    sstat prints), else ``<array>_<k>``."""
    if task.raw_job_id:
        return JobId(task.raw_job_id)
    return JobId(JobId.parse(array_job).value, task.task_index)


def _task_targets(key: int, workdir: str, index: int) -> list[ProbeTarget]:
    """A task writes in its own directory (the program's output) and, as the scheduler's
    stdout of the array, ``<job name>-<array id>_<k>.out`` in the step's."""
    return [
        ProbeTarget(key, f"{workdir}/{array_task_dirname(index)}"),
        ProbeTarget(key + 1, workdir, f"*_{index}.out"),
    ]


def _progress_of(key: int, progress: dict[int, OutputProgress]) -> OutputProgress | None:
    if key < TASK_KEYS:
        return progress.get(key)
    parts = [p for p in (progress.get(key), progress.get(key + 1)) if p is not None]
    if not sum(p.files for p in parts):
        return None  # nothing written yet where it would be: not measured
    return OutputProgress(
        sum(p.output_bytes for p in parts),
        sum(p.markers for p in parts),
        sum(p.files for p in parts),
    )


def _with_figures(
    obs: StepObservation, figures: dict[int, tuple[LiveUsage | None, OutputProgress | None]]
) -> StepObservation:
    if obs.tasks:
        tasks = tuple(
            _figures(t, *figures[k]) if (k := task_key(obs.step_id, t.task_index)) in figures
            else t
            for t in obs.tasks
        )  # fmt: skip
        return replace(obs, tasks=tasks)
    if obs.step_id in figures:
        return _figures(obs, *figures[obs.step_id])
    return obs


_Observed = TypeVar("_Observed", StepObservation, TaskObservation)


def _figures(obs: _Observed, live: LiveUsage | None, seen: OutputProgress | None) -> _Observed:
    return replace(
        obs,
        cpu_time_s=live.cpu_time_s if live else obs.cpu_time_s,
        max_rss_kb=live.max_rss_kb if live else obs.max_rss_kb,
        output_bytes=seen.output_bytes if seen else None,
        progress_markers=seen.markers if seen else None,
    )


def _sample(adapter: SchedulerAdapter, jobs: list[JobId]) -> dict[JobId, LiveUsage]:
    sample = getattr(adapter, "live_usage", None)
    if sample is None:
        return {}
    try:
        return dict(sample(jobs))
    except SchedulerError as exc:
        log.warning("live usage of %d running jobs failed: %s", len(jobs), exc.message)
    except Exception:
        log.warning("live usage of %d running jobs failed", len(jobs), exc_info=True)
    return {}
