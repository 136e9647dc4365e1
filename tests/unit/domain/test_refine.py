"""Adaptive bias refinement's decision (hpcgate.domain.refine): which biases to add.

Property tests (hypothesis) on random I-V samples; the checks below recompute what
"exceeds" means from the points themselves, independently of the module's helpers.
"""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from hpcgate.domain.ladder import build_transiesta_plan
from hpcgate.domain.plan import PlanError
from hpcgate.domain.refine import (
    MAX_REFINE_POINTS,
    RefineConfig,
    nearest_converged,
    parse_refine,
    refine_biases,
)

_bias = st.integers(min_value=-5000, max_value=5000).map(lambda n: n / 1000)  # 1 mV grid
_current = st.floats(min_value=-1e-4, max_value=1e-4, allow_nan=False)
_points = st.dictionaries(_bias, _current, min_size=0, max_size=12).map(lambda d: sorted(d.items()))
_config = st.builds(
    RefineConfig,
    max_points=st.integers(min_value=1, max_value=8),
    max_delta_current=st.floats(min_value=1e-9, max_value=5e-5),
    min_step_v=st.floats(min_value=1e-3, max_value=0.5),
)


def _exceeds(points: list[tuple[float, float]], i: int, t: float) -> bool:
    """Interval i (between points i and i+1) changes faster than t: its current step, or
    the distance of a neighbouring point's current from the chord of its neighbours."""
    ia, ib = points[i][1], points[i + 1][1]
    if abs(ib - ia) > t:
        return True
    for j in (i, i + 1):  # the interval's two ends, where dI/dV may bend
        if 0 < j < len(points) - 1:
            (u, iu), (v, iv), (w, iw) = points[j - 1], points[j], points[j + 1]
            if abs(iv - (iu + (v - u) / (w - u) * (iw - iu))) > t:
                return True
    return False


def _interval_of(points: list[tuple[float, float]], bias: float) -> int:
    (i,) = [k for k in range(len(points) - 1) if points[k][0] < bias < points[k + 1][0]]
    return i


@settings(max_examples=300, deadline=None)
@given(_points, _config, st.integers(min_value=0, max_value=10))
def test_never_exceeds_the_budget(
    points: list[tuple[float, float]], config: RefineConfig, added: int
) -> None:
    new = refine_biases(points, config, added=added)
    assert len(new) <= max(0, config.max_points - added)


@settings(max_examples=300, deadline=None)
@given(_points, _config)
def test_midpoints_only_of_intervals_that_exceed_and_are_wide_enough(
    points: list[tuple[float, float]], config: RefineConfig
) -> None:
    new = refine_biases(points, config)
    assert len(set(new)) == len(new)
    for bias in new:
        i = _interval_of(points, bias)
        a, b = points[i][0], points[i + 1][0]
        assert bias == pytest.approx((a + b) / 2, abs=1e-6)  # the interval's midpoint
        assert _exceeds(points, i, config.max_delta_current)
        # Never inside an interval below min_step_v: both halves are >= min_step_v.
        assert b - a >= config.min_step_v
        assert min(bias - a, b - bias) >= config.min_step_v - 1e-6
    assert len({_interval_of(points, b) for b in new}) == len(new)  # one per interval


@settings(max_examples=300, deadline=None)
@given(_points, _config)
def test_nothing_when_every_delta_is_under_the_threshold(
    points: list[tuple[float, float]], config: RefineConfig
) -> None:
    t = config.max_delta_current
    flat = [(v, (i % 2) * t * 0.999) for i, (v, _) in enumerate(points)]  # zigzag, |dI| < t
    assert refine_biases(flat, config) == []
    if all(abs(b[1] - a[1]) <= t for a, b in pairwise(points)):
        assert refine_biases(points, config) == []


@settings(max_examples=200, deadline=None)
@given(_points, _config)
@example(
    [(0.0, 3.608078000040627e-05), (0.002, 0.0)],
    RefineConfig(max_points=1, max_delta_current=1.1359049498140457e-05, min_step_v=0.001),
)
def test_every_wide_exceeding_interval_is_bisected_when_the_budget_allows(
    points: list[tuple[float, float]], config: RefineConfig
) -> None:
    def fast_and_half_at_least(width: float) -> set[int]:
        return {
            i
            for i in range(len(points) - 1)
            if _exceeds(points, i, config.max_delta_current)
            and (points[i + 1][0] - points[i][0]) / 2 >= width
        }

    # A half within 1 µV of min_step_v may go either way (float slack): e.g. 2 mV apart
    # with min_step_v 1 mV is bisected, as the slack in refine_biases intends.
    must = fast_and_half_at_least(config.min_step_v + 1e-6)
    may = fast_and_half_at_least(config.min_step_v - 1e-6)
    new = refine_biases(points, config)
    assert min(len(must), config.max_points) <= len(new) <= min(len(may), config.max_points)
    if len(may) <= config.max_points:
        assert must <= {_interval_of(points, b) for b in new} <= may


