"""What agents send and receive. Kept close to ``hpcgate.engine.work`` so both sides agree."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field, StringConstraints


class PullRequest(BaseModel):
    agent: str = Field(min_length=1, max_length=200, description="The agent's name (host:pid).")
    limit: int = Field(default=10, ge=1, le=100)
    features: list[Annotated[str, StringConstraints(max_length=40)]] = Field(
        default_factory=list,
        max_length=50,
        description=(
            "What this agent understands beyond the first protocol (engine/work.py "
            "AGENT_FEATURES); work needing more is left for an agent that has it."
        ),
    )


class PullResponse(BaseModel):
    calculations: list[dict[str, Any]]
    cancel: list[str] = Field(default_factory=list, description="Scheduler ids to cancel now.")
    long_poll: bool = Field(
        default=False, description="The server honoured ?wait= (agents keep long-polling)."
    )
    hpcgate_command: list[str] | None = None
    active_steps: list[dict[str, Any]] = Field(
        default_factory=list,
        description=(
            "The steps to observe, as GET /agent/active-steps returns them, read after this "
            "pull's claim: the agent's next harvest uses them instead of asking again."
        ),
    )
    refinements: list[dict[str, Any]] = Field(
        default_factory=list,
        description=(
            "Running calculations (work items, as in 'calculations') with steps added by "
            "refinement to submit now, each step on its own (engine/added_steps.py); the "
            "calculation's state is not reported."
        ),
    )
    output_requests: list[dict[str, Any]] = Field(
        default_factory=list,
        description=(
            "Raw-output fetches to answer now (list or read a file of a step's directory): "
            "POST /agent/output-requests/{id}/result or PUT .../content."
        ),
    )


class JobIdReport(BaseModel):
    job_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\[\]-]+$")
    recovered: bool = False


class FailureReport(BaseModel):
    message: str = Field(min_length=1, max_length=4000)


class CancelAck(BaseModel):
    job_ids: list[str] = Field(max_length=10000)


class ObservationBatch(BaseModel):
    observations: list[dict[str, Any]] = Field(max_length=5000)


class ObservationResult(BaseModel):
    applied: int
    cancel: list[str]


class SampleBatch(BaseModel):
    samples: list[dict[str, Any]] = Field(max_length=1000)


class SampleResult(BaseModel):
    stored: int
    duplicates: int


class CleanupItem(BaseModel):
    step_id: int
    workdir: str
    expired: bool


class CleanupWork(BaseModel):
    policy: dict[str, Any]
    steps: list[CleanupItem]


class CleanupReportIn(BaseModel):
    step_id: int
    freed_bytes: int = Field(ge=0)
    expired: bool
    dry_run: bool = False
    refused: list[str] = Field(default_factory=list)
