"""The adapter boundary: one interface for Slurm, PBS and the local executor.

Contract (every adapter, checked by ``tests/integration/test_adapter_contract.py``):

* ``submit`` renders ``spec`` with its template, writes the script atomically to
  ``spec.workdir / f"{spec.name}.sh"`` through the runner, and submits it.
  Dependencies (``after_ok``) and ``hold`` are submit-time options, never baked
  into the script, so one rendered script serves a chain head and its dependents.
  Dependents of a failed parent must end in a final state (cancelled or
  ``DEPENDENCY_NEVER_SATISFIED``), never wait forever.
* ``status`` makes **one** scheduler call for all the given jobs. A job absent
  from the live queue is simply absent from the result: callers ask
  ``accounting`` next, and a job found in neither is UNKNOWN, never COMPLETED.
* ``accounting`` makes **one** call for all the given jobs.
* ``queue_summary`` makes **one** call and counts *every user's* pending and running
  jobs per partition (``scheduler_adapters/queue_summary.py``).
* ``live_usage`` makes **one** call for all the given running jobs and returns what
  the scheduler sampled so far (CPU time, peak memory): ``scheduler_adapters/live.py``.
  A job without a sample is absent; an adapter that cannot sample returns ``{}`` and
  says why in ``unsupported_reasons["live_usage"]``.
* ``find_by_name`` lets a restarted service recover a job submitted just
  before a crash (job names are deterministic), so nothing is submitted twice.
* Failures of the scheduler commands raise ``SchedulerError`` with ``transient``
  set when the cluster (not the request) is at fault.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from scheduler_adapters.live import LiveUsage
from scheduler_adapters.queue_summary import PartitionLoad
from scheduler_adapters.runners.base import Runner
from scheduler_adapters.types import AccountingRecord, JobId, JobSpec, JobStatus, NodeMetrics


@runtime_checkable
class SchedulerAdapter(Protocol):
    name: str
    runner: Runner

    def render(self, spec: JobSpec) -> str: ...

    def submit(
        self, spec: JobSpec, *, after_ok: Sequence[JobId] = (), hold: bool = False
    ) -> JobId: ...

    def release(self, job_id: JobId) -> None: ...

    def cancel(self, job_ids: Sequence[JobId]) -> None: ...

    def status(self, job_ids: Sequence[JobId] | None = None) -> dict[JobId, JobStatus]: ...

    def accounting(self, job_ids: Sequence[JobId]) -> list[AccountingRecord]: ...

    def live_usage(self, job_ids: Sequence[JobId]) -> dict[JobId, LiveUsage]: ...

    def find_by_name(self, name: str) -> list[JobId]: ...

    def node_metrics(self) -> list[NodeMetrics]: ...

    def queue_summary(self) -> list[PartitionLoad]: ...
