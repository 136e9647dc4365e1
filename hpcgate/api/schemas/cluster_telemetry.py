"""``GET /clusters/{id}/telemetry``: every user's queue per partition and node states."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict


class PartitionLoadOut(BaseModel):
    partition: str
    pending: int
    running: int


class PartitionPointOut(BaseModel):
    """One bucket of one partition: the mean of the samples in it."""

    ts: datetime
    partition: str
    pending: float
    running: float


class ClusterNodeOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    node: str
    state: str
    cpus_total: int
    cpus_allocated: int
    memory_total_mb: int
    partitions: list[str]
    seen_at: datetime


class ClusterTelemetryOut(BaseModel):
    cluster_id: int
    sampled_at: datetime | None  # the latest heartbeat with partition loads (None: none yet)
    partitions: list[PartitionLoadOut]
    bucket_s: int
    series: list[PartitionPointOut]
    nodes: list[ClusterNodeOut]
    node_states: dict[str, int]
