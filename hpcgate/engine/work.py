"""What the service and a dispatcher (worker or agent) exchange, as plain JSON data.

Work items go out; typed observations and heartbeat samples come back. States are
``StepState`` members here, their string values only on the wire.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import PurePosixPath
from typing import Any

from hpcgate.domain.states import StepState
from scheduler_adapters.types import ArraySpec, JobSpec, Resources

#: What an agent of this version understands beyond the first protocol. It sends them with
#: every pull, and the service hands an agent only work it can carry out as meant (an
#: upgrade is rarely done on the service and every login node at once). A new field whose
#: omission would change what runs gets a name here, in ``_STEP_FEATURES`` and in the
#: service's check (``required_features``).
AGENT_FEATURES = frozenset({"array_indices", "withdrawn_jobs", "refinements"})

# StepWork fields an older agent does not know; each, when not empty, is a feature it needs.
_STEP_FEATURES = ("array_indices", "withdrawn_jobs")


class UnsupportedWork(ValueError):
    """A work item with fields this agent does not know: carried out without them, it would
    run something else than what was asked, so it is not carried out at all."""


@dataclass(frozen=True)
class StepWork:
    step_id: int
    index: int
    label: str
    job_name: str
    attempt: int
    template: str
    workdir: str
    parents: tuple[int, ...] = ()  # step ids
    scheduler_job_id: str | None = None
    state: StepState = StepState.PLANNED
    resources: dict[str, Any] = field(default_factory=dict)
    queue: str | None = None
    account: str | None = None
    qos: str | None = None
    array_size: int | None = None
    max_concurrent: int | None = None
    # An array's retry (the recovery ladder, per task): only these indices are submitted.
    array_indices: tuple[int, ...] = ()
    environment: dict[str, str] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)
    # Files to stage before submission: path relative to workdir -> text.
    files: dict[str, str] = field(default_factory=dict)
    # Binary inputs to stage byte for byte: path relative to workdir -> sha256 of the blob
    # (a reference, never the content: the dispatcher fetches each blob once and caches it).
    blobs: dict[str, str] = field(default_factory=dict)
    # Jobs of this step withdrawn while they waited for a parent that is being retried
    # (the recovery ladder): cancelled, quietly, before the step is submitted again.
    withdrawn_jobs: tuple[str, ...] = ()

    def job_spec(self) -> JobSpec:
        return JobSpec(
            name=self.job_name,
            template=self.template,
            workdir=PurePosixPath(self.workdir),
            resources=Resources(**self.resources),
            queue=self.queue,
            account=self.account,
            qos=self.qos,
            array=self._array(),
            environment=dict(self.environment),
            context=dict(self.context),
        )

    def _array(self) -> ArraySpec | None:
        if self.array_indices:
            return ArraySpec(tuple(self.array_indices), self.max_concurrent)
        return ArraySpec.of_size(self.array_size, self.max_concurrent) if self.array_size else None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StepWork:
        unknown = sorted(set(data) - _STEP_FIELDS)
        if unknown:
            raise UnsupportedWork(
                f"step {data.get('index')} has fields this agent does not know: "
                f"{', '.join(unknown)} (upgrade the agent)"
            )
        data = dict(data)
        data["parents"] = tuple(data.get("parents", ()))
        data["array_indices"] = tuple(data.get("array_indices", ()))
        data["withdrawn_jobs"] = tuple(data.get("withdrawn_jobs", ()))
        data["state"] = StepState(data.get("state", StepState.PLANNED))
        return cls(**data)


_STEP_FIELDS = frozenset(f.name for f in fields(StepWork))


@dataclass(frozen=True)
class CalculationWork:
    calculation_id: int
    cluster: str
    steps: tuple[StepWork, ...]
    # The login name the owner is mapped to on this cluster (``cluster_accounts``): the
    # dispatcher submits as it (``sudo -n -u``); None means the cluster's job account.
    run_as: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Feature fields are left out where empty, so an agent that predates them can still
        read ordinary work (and is never handed the rest: ``required_features``)."""
        data = asdict(self)
        for step in data["steps"]:
            for name in _STEP_FEATURES:
                if not step[name]:
                    del step[name]
        return data

    def required_features(self) -> frozenset[str]:
        """What an agent must understand to carry this work out as meant."""
        return frozenset(
            name for step in self.steps for name in _STEP_FEATURES if getattr(step, name)
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CalculationWork:
        run_as = data.get("run_as")
        return cls(
            calculation_id=int(data["calculation_id"]),
            cluster=str(data["cluster"]),
            steps=tuple(StepWork.from_dict(s) for s in data["steps"]),
            run_as=str(run_as) if run_as else None,
        )


@dataclass(frozen=True)
class ActiveStep:
    """A step the scheduler may still hold: what the harvester needs to observe it."""

    step_id: int
    calculation_id: int
    scheduler_job_id: str
    workdir: str
    state: StepState
    array_size: int | None = None
    unknown_ticks: int = 0
    # Array tasks already settled in the database: (task index, state). The harvester
    # skips them, so a tick costs what changed, not the size of the array.
    settled_tasks: tuple[tuple[int, StepState], ...] = ()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ActiveStep:
        data = dict(data)
        data["state"] = StepState(data["state"])
        data["settled_tasks"] = tuple(
            (int(i), StepState(st)) for i, st in data.get("settled_tasks", ())
        )
        return cls(**data)


# What a harvest can see of a step: the scheduler's view mapped onto our states. A step
# seen nowhere this tick has no state (``None``); on the wire that is ``"unknown"``.
OBSERVABLE_STATES = frozenset(
    {
        StepState.QUEUED,
        StepState.RUNNING,
        StepState.FINISHED,
        StepState.INVALID,
        StepState.FAILED,
        StepState.CANCELLED,
    }
)
UNSEEN = "unknown"


def state_to_wire(state: StepState | None) -> str:
    return UNSEEN if state is None else state.value


def state_from_wire(text: str) -> StepState | None:
    """The typed state of a reported observation; anything not observable is refused."""
    if text == UNSEEN:
        return None
    state = StepState(text)
    if state not in OBSERVABLE_STATES:
        raise ValueError(f"{text!r} is not an observable step state")
    return state


@dataclass(frozen=True)
class TaskObservation:
    task_index: int
    state: StepState | None  # None: seen nowhere this tick
    native_state: str | None = None
    exit_code: int | None = None
    reason: str | None = None
    validation: dict[str, Any] | None = None
    extracted: dict[str, Any] | None = None
    # A running task's live sample and output progress (engine/live_usage.py), for its own
    # stall detection; None: not sampled.
    cpu_time_s: float | None = None
    max_rss_kb: int | None = None
    output_bytes: int | None = None
    progress_markers: int | None = None
    # A running task's own job id where the scheduler has one (Slurm's raw id): live usage
    # is reported under it.
    raw_job_id: str | None = None

    @property
    def still_active(self) -> bool:
        """The scheduler may still hold it: queued, running or not seen this tick."""
        return self.state in (None, StepState.QUEUED, StepState.RUNNING)


@dataclass(frozen=True)
class StepObservation:
    """What one harvest tick learned about one step (applied by the service)."""

    step_id: int
    state: StepState | None  # None: seen nowhere this tick (repeated, the step is LOST)
    native_state: str | None = None
    exit_code: int | None = None
    reason: str | None = None
    cpu_time_s: float | None = None
    max_rss_kb: int | None = None
    elapsed_s: int | None = None
    # Core-hour accounting (services/usage.py): the allocation's CPUs, core-seconds and
    # requested memory, from the same accounting call (absent from older agents: None).
    alloc_cpus: int | None = None
    core_seconds: float | None = None
    req_mem_kb: int | None = None
    validation: dict[str, Any] | None = None
    extracted: dict[str, Any] | None = None
    tasks: tuple[TaskObservation, ...] = ()
    # The job's end (ISO 8601 with zone) per accounting: the harvest lag's start.
    ended_at: str | None = None
    # A running step's *.out files (engine/progress.py), for stall detection; None: not probed.
    output_bytes: int | None = None
    progress_markers: int | None = None

    @property
    def still_active(self) -> bool:
        """The scheduler may still hold it: queued, running or not seen this tick."""
        return self.state in (None, StepState.QUEUED, StepState.RUNNING)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["state"] = state_to_wire(self.state)
        for task, obs in zip(data["tasks"], self.tasks, strict=True):
            task["state"] = state_to_wire(obs.state)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StepObservation:
        data = dict(data)
        data["state"] = state_from_wire(data["state"])
        data["tasks"] = tuple(
            TaskObservation(**{**t, "state": state_from_wire(t["state"])})
            for t in data.get("tasks", ())
        )
        return cls(**data)


@dataclass(frozen=True)
class ClusterSample:
    """One heartbeat: node metrics plus queue figures, at ``ts`` (ISO 8601)."""

    ts: str
    nodes: tuple[dict[str, Any], ...]
    queue_depth: int
    running_jobs: int
    sample_key: str
    # Every user's pending/running jobs per partition (issue 18); agents older than that
    # send none.
    partitions: tuple[dict[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def for_dispatcher(
    work: CalculationWork,
    hpcgate_command: list[str],
    queue_overrides: dict[str, dict[str, str | None]] | None = None,
) -> CalculationWork:
    """Fill in what only the dispatcher knows: how to call ``hpcgate`` inside jobs, local queues."""
    steps = []
    for step in work.steps:
        ctx = {**step.context, "hpcgate_command": list(hpcgate_command)}
        override = (queue_overrides or {}).get(str(step.context.get("logical_queue", "")))
        changes: dict[str, object] = {"context": ctx}
        if override:
            changes.update({k: v for k, v in override.items() if k in ("queue", "account", "qos")})
        steps.append(replace(step, **changes))  # type: ignore[arg-type]
    return replace(work, steps=tuple(steps))
