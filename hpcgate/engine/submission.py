"""Durable, idempotent submission of a calculation's steps (the same code for worker and agent).

For each step in topological order:

1. a step that already has a scheduler id is skipped (restarts resume, AiiDA-style);
2. otherwise the step is marked ``submitting`` **durably** (``store.mark_submitting``
   commits, or the agent's report is acknowledged) before anything reaches the scheduler;
3. ``find_by_name`` asks the scheduler whether a job of that deterministic name already
   exists — the crash window between ``sbatch`` returning and the id being recorded. Asked
   only when the step was already ``submitting`` before this attempt marked it (a step
   marked for the first time has never reached the scheduler), or on a remote runner;
4. the inputs are staged and the job submitted with ``afterok`` on its parents; chain
   heads are submitted **held**, so no head finishes (and is purged) before its dependents
   reference it;
5. the id is recorded durably; only when every step has an id are the heads released.

A transient scheduler error leaves everything as it is, to be resumed on the next tick; a
permanent one cancels what this calculation already queued and fails it with the
scheduler's message.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Protocol

from hpcgate.domain.states import StepState, step_settled
from hpcgate.engine.blobs import BlobCache
from hpcgate.engine.end_spool import prepare_spool
from hpcgate.engine.faults import crash_point
from hpcgate.engine.work import CalculationWork, StepWork
from scheduler_adapters.base import SchedulerAdapter
from scheduler_adapters.errors import SchedulerError
from scheduler_adapters.runners.local import LocalRunner
from scheduler_adapters.types import JobId

log = logging.getLogger(__name__)

# A step in one of these states when the work was built may hold a job still held.
_RELEASABLE = frozenset({StepState.PLANNED, StepState.SUBMITTING, StepState.QUEUED})


class StepStore(Protocol):
    """Durable bookkeeping; every method returns only once the change is committed."""

    def mark_submitting(self, calculation_id: int, step: StepWork) -> bool:
        """True only when this call moved the step out of PLANNED (see ``submit_calculation``)."""
        ...

    def record_job_id(
        self, calculation_id: int, step: StepWork, job_id: str, *, recovered: bool
    ) -> None: ...

    def mark_submitted(self, calculation_id: int) -> None: ...

    def mark_failed(self, calculation_id: int, message: str) -> None: ...


@dataclass(frozen=True)
class SubmissionOutcome:
    calculation_id: int
    job_ids: dict[int, str]  # step id -> scheduler id
    submitted: int  # new submissions this call
    recovered: int  # found by name after a crash
    failed: str | None = None
    deferred: str | None = None  # transient error: try again later


def _target(workdir: PurePosixPath, rel: str) -> PurePosixPath:
    if ".." in PurePosixPath(rel).parts or PurePosixPath(rel).is_absolute():
        raise SchedulerError(f"refusing to stage {rel!r}: not a relative path inside the step")
    return workdir / rel


def stage_inputs(adapter: SchedulerAdapter, step: StepWork, blobs: BlobCache | None = None) -> None:
    """Write the step's input files into its directory (atomically, inside scratch only).

    Text files come with the work item; binary ones are fetched into ``blobs`` (once per
    sha256) and copied byte for byte.
    """
    workdir = PurePosixPath(step.workdir)
    for rel, text in sorted(step.files.items()):
        adapter.runner.write_text(_target(workdir, rel), text)
    prepare_spool(adapter.runner, workdir)
    if step.blobs and blobs is None:
        raise SchedulerError("this dispatcher cannot stage binary inputs", transient=False)
    for rel, sha256 in sorted(step.blobs.items()):
        target = _target(workdir, rel)
        assert blobs is not None
        with open(blobs.path(sha256), "rb") as fh:
            adapter.runner.write_bytes(target, fh)


@dataclass
class _Progress:
    """What one ``submit_calculation`` call has done so far (reported whatever happens)."""

    job_ids: dict[int, str]  # step id -> scheduler id, including earlier attempts'
    submitted: int = 0
    recovered: int = 0
    # Steps that ran already (a calculation resubmitted for a retry): never a dependency.
    settled: frozenset[int] = frozenset()

    def live_parents(self, step: StepWork) -> list[int]:
        return [p for p in step.parents if p not in self.settled]

    def outcome(
        self, calculation_id: int, *, failed: str | None = None, deferred: str | None = None
    ) -> SubmissionOutcome:
        return SubmissionOutcome(
            calculation_id,
            self.job_ids,
            self.submitted,
            self.recovered,
            failed=failed,
            deferred=deferred,
        )


def submit_calculation(
    work: CalculationWork,
    adapter: SchedulerAdapter,
    store: StepStore,
    blobs: BlobCache | None = None,
) -> SubmissionOutcome:
    progress = _Progress({s.step_id: s.scheduler_job_id for s in work.steps if s.scheduler_job_id})
    progress.settled = frozenset(s.step_id for s in work.steps if step_settled(s.state))
    is_chain = len(work.steps) > 1
    try:
        for step in work.steps:  # already in topological order
            if step.step_id in progress.job_ids:
                continue
            progress.job_ids[step.step_id] = _submit_step(
                work.calculation_id, step, adapter, store, blobs, progress, is_chain=is_chain
            )
            crash_point("after_record")
        if is_chain:
            crash_point("before_release")
            for head in _heads(work, progress.settled):
                _release(adapter, JobId(progress.job_ids[head.step_id]))
        store.mark_submitted(work.calculation_id)
    except SchedulerError as exc:
        if exc.transient:
            log.warning("submission of calculation %s deferred: %s", work.calculation_id, exc)
            return progress.outcome(work.calculation_id, deferred=exc.message)
        _cancel_queued(adapter, progress.job_ids)
        store.mark_failed(work.calculation_id, exc.message)
        return progress.outcome(work.calculation_id, failed=exc.message)
    return progress.outcome(work.calculation_id)


def _submit_step(
    calculation_id: int,
    step: StepWork,
    adapter: SchedulerAdapter,
    store: StepStore,
    blobs: BlobCache | None,
    progress: _Progress,
    *,
    is_chain: bool,
) -> str:
    """Mark, look for a job of a crashed attempt, else stage and submit; the job's id."""
    missing = [p for p in step.parents if p not in progress.job_ids]
    if missing:
        raise SchedulerError(
            f"step {step.index} depends on steps without a job id: {missing}", transient=False
        )
    fresh = store.mark_submitting(calculation_id, step)
    crash_point("after_mark_submitting")
    # Every sbatch follows a durable mark, so a step this call moved out of PLANNED
    # cannot have a job yet: the search (a squeue and a sacct) is only for steps an
    # earlier attempt had already marked, i.e. that may have been submitted (issue 16).
    # Remote runners keep it: it is also the first round trip, and a dead SSH peer is
    # noticed there in ~5 s, where SFTP staging retries once (measured 10.5 s).
    skip = fresh and isinstance(adapter.runner, LocalRunner)
    found = [] if skip else adapter.find_by_name(step.job_name)
    if found:
        jid = found[0]
        log.warning("recovered job %s for %s after a restart", jid, step.job_name)
        progress.recovered += 1
        store.record_job_id(calculation_id, step, jid.value, recovered=True)
        return jid.value
    if step.withdrawn_jobs:  # it waited for a parent's failed attempt (recovery ladder)
        _cancel_quietly(adapter, step.withdrawn_jobs)
    stage_inputs(adapter, step, blobs)
    live = progress.live_parents(step)
    parents = [JobId(progress.job_ids[p]) for p in live]
    jid = adapter.submit(step.job_spec(), after_ok=parents, hold=is_chain and not live)
    progress.submitted += 1
    crash_point("after_submit")
    store.record_job_id(calculation_id, step, jid.value, recovered=False)
    return jid.value


