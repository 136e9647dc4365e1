"""Core-hour arithmetic: seff-style efficiencies, estimates, months (issue 18)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hpcgate.domain import usage as u
from hpcgate.domain.states import StepState
from hpcgate.engine.work import StepObservation


def test_cpu_efficiency_is_totalcpu_over_elapsed_times_cpus() -> None:
    # seff: 2 CPUs for 3 s, 2.457 s of CPU used -> 40.95 %
    assert u.cpu_efficiency(2.457, 3, 2) == pytest.approx(0.4095)
    assert u.cpu_efficiency(6.0, 3, 2) == 1.0
    assert u.cpu_efficiency(1.0, 0, 2) is None  # nothing allocated
    assert u.cpu_efficiency(None, 3, 2) is None
    assert u.cpu_efficiency(1.0, None, 2) is None


def test_memory_efficiency_is_maxrss_over_reqmem() -> None:
    assert u.memory_efficiency(51200, 204800) == 0.25
    assert u.memory_efficiency(None, 204800) is None
    assert u.memory_efficiency(100, None) is None
    assert u.memory_efficiency(100, 0) is None


def test_core_seconds_prefer_the_schedulers_own_figure() -> None:
    assert u.core_seconds_of(7.0, 3, 2) == 7.0
    assert u.core_seconds_of(None, 3, 2) == 6.0
    assert u.core_seconds_of(None, None, 2) is None


@given(st.floats(0, 1e7), st.integers(1, 10**6), st.integers(1, 4096))
def test_efficiency_bounds(cpu: float, elapsed: int, cpus: int) -> None:
    eff = u.cpu_efficiency(min(cpu, elapsed * cpus), elapsed, cpus)
    assert eff is not None
    assert 0.0 <= eff <= 1.0


def test_estimate_is_cpus_times_walltime_times_copies() -> None:
    one = u.step_estimate({"tasks": 2, "cpus_per_task": 4, "walltime_s": 1800}, None, 3600)
    sweep = u.step_estimate({"cpus_per_task": 2}, 10, 3600)  # default walltime, 10 tasks
    assert one.core_hours == 4.0
    assert sweep.core_hours == 20.0
    assert u.estimate_core_hours([one, sweep]) == 24.0


@pytest.mark.parametrize(
    ("first", "last", "start", "end"),
    [
        ("2026-12", "2026-12", datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)),
        ("2026-01", "2026-03", datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC)),
    ],
)
def test_month_window(first: str, last: str, start: datetime, end: datetime) -> None:
    assert u.month_window(first, last) == (start, end)


@pytest.mark.parametrize(("first", "last"), [("2026-13", "2026-13"), ("26-1", "26-1"),
                                             ("2026-05", "2026-04")])  # fmt: skip
def test_bad_months(first: str, last: str) -> None:
    with pytest.raises(ValueError, match=r"month|empty"):
        u.month_window(first, last)


def test_month_of() -> None:
    start, end = u.month_of(datetime(2026, 12, 7, 14, 40, tzinfo=UTC))
    assert (start, end) == (datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
    assert u.month_text(start) == "2026-12"


def test_usage_crosses_the_agent_wire() -> None:
    obs = StepObservation(
        3, StepState.FINISHED, "COMPLETED", cpu_time_s=2.5, elapsed_s=3, alloc_cpus=2,
        core_seconds=6.0, req_mem_kb=204800, max_rss_kb=5000,
    )  # fmt: skip
    assert StepObservation.from_dict(obs.to_dict()) == obs
    old_agent = {k: v for k, v in obs.to_dict().items()
                 if k not in ("alloc_cpus", "core_seconds", "req_mem_kb")}  # fmt: skip
    assert StepObservation.from_dict(old_agent).core_seconds is None
