"""The local executor's on-disk job store, shared by the adapter and the supervisor.

Everything a job's state is computed from lives here as files, so a restarted
service (or a second process) sees the same jobs: ``<root>/jobs/<id>/`` holds
``job.json``, ``supervisor.pid``, the ``held``/``cancelled``/``cancel-<key>`` marks,
``phase``, ``dependency_never_satisfied`` and each task's ``<key>.pid``/``<key>.exit``.
The ``.ec`` files the job script writes stay in ``<workdir>/.hpcgate/``.
"""

from __future__ import annotations

import fcntl
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scheduler_adapters.local.files import live_pid, read_text, read_untrusted, write_atomic
from scheduler_adapters.types import JobId, JobState

STATE_DIRNAME = ".hpcgate-local"
ID_PREFIX = "L"


def id_number(job_id: str) -> int:
    digits = job_id[len(ID_PREFIX):]
    return int(digits) if digits.isascii() and digits.isdigit() else 0


def task_keys(job: dict[str, Any]) -> list[tuple[str, int | None]]:
    """(record key, array index) of every task of a job: ``L12`` or ``L12_3``..."""
    indices = job.get("indices")
    if indices is None:
        return [(job["id"], None)]
    return [(f"{job['id']}_{i}", int(i)) for i in indices]


@dataclass(frozen=True)
class TaskView:
    job_id: JobId
    state: JobState
    native: str
    reason: str | None
    exit: dict[str, Any] | None
    ec: int | None


@dataclass(frozen=True)
class _JobMarks:
    """The job-wide marks a task's state depends on, read once per view."""

    supervisor_alive: bool
    cancelled: bool
    held: bool
    never: bool
    never_reason: str | None
    phase: str
    has_parents: bool


def _load_dict(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _ended_state(exit_record: dict[str, Any], cancelled: bool) -> JobState:
    if not exit_record.get("signal") and exit_record.get("rc") == 0:
        return JobState.COMPLETED
    # killed by a signal, or the epilogue's TERM trap exiting 143: still a cancellation
    return JobState.CANCELLED if cancelled else JobState.FAILED


class Store:
    """The on-disk layout; shared by the adapter and the supervisor process."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.jobs = root / "jobs"

    def job_dir(self, job_id: str) -> Path:
        return self.jobs / job_id

    def load(self, job_id: str) -> dict[str, Any] | None:
        return _load_dict(read_text(self.job_dir(job_id) / "job.json"))

    def next_id(self) -> str:
        self.jobs.mkdir(parents=True, exist_ok=True)
        with open(self.root / "counter.lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            counter = self.root / "counter"
            n = int(read_text(counter) or "0") + 1
            write_atomic(counter, f"{n}\n")
        return f"{ID_PREFIX}{n}"

    def all_ids(self) -> list[str]:
        if not self.jobs.is_dir():
            return []
        ids = [p.name for p in self.jobs.iterdir() if (p / "job.json").is_file()]
        return sorted(ids, key=id_number)

    @staticmethod
    def state_dir(job: dict[str, Any]) -> Path:
        """Where the job script writes its ``.ec`` files (the job's account owns it)."""
        return Path(job["workdir"]) / ".hpcgate"

    def records_dir(self, job: dict[str, Any]) -> Path:
        """Where the supervisor writes ``.pid``/``.exit``: ours, never the job's directory."""
        return self.job_dir(job["id"])

    def read_exit(self, job: dict[str, Any], key: str) -> dict[str, Any] | None:
        return _load_dict(read_text(self.records_dir(job) / f"{key}.exit"))

    def read_ec(self, job: dict[str, Any], key: str) -> int | None:
        text = (read_untrusted(self.state_dir(job) / f"{key}.ec") or "").strip()
        return int(text) if text.lstrip("-").isdigit() else None

    def view(self, job_id: str) -> list[TaskView] | None:
        """Current state of every task of a job, from files only."""
        job = self.load(job_id)
        if job is None:
            return None
        d = self.job_dir(job_id)
        marks = _JobMarks(
            supervisor_alive=live_pid(read_text(d / "supervisor.pid")) is not None,
            cancelled=(d / "cancelled").exists(),
            held=(d / "held").exists(),
            never=(d / "dependency_never_satisfied").exists(),
            never_reason=(read_text(d / "dependency_never_satisfied") or "").strip() or None,
            phase=(read_text(d / "phase") or "").strip(),
            has_parents=bool(job.get("after_ok")),
        )
        return [self._task_view(job, key, index, marks) for key, index in task_keys(job)]

    def _task_view(
        self, job: dict[str, Any], key: str, index: int | None, marks: _JobMarks
    ) -> TaskView:
        jid = JobId(job["id"], index)
        ex = self.read_exit(job, key)
        ec = self.read_ec(job, key)
        task_cancelled = marks.cancelled or (self.job_dir(job["id"]) / f"cancel-{key}").exists()
        if ex is not None:
            state = _ended_state(ex, task_cancelled)
            return TaskView(jid, state, state.name, None, ex, ec)
        pid_file = self.records_dir(job) / f"{key}.pid"
        started = pid_file.exists()
        if started and (live_pid(read_text(pid_file)) is not None or marks.supervisor_alive):
            state = JobState.COMPLETING if task_cancelled else JobState.RUNNING
            return TaskView(jid, state, state.name, None, None, ec)
        if marks.never:
            return TaskView(jid, JobState.DEPENDENCY_NEVER_SATISFIED,
                            "DEPENDENCY_NEVER_SATISFIED", marks.never_reason, None, ec)
        if task_cancelled and (not marks.supervisor_alive or not started):
            return TaskView(jid, JobState.CANCELLED, "CANCELLED", None, None, ec)
        if not marks.supervisor_alive:
            return TaskView(jid, JobState.UNKNOWN, "LOST", "supervisor gone", None, ec)
        if marks.held:
            return TaskView(jid, JobState.HELD, "PENDING", "JobHeldUser", None, ec)
        if marks.phase == "run":
            return TaskView(jid, JobState.PENDING, "PENDING", "JobArrayTaskLimit", None, ec)
        reason = "Dependency" if marks.has_parents else "None"
        return TaskView(jid, JobState.PENDING, "PENDING", reason, None, ec)
