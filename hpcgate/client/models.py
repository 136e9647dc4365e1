"""What the API sends and accepts, as the client sees it: one model layer for ``Client`` and
``AsyncClient``.

These mirror ``hpcgate/api/schemas`` field by field (``tests/unit/client/test_models_match_api.py``
keeps them in step) but import nothing of the server, so the slim ``hpcgate-agent`` installs can use
the client too. Responses ignore fields they do not know, so an older client keeps working
against a newer server; the one request model (``CalculationCreate``) forbids unknown fields,
as the API does, so a typo fails before it is sent.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

FINAL_STATES = frozenset({"completed", "failed", "cancelled", "rejected"})


class _Out(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class User(_Out):
    id: int
    email: str
    full_name: str
    role: str
    notify_level: str
    blocked: bool
    created_at: datetime
    project: str | None = None


class Token(_Out):
    access_token: str
    token_type: str = "bearer"  # noqa: S105 - a token *type*
    expires_in: int
    user: User


class Queue(_Out):
    id: int
    cluster_id: int
    logical_queue: str
    partition: str
    qos: str | None = None
    account: str | None = None
    max_walltime_s: int | None = None
    max_nodes: int | None = None
    max_cpus: int | None = None


class Cluster(_Out):
    id: int
    name: str
    description: str = ""
    scheduler: str
    access_mode: str
    host: str | None = None
    port: int = 22
    login_user: str | None = None
    scratch_root: str
    enabled: bool
    require_approval: bool
    online: bool
    last_heartbeat_at: datetime | None = None
    cleanup_policy: dict[str, Any] = Field(default_factory=dict)
    queues: list[Queue] = Field(default_factory=list)
    created_at: datetime | None = None
    updated_at: datetime | None = None


class AnalysisInfo(_Out):
    name: str
    title: str
    codes: list[str]
    requires: list[str]
    description: str = ""


class AttemptChange(_Out):
    key: str
    old: str | int | float | bool | None = None
    new: str | int | float | bool


class Attempt(_Out):
    """One attempt of a step: the recovery ladder retries a step with changed inputs."""

    attempt: int
    job_name: str
    scheduler_job_id: str | None = None
    state: str
    verdict: str | None = None
    reason: str | None = None
    workdir: str | None = None
    rung: str | None = None
    changes: list[AttemptChange] = Field(default_factory=list)
    submitted_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


class Task(_Out):
    task_index: int
    label: str
    state: str
    native_state: str | None = None
    exit_code: int | None = None
    state_reason: str | None = None
    variant: dict[str, Any] = Field(default_factory=dict)
    attempt: int = 1
    attempts: list[Attempt] = Field(default_factory=list)  # a retried task's, oldest first


class Step(_Out):
    id: int
    index: int
    label: str
    state: str
    state_reason: str | None = None
    job_name: str
    scheduler_job_id: str | None = None
    native_state: str | None = None
    attempt: int
    array_size: int | None = None
    workdir: str | None = None
    exit_code: int | None = None
    template: str
    submitted_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    parents: list[int] = Field(default_factory=list)
    ladder: dict[str, Any] | None = None
    attempts: list[Attempt] = Field(default_factory=list)  # oldest first, current last


class StepDetail(Step):
    tasks: list[Task] = Field(default_factory=list)
    variant: dict[str, Any] = Field(default_factory=dict)
    inherit: list[str] = Field(default_factory=list)


class CalculationSummary(_Out):
    id: int
    name: str
    owner_id: int
    owner_email: str | None = None
    cluster_id: int
    cluster_name: str | None = None
    molecule_id: int | None = None
    logical_queue: str
    code: str
    kind: str = "single"
    state: str
    state_reason: str | None = None
    approved: bool
    priority: int
    created_at: datetime
    submitted_at: datetime | None = None
    finished_at: datetime | None = None
    step_count: int = 0

    @property
    def finished(self) -> bool:
        """In a state it never leaves (completed, failed, cancelled, rejected)."""
        return self.state in FINAL_STATES


class CalculationDetail(CalculationSummary):
    description: str = ""
    configuration: dict[str, Any] = Field(default_factory=dict)
    analyses: list[str] = Field(default_factory=list)
    steps: list[Step] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)  # e.g. a soft core-hour quota reached


class CalculationPage(_Out):
    items: list[CalculationSummary]
    total: int
    limit: int
    offset: int


class ExtractedResult(_Out):
    step_id: int
    step_index: int
    task_index: int
    kind: str
    data: dict[str, Any]


class AnalysisResult(_Out):
    analysis: str
    status: str
    message: str | None = None
    data: dict[str, Any]


class Results(_Out):
    extracted: list[ExtractedResult]
    analyses: list[AnalysisResult]


class LogLine(_Out):
    id: int
    ts: datetime
    source: str
    level: str
    message: str
    calculation_id: int | None = None
    cluster_id: int | None = None
    context: dict[str, Any] = Field(default_factory=dict)


class LogPage(_Out):
    items: list[LogLine]
    next_cursor: str | None = None


class PreviewStep(_Out):
    index: int
    label: str
    parents: list[int]
    array_size: int | None = None
    files: list[str]
    script: str


class Preview(_Out):
    kind: str
    steps: list[PreviewStep]


class StoredInput(_Out):
    name: str
    sha256: str
    size: int
    new: bool


class CalculationCreate(BaseModel):
    """The body of ``POST /calculations`` (binary files travel beside it, see ``submit``)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    description: str = ""
    molecule_id: int | None = None
    cluster_id: int = Field(ge=1)
    logical_queue: str = Field(min_length=1, max_length=64)
    code: Literal["siesta", "qe", "generic"] = "generic"
    configuration: dict[str, Any]
    analyses: list[str] = Field(default_factory=list)
    priority: int = 0


class OutputEntry(_Out):
    name: str
    kind: str  # file, dir, link or other
    size: int
    mtime: float


class OutputListing(_Out):
    """A step's run directory (``Client.list_outputs``), read on the cluster."""

    calculation_id: int
    step_index: int
    path: str
    state: str
    stdout: str  # the file ``follow_output`` follows by default
    entries: list[OutputEntry]
    truncated: bool
