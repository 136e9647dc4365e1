"""Stall detection's pure part (issue 17): the window, the verdict, the policy's checks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from hpcgate.domain.states import StepState
from hpcgate.engine.work import StepObservation
from hpcgate.errors import InvalidInput
from hpcgate.services.stall import (
    StallPolicy,
    Window,
    advance,
    check_stall_config,
    policy_of,
    stall_reason,
)
from hpcgate.settings import Settings

T0 = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
POLICY = StallPolicy(after_s=60, min_cpu_ratio=0.05, action="notify")


def obs(
    out: int | None = None, markers: int | None = None, cpu: float | None = None
) -> StepObservation:
    return StepObservation(
        1, StepState.RUNNING, output_bytes=out, progress_markers=markers, cpu_time_s=cpu
    )


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def run(
    samples: list[tuple[float, StepObservation]], policy: StallPolicy = POLICY
) -> list[str | None]:
    w = Window(None, 0, T0, None, None)
    verdicts = []
    for t, o in samples:
        w = advance(w, o, at(t), policy)
        verdicts.append(stall_reason(w, at(t), policy))
    return verdicts


def test_quiet_output_and_idle_cpu_stall_after_the_window() -> None:
    verdicts = run([(0, obs(100, 1, 0.0)), (30, obs(100, 1, 0.1)), (61, obs(100, 1, 0.1))])
    assert verdicts[:2] == [None, None]
    assert verdicts[2] is not None
    assert "no new output for 61 s" in verdicts[2]
    assert "1 SCF/geometry markers" in verdicts[2]


def test_printing_and_busy_never_stalls() -> None:
    samples = [(t, obs(100 + t, t // 10, t * 0.9)) for t in range(0, 600, 5)]
    assert set(run(samples)) == {None}


def test_busy_cpu_without_output_still_stalls_on_output() -> None:
    samples = [(t, obs(100, 3, t * 1.0)) for t in range(0, 70, 5)]
    verdicts = run(samples)
    assert verdicts[-1] is not None
    assert verdicts[-1].startswith("no new output")


def test_printing_with_idle_cpu_stalls_on_cpu() -> None:
    samples = [(t, obs(100 + t, 0, 1.0)) for t in range(0, 70, 5)]
    verdicts = run(samples)
    assert verdicts[-1] is not None
    assert verdicts[-1].startswith("CPU use below 5%")
    off = StallPolicy(after_s=60, min_cpu_ratio=0.0, action="notify")
    assert set(run(samples, off)) == {None}


def test_nothing_measured_is_never_a_stall() -> None:
    assert set(run([(t, obs()) for t in range(0, 300, 10)])) == {None}


def test_a_marker_alone_counts_as_progress() -> None:
    samples = [(t, obs(100, t // 20, None)) for t in range(0, 200, 10)]
    assert set(run(samples)) == {None}


def test_policy_override_and_checks() -> None:
    settings = Settings(env="test", auth={"secret_key": "x" * 32})
    assert policy_of({}, settings) == StallPolicy(1800.0, 0.02, "notify")
    custom = policy_of({"stall": {"after_s": 120, "action": "cancel_retry"}}, settings)
    assert custom == StallPolicy(120.0, 0.02, "cancel_retry")
    check_stall_config({"stall": {"after_s": 10, "min_cpu_ratio": 0}})
    for bad in (
        {"after_s": 0},
        {"action": "explode"},
        {"after_s": True},
        {"x": 1},
        [1],
        {"min_cpu_ratio": 2},
    ):
        with pytest.raises(InvalidInput):
            check_stall_config({"stall": bad})
