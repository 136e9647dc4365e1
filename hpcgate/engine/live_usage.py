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
failure here is logged and never fails the harvest. Array steps are not sampled.

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

from hpcgate.domain.states import StepState
from hpcgate.engine.progress import TRACKER, ProbeTarget, ProgressTracker
from hpcgate.engine.work import ActiveStep, StepObservation
from scheduler_adapters.base import SchedulerAdapter
from scheduler_adapters.errors import SchedulerError
from scheduler_adapters.live import LiveUsage
from scheduler_adapters.types import JobId

log = logging.getLogger(__name__)

MIN_INTERVAL_S = 2.0
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
    """``observations`` with live usage and output progress for the running steps."""
    running = {o.step_id for o in observations if o.state is StepState.RUNNING}
    targets = [s for s in steps if s.step_id in running and not s.array_size]
    if not targets or not _due(adapter.runner):
        return observations
    jobs = {s.step_id: JobId.parse(s.scheduler_job_id) for s in targets}
    usage = _sample(adapter, list(jobs.values()))
    progress = tracker.probe(adapter.runner, [ProbeTarget(s.step_id, s.workdir) for s in targets])
    out = []
    for obs in observations:
        job = jobs.get(obs.step_id)
        if job is not None:
            live = usage.get(job)
            seen = progress.get(obs.step_id)
            obs = replace(
                obs,
                cpu_time_s=live.cpu_time_s if live else obs.cpu_time_s,
                max_rss_kb=live.max_rss_kb if live else obs.max_rss_kb,
                output_bytes=seen.output_bytes if seen else None,
                progress_markers=seen.markers if seen else None,
            )
        out.append(obs)
    return out


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
