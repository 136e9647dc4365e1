"""Live resource usage of running jobs (issue 17): what ``SchedulerAdapter.live_usage`` returns.

Sampled while a job runs, unlike ``AccountingRecord`` (written when it ends): Slurm's
``sstat`` over every step of the job, PBS's ``resources_used`` in ``qstat -f``, the local
executor's ``/proc`` of the task's process group. ``cpu_time_s`` is cumulative CPU time
(user + system, every process or task of the job); ``max_rss_kb`` is the largest resident
set reported so far (local: the current one). A job the scheduler has no sample for yet is
simply absent from the result.
"""

from __future__ import annotations

from dataclasses import dataclass

from scheduler_adapters.types import JobId


@dataclass(frozen=True)
class LiveUsage:
    job_id: JobId
    cpu_time_s: float | None
    max_rss_kb: int | None
    parts: int = 1  # scheduler steps (Slurm) or processes (local) summed into it
