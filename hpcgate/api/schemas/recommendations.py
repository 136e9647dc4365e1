"""The walltime/memory recommendation's request and answer (``docs/recommender.md``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class RecommendationIn(BaseModel):
    """The preview's body, or the subset the recommendation reads: the other fields of a
    calculation (name, description, analyses, ...) are accepted and ignored, so the portal
    sends the very form it previews."""

    model_config = ConfigDict(extra="ignore")

    cluster_id: int = Field(ge=1)
    logical_queue: str = Field(min_length=1, max_length=64)
    code: Literal["siesta", "qe", "generic"] = "generic"
    configuration: dict[str, Any] = Field(
        description="as for creation: inputs, main_input, parameters, variants, resources, ..."
    )


class RecommendationEvidence(BaseModel):
    source: Literal["model", "queue_default"]
    reason: str
    similar_runs: int = Field(description="same code, cluster and partition, features within 1.5x")
    history_runs: int = Field(description="finished runs of the code the model learnt from")
    heldout_runs: int = Field(description="the latest runs held out to measure the error")
    heldout_mae_walltime_s: float | None
    coverage_p90_walltime: float | None = Field(description="held-out runs within their p90")
    heldout_mae_memory_mb: float | None
    coverage_p90_memory: float | None
    capped_by_queue: bool


class RecommendationOut(BaseModel):
    walltime_s: int = Field(description="the proposal: p90 x safety margin, rounded up, capped")
    memory_mb: int | None = Field(description="per node; None: the partition's default")
    p50_walltime_s: int | None
    p90_walltime_s: int | None
    p50_memory_mb: int | None = Field(description="peak memory (MaxRSS) of one task")
    p90_memory_mb: int | None
    queue_max_walltime_s: int | None
    evidence: RecommendationEvidence
