"""Core-hour usage, quotas and approval context (docs/accounting.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field


class UsageRowOut(BaseModel):
    key: str
    label: str
    core_hours: float
    cpu_hours: float
    steps: int
    calculations: int
    cpu_efficiency: float | None = Field(description="CPU time used / core time allocated")


class UsageReport(BaseModel):
    from_month: str
    to_month: str
    group_by: Literal["user", "project", "cluster", "calculation"]
    all_users: bool = Field(description="False: only the caller's own usage is counted")
    rows: list[UsageRowOut]
    total_core_hours: float


class StepUsageOut(BaseModel):
    step_id: int
    index: int
    label: str
    attempt: int
    state: str
    native_state: str | None
    alloc_cpus: int | None
    elapsed_s: int | None
    core_seconds: float
    cpu_seconds: float | None
    max_rss_kb: int | None
    req_mem_kb: int | None
    cpu_efficiency: float | None = Field(description="TotalCPU / (Elapsed x AllocCPUS)")
    memory_efficiency: float | None = Field(description="MaxRSS / ReqMem")
    recorded_at: datetime


class CalculationUsage(BaseModel):
    calculation_id: int
    core_hours: float
    cpu_hours: float
    cpu_efficiency: float | None
    steps: list[StepUsageOut]


class QuotaIn(BaseModel):
    soft_core_hours: float | None = Field(default=None, ge=0, le=1e9)
    hard_core_hours: float | None = Field(default=None, ge=0, le=1e9)


class QuotaOut(BaseModel):
    cluster_id: int
    cluster_name: str
    user_id: int
    used_core_hours: float = Field(description="this UTC month, on this cluster")
    soft_core_hours: float | None
    hard_core_hours: float | None
    soft_reached: bool
    hard_reached: bool


class ApprovalContextOut(BaseModel):
    calculation_id: int
    name: str
    owner_id: int
    owner_email: str
    cluster_id: int
    cluster_name: str
    state: str
    created_at: datetime
    estimated_core_hours: float = Field(description="planned CPUs x walltime x array size")
    walltime_assumed: bool = Field(description="a step had no walltime and the queue no limit")
    month: str
    owner_month_core_hours_cluster: float
    owner_month_core_hours_total: float
    soft_core_hours: float | None
    hard_core_hours: float | None
