"""The agent's schedule: jittered intervals that spread agents restarted together."""

from __future__ import annotations

import random

import pytest
from pydantic import ValidationError

from hpcgate.agent.config import AgentConfig, Intervals
from hpcgate.agent.loop import next_due


def test_without_jitter_the_interval_is_exact() -> None:
    assert next_due(100.0, 10.0, 0.0) == 110.0


def test_jitter_stays_in_bounds_and_varies() -> None:
    rng = random.Random(7)
    dues = [next_due(0.0, 10.0, 0.1, rng) for _ in range(1000)]
    assert min(dues) >= 9.0
    assert max(dues) <= 11.0
    assert len({round(d, 3) for d in dues}) > 500  # not a constant in disguise


def test_agents_started_together_drift_apart() -> None:
    """200 agents that all poll at t=0: after a few rounds their polls cover the interval."""
    rng = random.Random(11)
    due = [0.0] * 200
    for _ in range(30):  # five minutes of 10 s polls
        due = [next_due(d, 10.0, 0.1, rng) for d in due]
    phases = sorted(d % 10.0 for d in due)
    busiest_second = max(sum(1 for p in phases if s <= p < s + 1) for s in range(10))
    assert busiest_second < 60  # lockstep would put all 200 in one second


def test_jitter_is_validated() -> None:
    assert Intervals().jitter == 0.1
    with pytest.raises(ValidationError):
        AgentConfig(api_url="http://x", api_key="k", cluster="c", intervals={"jitter": 0.9})