@settings(max_examples=200, deadline=None)
@given(_points, _config, st.lists(_bias, max_size=4))
def test_never_around_or_onto_a_pending_point(
    points: list[tuple[float, float]], config: RefineConfig, others: list[float]
) -> None:
    converged = {v for v, _ in points}
    others = [o for o in others if o not in converged]
    new = refine_biases(points, config, others=others)
    for bias in new:
        i = _interval_of(points, bias)
        assert not any(points[i][0] < o < points[i + 1][0] for o in others)
        assert bias not in others


def test_the_largest_excess_goes_first_when_the_budget_is_short() -> None:
    points = [(0.0, 0.0), (0.1, 5e-6), (0.2, 6e-6), (0.4, 6.5e-6)]
    config = RefineConfig(max_points=1, max_delta_current=1e-6, min_step_v=0.01)
    # (0, 0.1) jumps 5e-6; (0.1, 0.2) bends by ~2e-6 at 0.1; (0.2, 0.4) is flat.
    assert refine_biases(points, config) == [0.05]
    assert refine_biases(points, config, added=1) == []
    assert refine_biases(points, RefineConfig(2, 1e-6, 0.01)) == [0.05, 0.15]


def test_a_bend_in_dI_dV_refines_the_slow_side_too() -> None:
    # (0.1, 0.2) steps by only 0.5e-6 A, but the slope drops at 0.1 V: I(0.1) is 1.75e-6 A
    # above the chord from 0 to 0.2 V, so both sides of 0.1 V are bisected.
    points = [(0.0, 0.0), (0.1, 4e-6), (0.2, 4.5e-6), (0.3, 5e-6)]
    config = RefineConfig(max_points=10, max_delta_current=1.5e-6, min_step_v=0.01)
    assert refine_biases(points, config) == [0.05, 0.15]
    # Without the jump nothing bends: a straight line is never refined.
    line = [(v, v * 1e-5) for v in (0.0, 0.1, 0.2, 0.3)]
    assert refine_biases(line, RefineConfig(10, 1.5e-6, 0.01)) == []


def test_min_step_stops_bisection() -> None:
    points = [(0.0, 0.0), (0.1, 1e-5)]
    assert refine_biases(points, RefineConfig(5, 1e-6, 0.05)) == [0.05]
    assert refine_biases(points, RefineConfig(5, 1e-6, 0.0500001)) == []


def test_nearest_converged_prefers_the_side_of_zero_on_a_tie() -> None:
    assert nearest_converged(0.1, [0.0, 0.2]) == 0.0
    assert nearest_converged(-0.15, [-0.1, -0.2, 0.0]) == -0.1
    assert nearest_converged(0.16, [0.1, 0.2]) == 0.2


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([1], "'refine' must be an object"),
        ({"max_points": 2, "max_delta_current": 1e-6}, "'refine' needs min_step_v"),
        ({"max_points": 0, "max_delta_current": 1e-6, "min_step_v": 0.01}, "positive integer"),
        ({"max_points": 1.5, "max_delta_current": 1e-6, "min_step_v": 0.01}, "positive integer"),
        ({"max_points": True, "max_delta_current": 1e-6, "min_step_v": 0.01}, "positive integer"),
        (
            {"max_points": MAX_REFINE_POINTS + 1, "max_delta_current": 1e-6, "min_step_v": 0.01},
            f"at most {MAX_REFINE_POINTS}",
        ),
        ({"max_points": 2, "max_delta_current": -1, "min_step_v": 0.01}, "max_delta_current"),
        ({"max_points": 2, "max_delta_current": "1e-6", "min_step_v": 0.01}, "must be a number"),
        ({"max_points": 2, "max_delta_current": 1e-6, "min_step_v": 0}, "min_step_v"),
        ({"max_points": 2, "max_delta_current": 1e-6, "min_step_v": 1e-9}, "at least 1e-6 V"),
        (
            {"max_points": 2, "max_delta_current": 1e-6, "min_step_v": 0.1, "x": 1},
            "unknown key(s) in 'refine': x",
        ),
    ],
)
def test_bad_configurations_are_refused_with_the_key(raw: object, message: str) -> None:
    with pytest.raises(PlanError) as info:
        parse_refine(raw)
    assert message in str(info.value)


def test_a_ladder_accepts_refine_and_refuses_it_without_tbtrans() -> None:
    config = {
        "kind": "transiesta",
        "device": "device.fdf",
        "electrodes": {"Left": "elec.fdf", "Right": "elec.fdf"},
        "biases_v": [0.0, 0.2],
        "refine": {"max_points": 3, "max_delta_current": 4e-6, "min_step_v": 0.04},
    }
    assert len(build_transiesta_plan(config).steps) == 5
    with pytest.raises(PlanError, match="'refine' needs the currents"):
        build_transiesta_plan({**config, "tbtrans": False})
    with pytest.raises(PlanError, match=r"refine\.max_points"):
        build_transiesta_plan(
            {**config, "refine": {"max_points": -1, "max_delta_current": 1, "min_step_v": 1}}
        )