def _heads(work: CalculationWork, settled: frozenset[int]) -> list[StepWork]:
    """The held jobs to release: steps waiting on no live parent that have not run yet
    (the chain's heads; after a retry, the new attempt when its parents are done)."""
    return [
        s
        for s in work.steps
        if s.step_id not in settled
        and s.state in _RELEASABLE
        and not any(p not in settled for p in s.parents)
    ]


def _cancel_quietly(adapter: SchedulerAdapter, job_ids: Sequence[str]) -> None:
    """Withdrawn jobs: usually gone already (Slurm's kill_invalid_depend); never an error."""
    try:
        adapter.cancel([JobId.parse(j) for j in job_ids])
    except SchedulerError as exc:
        log.info("withdrawn jobs %s not cancelled (%s); they can never start", job_ids, exc)


def _cancel_queued(adapter: SchedulerAdapter, job_ids: dict[int, str]) -> None:
    """A permanent failure takes back what this calculation already queued."""
    queued = [JobId(j) for j in job_ids.values()]
    if queued:
        try:
            adapter.cancel(queued)
        except SchedulerError:
            log.exception("could not cancel jobs %s after a failed submission", queued)


def _release(adapter: SchedulerAdapter, job_id: JobId) -> None:
    """Release a held head; releasing one that is no longer held is not an error."""
    try:
        adapter.release(job_id)
    except SchedulerError as exc:
        text = exc.message.lower()
        if exc.transient:
            raise
        if "not held" in text or "already" in text or "completed" in text or "finished" in text:
            return
        raise


def cancel_steps(adapter: SchedulerAdapter, job_ids: Sequence[str]) -> None:
    if job_ids:
        adapter.cancel([JobId.parse(j) for j in job_ids])
