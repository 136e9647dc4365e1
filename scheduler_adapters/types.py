"""Value types shared by every scheduler adapter.

Everything here is immutable and scheduler-neutral. Adapters translate between
these and the native command lines; the service and the agent only ever see
these types. The native state is always kept beside the normalized one so no
information a researcher might need (``CANCELLED by 1000``, ``DependencyNeverSatisfied``)
is thrown away.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any

_NAME_RE = re.compile(r"^[A-Za-z0-9_.+-]{1,128}\Z")
_WORD_RE = re.compile(r"^[A-Za-z0-9_.+-]{1,64}\Z")


class JobState(enum.Enum):
    """Normalized scheduler state of a job (or array task)."""

    PENDING = "pending"
    HELD = "held"
    RUNNING = "running"
    COMPLETING = "completing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMEOUT = "timeout"
    OUT_OF_MEMORY = "out_of_memory"
    NODE_FAIL = "node_fail"
    DEPENDENCY_NEVER_SATISFIED = "dependency_never_satisfied"
    UNKNOWN = "unknown"

    @property
    def is_final(self) -> bool:
        return self in FINAL_JOB_STATES


FINAL_JOB_STATES = frozenset(
    {
        JobState.COMPLETED,
        JobState.FAILED,
        JobState.CANCELLED,
        JobState.TIMEOUT,
        JobState.OUT_OF_MEMORY,
        JobState.NODE_FAIL,
        JobState.DEPENDENCY_NEVER_SATISFIED,
    }
)


@dataclass(frozen=True, order=True)
class JobId:
    """A scheduler job id. ``task`` is set for one task of an array (``123_4``)."""

    value: str
    task: int | None = None

    def __str__(self) -> str:
        return self.value if self.task is None else f"{self.value}_{self.task}"

    @classmethod
    def parse(cls, text: str) -> JobId:
        text = text.strip()
        if "_" in text:
            base, _, task = text.partition("_")
            if task.isdigit():
                return cls(base, int(task))
        return cls(text)


@dataclass(frozen=True)
class Resources:
    nodes: int = 1
    tasks: int = 1
    cpus_per_task: int = 1
    memory_mb: int | None = None
    walltime_s: int | None = None
    gpus: int = 0

    def __post_init__(self) -> None:
        for name in ("nodes", "tasks", "cpus_per_task"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.gpus < 0:
            raise ValueError("gpus must be >= 0")
        if self.memory_mb is not None and self.memory_mb < 1:
            raise ValueError("memory_mb must be >= 1")
        if self.walltime_s is not None and self.walltime_s < 1:
            raise ValueError("walltime_s must be >= 1")


@dataclass(frozen=True)
class ArraySpec:
    """Array indices and an optional throttle (``%k`` in Slurm)."""

    indices: tuple[int, ...]
    max_concurrent: int | None = None

    def __post_init__(self) -> None:
        if not self.indices:
            raise ValueError("an array needs at least one index")
        if any(i < 0 for i in self.indices):
            raise ValueError("array indices must be >= 0")
        if len(set(self.indices)) != len(self.indices):
            raise ValueError("array indices must be unique")
        if self.max_concurrent is not None and self.max_concurrent < 1:
            raise ValueError("max_concurrent must be >= 1")

    @classmethod
    def of_size(cls, n: int, max_concurrent: int | None = None) -> ArraySpec:
        return cls(tuple(range(n)), max_concurrent)

    def compact(self) -> str:
        """Indices as ranges, e.g. ``0-9,12,20-21`` (no throttle suffix)."""
        idx = sorted(self.indices)
        parts: list[str] = []
        start = prev = idx[0]
        for i in idx[1:]:
            if i == prev + 1:
                prev = i
                continue
            parts.append(str(start) if start == prev else f"{start}-{prev}")
            start = prev = i
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        return ",".join(parts)


@dataclass(frozen=True)
class JobSpec:
    """Everything needed to render and submit one job (or one array).

    Directive-bound fields (name, queue, account, qos) are validated here so a
    template never has to guess whether a value is safe on a ``#SBATCH`` line.
    Free text (environment values, template context) is shell-quoted by the
    renderer's ``sh`` filter.
    """

    name: str
    template: str
    workdir: PurePosixPath
    resources: Resources = field(default_factory=Resources)
    queue: str | None = None
    account: str | None = None
    qos: str | None = None
    array: ArraySpec | None = None
    environment: Mapping[str, str] = field(default_factory=dict)
    extra_directives: Sequence[str] = ()
    context: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not _NAME_RE.match(self.name):
            raise ValueError(f"job name {self.name!r} must match {_NAME_RE.pattern}")
        for label in ("queue", "account", "qos"):
            value = getattr(self, label)
            if value is not None and not _WORD_RE.match(value):
                raise ValueError(f"{label} {value!r} must match {_WORD_RE.pattern}")
        for key in self.environment:
            if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*\Z", key):
                raise ValueError(f"environment variable name {key!r} is not valid")
        for d in self.extra_directives:
            if "\n" in d or "\r" in d:
                raise ValueError("extra directives must be single lines")
        if not self.workdir.is_absolute():
            raise ValueError("workdir must be an absolute path")


@dataclass(frozen=True)
class JobStatus:
    """One observation of a job in the live queue."""

    job_id: JobId
    state: JobState
    native_state: str
    reason: str | None = None
    name: str | None = None
    array_job_id: str | None = None
    # An array task's own job id (Slurm's raw id, %A): what sstat reports it under.
    raw_id: str | None = None


@dataclass(frozen=True)
class AccountingRecord:
    """A job's accounting after (or during) its run."""

    job_id: JobId
    state: JobState
    native_state: str
    exit_code: int | None = None
    signal: int | None = None
    elapsed_s: int | None = None
    cpu_time_s: float | None = None
    max_rss_kb: int | None = None
    node_list: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    name: str | None = None
    raw_id: str | None = None
    # Core-hour accounting (docs/accounting.md): CPUs allocated, their seconds (sacct
    # CPUTimeRAW = Elapsed x AllocCPUS; PBS walltime x ncpus) and the memory asked for.
    alloc_cpus: int | None = None
    core_seconds: float | None = None
    req_mem_kb: int | None = None


@dataclass(frozen=True)
class NodeMetrics:
    name: str
    state: str
    cpu_load: float | None
    cpus_allocated: int
    cpus_total: int
    memory_free_mb: int | None
    memory_total_mb: int
    memory_allocated_mb: int | None = None
    partitions: tuple[str, ...] = ()


@dataclass(frozen=True)
class CommandResult:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    duration_s: float = 0.0
