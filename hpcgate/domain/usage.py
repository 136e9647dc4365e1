"""Core-hour arithmetic (pure): efficiencies like Slurm's ``seff``, estimates, months.

* CPU efficiency = CPU time used / (elapsed x allocated CPUs), i.e. ``TotalCPU /
  CPUTimeRAW``; None when the allocation cost nothing or is unknown.
* Memory efficiency = peak resident memory / memory requested (``MaxRSS / ReqMem``).
* A calculation's estimate: for each planned step, CPUs (tasks x cpus_per_task) x
  walltime x (array size or 1).
* Months are UTC calendar months, ``YYYY-MM``; a range ``from..to`` includes both ends.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

_MONTH_RE = re.compile(r"^(?P<y>[0-9]{4})-(?P<m>0[1-9]|1[0-2])$")
SECONDS_PER_HOUR = 3600.0


def ratio(used: float | None, available: float | None) -> float | None:
    """``used / available`` rounded to 4 places; None when either is unknown or 0 available."""
    if used is None or available is None or available <= 0:
        return None
    return round(used / available, 4)


def cpu_efficiency(
    cpu_seconds: float | None, elapsed_s: float | None, alloc_cpus: int | None
) -> float | None:
    """``TotalCPU / (Elapsed x AllocCPUS)``."""
    if elapsed_s is None or alloc_cpus is None:
        return None
    return ratio(cpu_seconds, float(elapsed_s) * alloc_cpus)


def memory_efficiency(max_rss_kb: int | None, req_mem_kb: int | None) -> float | None:
    """``MaxRSS / ReqMem``."""
    return ratio(None if max_rss_kb is None else float(max_rss_kb), req_mem_kb)


def core_seconds_of(
    raw: float | None, elapsed_s: float | None, alloc_cpus: int | None
) -> float | None:
    """The scheduler's own figure (``CPUTimeRAW``), else ``Elapsed x AllocCPUS``."""
    if raw is not None:
        return raw
    if elapsed_s is None or alloc_cpus is None:
        return None
    return float(elapsed_s) * alloc_cpus


def hours(seconds: float | None) -> float:
    return round((seconds or 0.0) / SECONDS_PER_HOUR, 6)


@dataclass(frozen=True)
class StepEstimate:
    cpus: int
    walltime_s: int
    copies: int  # array size, or 1

    @property
    def core_hours(self) -> float:
        return self.cpus * self.walltime_s * self.copies / SECONDS_PER_HOUR


def step_estimate(
    resources: Mapping[str, Any], array_size: int | None, default_walltime_s: int
) -> StepEstimate:
    """One planned step's worst case: its CPUs for its whole walltime, every array task."""
    cpus = int(resources.get("tasks") or 1) * int(resources.get("cpus_per_task") or 1)
    walltime = int(resources.get("walltime_s") or default_walltime_s)
    return StepEstimate(cpus=cpus, walltime_s=walltime, copies=array_size or 1)


def estimate_core_hours(estimates: Iterable[StepEstimate]) -> float:
    return round(sum(e.core_hours for e in estimates), 6)


def parse_month(text: str) -> datetime:
    """``2026-12`` -> the first instant of that UTC month (ValueError otherwise)."""
    m = _MONTH_RE.fullmatch(text.strip())
    if m is None:
        raise ValueError(f"not a month (YYYY-MM): {text!r}")
    return datetime(int(m["y"]), int(m["m"]), 1, tzinfo=UTC)


def next_month(start: datetime) -> datetime:
    return (
        start.replace(year=start.year + 1, month=1)
        if start.month == 12
        else start.replace(month=start.month + 1)
    )


def month_window(first: str, last: str) -> tuple[datetime, datetime]:
    """``[start of first, start of the month after last)``; ValueError if reversed."""
    start, end = parse_month(first), next_month(parse_month(last))
    if end <= start:
        raise ValueError(f"the range {first}..{last} is empty")
    return start, end


def month_of(now: datetime) -> tuple[datetime, datetime]:
    """The UTC calendar month containing ``now``."""
    start = now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return start, next_month(start)


def month_text(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m")
