"""Observe a cluster's active steps with a constant number of scheduler calls per tick.

One ``status`` call (the live queue) plus at most one ``accounting`` call (for everything
not in the queue or already final there), whatever the number of jobs. Observations are
typed (``StepState``): a job seen in neither is observed without a state (``None``,
"unknown" on the wire) — never completed; the service turns repeated ones into LOST. A
poll that fails raises (the cluster is unhealthy), it never fails the jobs.

For a finished step the small files written by the job itself are read back: the exit
code file, ``validation.json`` (from ``hpcgate validate``) and ``extract.json`` (from
``hpcgate extract``). Only these cross the network.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from hpcgate.domain.plan import array_task_dirname
from hpcgate.domain.states import StepState
from hpcgate.engine.work import ActiveStep, StepObservation, TaskObservation
from hpcgate.metrics.lags import end_time_text
from scheduler_adapters.base import SchedulerAdapter
from scheduler_adapters.types import AccountingRecord, JobId, JobState, JobStatus

log = logging.getLogger(__name__)

VALIDATION_FILE = ".hpcgate/validation.json"
EXTRACT_FILE = ".hpcgate/extract.json"
MAX_RESULT_BYTES = 4 << 20
#: A job the scheduler ended at its time limit, whatever the scheduler called it (Slurm
#: TIMEOUT, PBS Pro Exit_status -29, Torque -11, a "walltime ... exceeded limit" comment):
#: the one reason the recovery ladder reads as ``incomplete`` (services/recovery.py).
TIMEOUT_REASON = "walltime exceeded (TIMEOUT)"

# A job the scheduler still holds is queued or running. One it lists under a state it
# cannot name (JobState.UNKNOWN, e.g. PBS "M": moved to another server) waits as QUEUED:
# it is never settled on a guess.
LIVE_STATES: Mapping[JobState, StepState] = {
    JobState.PENDING: StepState.QUEUED,
    JobState.HELD: StepState.QUEUED,
    JobState.UNKNOWN: StepState.QUEUED,
    JobState.RUNNING: StepState.RUNNING,
    JobState.COMPLETING: StepState.RUNNING,
}
_ENDED = frozenset({StepState.FINISHED, StepState.INVALID, StepState.FAILED, StepState.CANCELLED})


def _base(job_id: str) -> str:
    return JobId.parse(job_id).value


def live_state(state: JobState) -> StepState:
    """Our state for a job the scheduler has not finished (see ``LIVE_STATES``)."""
    return LIVE_STATES[state]


def step_state(
    state: JobState, native: str | None, exit_code: int | None, validation: dict[str, Any] | None
) -> tuple[StepState, str | None]:
    """Exactly one step state (and a reason) for any scheduler state and the job's files."""
    if not state.is_final:
        return live_state(state), None
    return classify(state, native, exit_code, validation)


def observe(adapter: SchedulerAdapter, steps: Sequence[ActiveStep]) -> list[StepObservation]:
    if not steps:
        return []
    ids = [JobId(_base(s.scheduler_job_id)) for s in steps]
    live = adapter.status(ids)
    live_by_base: dict[str, list[JobStatus]] = defaultdict(list)
    for jid, st in live.items():
        live_by_base[jid.value].append(st)
        if st.array_job_id:
            live_by_base[st.array_job_id].append(st)
    need_accounting = [
        JobId(_base(s.scheduler_job_id))
        for s in steps
        if not live_by_base.get(_base(s.scheduler_job_id))
        or all(x.state.is_final for x in live_by_base[_base(s.scheduler_job_id)])
        or s.array_size  # arrays: accounting tells which tasks already finished
    ]
    acct_by_base: dict[str, list[AccountingRecord]] = defaultdict(list)
    if need_accounting:
        for rec in adapter.accounting(need_accounting):
            acct_by_base[rec.job_id.value].append(rec)
    return [
        _observe_step(
            adapter,
            s,
            live_by_base.get(_base(s.scheduler_job_id), []),
            acct_by_base.get(_base(s.scheduler_job_id), []),
        )
        for s in steps
    ]


