"""Observe a cluster's active steps with a constant number of scheduler calls per tick.

One ``status`` call (the live queue) plus at most one ``accounting`` call (for everything
not in the queue or already final there), whatever the number of jobs. A job seen in
neither is reported ``unknown`` — never completed; the service turns repeated ``unknown``
into LOST. A poll that fails raises (the cluster is unhealthy), it never fails the jobs.

For a finished step the small files written by the job itself are read back: the exit
code file, ``validation.json`` (from ``hpcgate validate``) and ``extract.json`` (from
``hpcgate extract``). Only these cross the network.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import PurePosixPath
from typing import Any

from hpcgate.domain.plan import array_task_dirname
from hpcgate.engine.work import ActiveStep, StepObservation, TaskObservation
from scheduler_adapters.base import SchedulerAdapter
from scheduler_adapters.types import AccountingRecord, JobId, JobState, JobStatus

log = logging.getLogger(__name__)

VALIDATION_FILE = ".hpcgate/validation.json"
EXTRACT_FILE = ".hpcgate/extract.json"
MAX_RESULT_BYTES = 4 << 20

_RUNNING = {JobState.RUNNING, JobState.COMPLETING}
_WAITING = {JobState.PENDING, JobState.HELD}


def _base(job_id: str) -> str:
    return JobId.parse(job_id).value


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
    cpu = record.cpu_time_s if record else None
    rss = record.max_rss_kb if record else None
    elapsed = record.elapsed_s if record else None
    if status is not None and not status.state.is_final:
        state = "running" if status.state in _RUNNING else "queued"
        return StepObservation(
            step.step_id,
            state,
            status.native_state,
            reason=status.reason,
            cpu_time_s=cpu,
            max_rss_kb=rss,
            elapsed_s=elapsed,
        )
    final_state = (record.state if record else None) or (status.state if status else None)
    native = (record.native_state if record else None) or (status.native_state if status else None)
    if final_state is None:
        return StepObservation(step.step_id, "unknown")
    if not final_state.is_final:
        # Accounting lags the queue a little: still pending/running there.
        state = "running" if final_state in _RUNNING else "queued"
        return StepObservation(step.step_id, state, native, cpu_time_s=cpu, max_rss_kb=rss)
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
        cpu_time_s=cpu,
        max_rss_kb=rss,
        elapsed_s=elapsed,
        validation=validation,
        extracted=extracted,
    )


def _observe_array(
    adapter: SchedulerAdapter, step: ActiveStep, live: list[JobStatus], acct: list[AccountingRecord]
) -> StepObservation:
    size = step.array_size or 0
    task_live: dict[int, JobStatus] = {}
    pending_meta = False
    for entry in live:
        if entry.job_id.task is not None:
            task_live[entry.job_id.task] = entry
        elif not entry.state.is_final:
            pending_meta = True  # e.g. "123_[4-9]" still pending as one record
    task_acct = {r.job_id.task: r for r in acct if r.job_id.task is not None}
    workdir = PurePosixPath(step.workdir)
    tasks: list[TaskObservation] = []
    for i in range(size):
        st = task_live.get(i)
        rec = task_acct.get(i)
        if st is not None and not st.state.is_final:
            tasks.append(
                TaskObservation(i, "running" if st.state in _RUNNING else "queued", st.native_state)
            )
            continue
        final = rec.state if rec else (st.state if st else None)
        if final is None or not final.is_final:
            tasks.append(
                TaskObservation(
                    i,
                    "queued" if (pending_meta or final) else "unknown",
                    rec.native_state if rec else None,
                )
            )
            continue
        tdir = workdir / array_task_dirname(i)
        code = _own_exit_code(adapter, workdir, f"{_base(step.scheduler_job_id)}_{i}")
        if code is None and rec is not None:
            code = rec.exit_code
        validation = _read_json(adapter, tdir / VALIDATION_FILE)
        state, reason = classify(final, rec.native_state if rec else None, code, validation)
        native = rec.native_state if rec else (st.native_state if st else None)
        tasks.append(
            TaskObservation(
                i,
                state,
                native,
                exit_code=code,
                reason=reason,
                validation=validation,
                extracted=_read_json(adapter, tdir / EXTRACT_FILE),
            )
        )
    cpu = sum(r.cpu_time_s or 0.0 for r in acct) or None
    rss = max((r.max_rss_kb or 0 for r in acct), default=0) or None
    return StepObservation(
        step.step_id,
        aggregate([t.state for t in tasks]),
        None,
        reason=_array_reason(tasks),
        cpu_time_s=cpu,
        max_rss_kb=rss,
        tasks=tuple(tasks),
    )


def aggregate(states: Iterable[str]) -> str:
    """An array step's state from its tasks: it is settled only when every task is."""
    states = list(states)
    if not states:
        return "unknown"
    if any(s in ("queued", "running", "unknown") for s in states):
        if any(s == "running" for s in states) or any(
            s in ("finished", "invalid", "failed", "cancelled") for s in states
        ):
            return "running"
        return "unknown" if all(s == "unknown" for s in states) else "queued"
    if all(s == "finished" for s in states):
        return "finished"
    if all(s in ("finished", "cancelled") for s in states):
        return "cancelled"
    if any(s == "failed" for s in states):
        return "failed"
    return "invalid"


def _array_reason(tasks: Sequence[TaskObservation]) -> str | None:
    bad = [t for t in tasks if t.state in ("failed", "invalid", "cancelled")]
    if not bad:
        return None
    first = bad[0]
    return (
        f"{len(bad)} of {len(tasks)} tasks did not finish (task {first.task_index}: {first.reason})"
    )


def classify(
    final: JobState, native: str | None, exit_code: int | None, validation: dict[str, Any] | None
) -> tuple[str, str | None]:
    """Map a final scheduler state + the job's own files onto a step state and a reason."""
    verdict = validation.get("status") if validation else None
    if final is JobState.COMPLETED and (exit_code in (0, None)):
        if verdict not in (None, "converged"):
            return "invalid", f"validation: {verdict}" + _evidence(validation or {})
        return "finished", None
    if verdict is not None and verdict != "converged":
        return "invalid", f"validation: {verdict}" + _evidence(validation or {})
    if final is JobState.CANCELLED:
        return "cancelled", f"cancelled ({native})" if native else "cancelled"
    if final is JobState.DEPENDENCY_NEVER_SATISFIED:
        return "cancelled", "a step it depends on did not succeed"
    if final is JobState.TIMEOUT:
        return "failed", "walltime exceeded (TIMEOUT)"
    if final is JobState.OUT_OF_MEMORY:
        return "failed", "out of memory"
    if final is JobState.NODE_FAIL:
        return "failed", "node failure"
    return "failed", f"exit code {exit_code}" if exit_code is not None else (native or "failed")


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
