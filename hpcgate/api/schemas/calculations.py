"""Calculation, step and result shapes for the API (input, output and list forms kept apart)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class CalculationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=20000)
    molecule_id: int | None = Field(default=None, ge=1)
    cluster_id: int = Field(ge=1)
    logical_queue: str = Field(min_length=1, max_length=64)
    code: Literal["siesta", "qe", "generic"] = "generic"
    configuration: dict[str, Any] = Field(
        description=(
            "kind (single|chain|sweep|dag), inputs {file name: text}, main_input, parameters, "
            "variants [{label, parameters}], inherit [globs], resources, max_concurrent, "
            "command (generic), steps (dag)"
        )
    )
    analyses: list[str] = Field(default_factory=list, max_length=100)
    priority: int = Field(default=0, ge=-1000, le=1000)


class CalculationUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=20000)


class PriorityUpdate(BaseModel):
    priority: int = Field(ge=-1000, le=1000)


class RejectBody(BaseModel):
    reason: str = Field(default="", max_length=2000)


class AttemptChange(BaseModel):
    key: str
    old: str | int | float | bool | None
    new: str | int | float | bool


class AttemptOut(BaseModel):
    """One attempt of a step (the recovery ladder, docs/engine.md): its own job and files."""

    attempt: int
    job_name: str
    scheduler_job_id: str | None
    state: str
    verdict: str | None  # why it was retried (None for the current attempt)
    reason: str | None
    workdir: str | None
    rung: str | None  # the ladder's rung that made this attempt (None: the first)
    changes: list[AttemptChange] = Field(default_factory=list)
    submitted_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None


class TaskOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    task_index: int
    label: str
    state: str
    native_state: str | None
    exit_code: int | None
    state_reason: str | None
    variant: dict[str, Any]
    attempt: int = 1
    # A retried task's attempts (the recovery ladder per task), oldest first, current last;
    # empty for a task that ran once.
    attempts: list[AttemptOut] = Field(default_factory=list)


class StepOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    index: int
    label: str
    state: str
    state_reason: str | None
    job_name: str
    scheduler_job_id: str | None
    native_state: str | None
    attempt: int
    array_size: int | None
    workdir: str | None
    exit_code: int | None
    template: str
    submitted_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    parents: list[int] = Field(default_factory=list)
    # TranSIESTA ladders: {"role": electrode|device|tbtrans, "bias_v", ...}; None otherwise.
    ladder: dict[str, Any] | None = None
    attempts: list[AttemptOut] = Field(default_factory=list)  # oldest first, current last


class StepDetail(StepOut):
    tasks: list[TaskOut] = Field(default_factory=list)
    variant: dict[str, Any] = Field(default_factory=dict)
    inherit: list[str] = Field(default_factory=list)


class CalculationSummary(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    owner_id: int
    owner_email: str | None = None
    cluster_id: int
    cluster_name: str | None = None
    molecule_id: int | None
    logical_queue: str
    code: str
    kind: str = "single"
    state: str
    state_reason: str | None
    approved: bool
    priority: int
    created_at: datetime
    submitted_at: datetime | None
    finished_at: datetime | None
    step_count: int = 0


class CalculationDetail(CalculationSummary):
    description: str
    configuration: dict[str, Any]
    analyses: list[str]
    steps: list[StepOut]
    # Only in a creation answer: e.g. a soft core-hour quota reached (docs/accounting.md).
    warnings: list[str] = Field(default_factory=list)


class CalculationPage(BaseModel):
    items: list[CalculationSummary]
    total: int
    limit: int
    offset: int


class ResultOut(BaseModel):
    step_id: int
    step_index: int
    task_index: int
    kind: str
    data: dict[str, Any]


class AnalysisResultOut(BaseModel):
    analysis: str
    status: str
    message: str | None
    data: dict[str, Any]


class ResultsOut(BaseModel):
    extracted: list[ResultOut]
    analyses: list[AnalysisResultOut]


class SeriesPoint(BaseModel):
    ts: datetime
    values: dict[str, float | None]


class SeriesOut(BaseModel):
    bucket_s: int
    points: list[SeriesPoint]


class PreviewStep(BaseModel):
    index: int
    label: str
    parents: list[int]
    array_size: int | None
    files: list[str]
    script: str


class PreviewOut(BaseModel):
    kind: str
    steps: list[PreviewStep]