@dataclass(frozen=True)
class _Usage:
    """What accounting says a job consumed (None: not reported)."""

    cpu_time_s: float | None = None
    max_rss_kb: int | None = None
    elapsed_s: int | None = None
    alloc_cpus: int | None = None
    core_seconds: float | None = None
    req_mem_kb: int | None = None

    @classmethod
    def of(cls, record: AccountingRecord | None) -> _Usage:
        if record is None:
            return cls()
        return cls(
            record.cpu_time_s,
            record.max_rss_kb,
            record.elapsed_s,
            record.alloc_cpus,
            record.core_seconds,
            record.req_mem_kb,
        )

    @classmethod
    def of_tasks(cls, records: Sequence[AccountingRecord]) -> _Usage:
        """An array's: sums over its tasks (elapsed: task-seconds), maxima for sizes."""

        def total(values: Iterable[float | int | None]) -> float | None:
            seen = [v for v in values if v is not None]
            return sum(seen) if seen else None

        def top(values: Iterable[int | None]) -> int | None:
            return max((v for v in values if v is not None), default=None) or None

        elapsed = total(r.elapsed_s for r in records)
        return cls(
            total(r.cpu_time_s for r in records),
            top(r.max_rss_kb for r in records),
            None if elapsed is None else int(elapsed),
            top(r.alloc_cpus for r in records),
            total(r.core_seconds for r in records),
            top(r.req_mem_kb for r in records),
        )

    def fields(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _observe_step(
    adapter: SchedulerAdapter,
    step: ActiveStep,
    live: list[JobStatus],
    acct: list[AccountingRecord],
) -> StepObservation:
    if step.array_size:
        return _observe_array(adapter, step, live, acct)
    record = next((r for r in acct if r.job_id.task is None), acct[0] if acct else None)
    status = live[0] if live else None
    use = _Usage.of(record)
    if status is not None and not status.state.is_final:
        return StepObservation(
            step.step_id,
            live_state(status.state),
            status.native_state,
            reason=status.reason,
            cpu_time_s=use.cpu_time_s,
            max_rss_kb=use.max_rss_kb,
            elapsed_s=use.elapsed_s,
        )
    final_state = (record.state if record else None) or (status.state if status else None)
    native = (record.native_state if record else None) or (status.native_state if status else None)
    if final_state is None:
        return StepObservation(step.step_id, None)  # seen nowhere
    if not final_state.is_final:
        # Accounting lags the queue a little: still pending/running there.
        return StepObservation(
            step.step_id,
            live_state(final_state),
            native,
            cpu_time_s=use.cpu_time_s,
            max_rss_kb=use.max_rss_kb,
        )
    return _observe_ended(adapter, step, final_state, native, record, use)


def _observe_ended(
    adapter: SchedulerAdapter,
    step: ActiveStep,
    final_state: JobState,
    native: str | None,
    record: AccountingRecord | None,
    use: _Usage,
) -> StepObservation:
    """A job the scheduler has finished: its own files decide how it went."""
    workdir = PurePosixPath(step.workdir)
    exit_code = _own_exit_code(adapter, workdir, step.scheduler_job_id)
    if exit_code is None and record is not None:
        exit_code = record.exit_code
    validation = _read_json(adapter, workdir / VALIDATION_FILE)
    extracted = _read_json(adapter, workdir / EXTRACT_FILE)
    state, reason = classify(final_state, native, exit_code, validation)
    return StepObservation(
        step.step_id,
        state,
        native,
        exit_code=exit_code,
        reason=reason,
        validation=validation,
        extracted=extracted,
        ended_at=end_time_text(record.end if record is not None else None),
        **use.fields(),
    )


def _observe_array(
    adapter: SchedulerAdapter, step: ActiveStep, live: list[JobStatus], acct: list[AccountingRecord]
) -> StepObservation:
    task_live, pending_meta = _live_tasks(live)
    task_acct = {r.job_id.task: r for r in acct if r.job_id.task is not None}
    # Tasks settled in the database are not read again: after a per-task retry (the
    # recovery ladder) the array's current job holds only the retried tasks.
    settled = dict(step.settled_tasks)
    tasks = [
        _observe_task(adapter, step, i, task_live.get(i), task_acct.get(i), pending_meta)
        for i in range(step.array_size or 0)
        if i not in settled
    ]
    states = [*settled.values(), *(t.state for t in tasks)]
    return StepObservation(
        step.step_id,
        aggregate(states),
        None,
        reason=_array_reason(tasks, settled, step.array_size or 0),
        tasks=tuple(tasks),
        ended_at=end_time_text(max((r.end for r in acct if r.end), default=None)),
        **_Usage.of_tasks([r for r in acct if r.job_id.task is not None] or acct).fields(),
    )


def _live_tasks(live: list[JobStatus]) -> tuple[dict[int, JobStatus], bool]:
    """The queue's entry per task, and whether a not-yet-split part of the array waits."""
    task_live: dict[int, JobStatus] = {}
    pending_meta = False
    for entry in live:
        if entry.job_id.task is not None:
            task_live[entry.job_id.task] = entry
        elif not entry.state.is_final:
            pending_meta = True  # e.g. "123_[4-9]" still pending as one record
    return task_live, pending_meta


def _observe_task(
    adapter: SchedulerAdapter,
    step: ActiveStep,
    index: int,
    status: JobStatus | None,
    record: AccountingRecord | None,
    pending_meta: bool,
) -> TaskObservation:
    if status is not None and not status.state.is_final:
        return TaskObservation(
            index, live_state(status.state), status.native_state, raw_job_id=status.raw_id
        )
    final = record.state if record else (status.state if status else None)
    if final is None or not final.is_final:
        return TaskObservation(
            index,
            StepState.QUEUED if (pending_meta or final) else None,
            record.native_state if record else None,
        )
    workdir = PurePosixPath(step.workdir)
    tdir = workdir / array_task_dirname(index)
    code = _own_exit_code(adapter, workdir, f"{_base(step.scheduler_job_id)}_{index}")
    if code is None and record is not None:
        code = record.exit_code
    validation = _read_json(adapter, tdir / VALIDATION_FILE)
    state, reason = classify(final, record.native_state if record else None, code, validation)
    return TaskObservation(
        index,
        state,
        record.native_state if record else (status.native_state if status else None),
        exit_code=code,
        reason=reason,
        validation=validation,
        extracted=_read_json(adapter, tdir / EXTRACT_FILE),
    )


def aggregate(states: Iterable[StepState | None]) -> StepState | None:
    """An array step's state from its tasks: it is settled only when every task is.

    ``None`` (a task seen nowhere) stays ``None`` only when no task was seen at all."""
    states = list(states)
    if not states:
        return None
    if any(s in (StepState.QUEUED, StepState.RUNNING, None) for s in states):
        if any(s is StepState.RUNNING or s in _ENDED for s in states):
            return StepState.RUNNING
        return None if all(s is None for s in states) else StepState.QUEUED
    if all(s is StepState.FINISHED for s in states):
        return StepState.FINISHED
    if all(s in (StepState.FINISHED, StepState.CANCELLED) for s in states):
        return StepState.CANCELLED
    if any(s is StepState.FAILED for s in states):
        return StepState.FAILED
    return StepState.INVALID


_BAD = (StepState.FAILED, StepState.INVALID, StepState.CANCELLED)


def _array_reason(
    tasks: Sequence[TaskObservation], settled: Mapping[int, StepState], size: int
) -> str | None:
    bad = [t for t in tasks if t.state in _BAD]
    count = len(bad) + sum(1 for st in settled.values() if st in _BAD)
    if not count:
        return None
    first = f"task {bad[0].task_index}: {bad[0].reason}" if bad else "settled earlier"
    return f"{count} of {size or len(tasks)} tasks did not finish ({first})"


def classify(
    final: JobState, native: str | None, exit_code: int | None, validation: dict[str, Any] | None
) -> tuple[StepState, str | None]:
    """Map a final scheduler state + the job's own files onto a step state and a reason."""
    verdict = validation.get("status") if validation else None
    if final is JobState.COMPLETED and (exit_code in (0, None)):
        if verdict not in (None, "converged"):
            return StepState.INVALID, f"validation: {verdict}" + _evidence(validation or {})
        return StepState.FINISHED, None
    if verdict is not None and verdict != "converged":
        return StepState.INVALID, f"validation: {verdict}" + _evidence(validation or {})
    if final is JobState.CANCELLED:
        return StepState.CANCELLED, f"cancelled ({native})" if native else "cancelled"
    if final is JobState.DEPENDENCY_NEVER_SATISFIED:
        return StepState.CANCELLED, "a step it depends on did not succeed"
    if final is JobState.TIMEOUT:
        return StepState.FAILED, TIMEOUT_REASON
    if final is JobState.OUT_OF_MEMORY:
        return StepState.FAILED, "out of memory"
    if final is JobState.NODE_FAIL:
        return StepState.FAILED, "node failure"
    failed = f"exit code {exit_code}" if exit_code is not None else (native or "failed")
    return StepState.FAILED, failed


def _evidence(validation: dict[str, Any]) -> str:
    """The validator's one-line reason, else its decisive evidence line."""
    reason = validation.get("reason")
    if isinstance(reason, str) and reason.strip():
        return f" ({reason.strip()[:300]})"
    ev = validation.get("evidence") or []
    if ev and isinstance(ev, list):
        first = ev[0]
        text = first[1] if isinstance(first, list | tuple) and len(first) > 1 else str(first)
        return f" ({str(text).strip()[:300]})"
    return ""


def _own_exit_code(adapter: SchedulerAdapter, workdir: PurePosixPath, job_id: str) -> int | None:
    """The ``.ec`` file the job script wrote: the program's own verdict, trusted over sacct."""
    safe = "".join(c if c.isalnum() or c in "_.-" else "_" for c in job_id)
    path = workdir / ".hpcgate" / f"{safe}.ec"
    try:
        if not adapter.runner.exists(path):
            return None
        return int(adapter.runner.read_text(path, max_bytes=64).strip())
    except (ValueError, OSError):
        return None
    except Exception:  # a runner error reading a tiny file must not fail the whole tick
        log.warning("could not read %s", path, exc_info=True)
        return None


def _read_json(adapter: SchedulerAdapter, path: PurePosixPath) -> dict[str, Any] | None:
    try:
        if not adapter.runner.exists(path):
            return None
        data = json.loads(adapter.runner.read_text(path, max_bytes=MAX_RESULT_BYTES))
    except (ValueError, OSError):
        log.warning("unreadable result file %s", path)
        return {"error": f"unreadable {path.name}"}
    except Exception:
        log.warning("could not read %s", path, exc_info=True)
        return None
    return data if isinstance(data, dict) else {"value": data}
