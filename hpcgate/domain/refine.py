"""Adaptive bias refinement of a TranSIESTA ladder — which biases to add, pure.

A ladder with ``refine: {max_points, max_delta_current, min_step_v}`` gets extra points
where its I-V curve changes fast. Given the converged points (bias, current), the biases
already in the ladder and what was already added, :func:`refine_biases` answers with the
new biases, each the midpoint of an interval between two *neighbouring converged* points:

* an interval ``[a, b]`` **exceeds** when ``|I(b) - I(a)| > max_delta_current``, or when
  the differential conductance changes fast at one of its ends: for three neighbouring
  points ``u < v < w`` the current at ``v`` is more than ``max_delta_current`` away from
  the chord ``u -> w`` (a change of dI/dV across ``v``, measured in amperes as the error a
  linear interpolation would make); both intervals around ``v`` then exceed;
* an interval is bisected only when both halves stay at least ``min_step_v`` wide, and
  only when no other ladder bias (pending or failed) lies inside it — a point still to
  come refines that interval itself when it arrives;
* at most ``max_points`` points are ever added in total: the intervals that exceed most
  (largest excess over the threshold, then lowest bias) go first.

Refinement therefore stops when no interval exceeds the threshold, when the budget is
spent, or when every interval that exceeds is narrower than ``2 * min_step_v``. Zero
volts is always a ladder point, so an interval never straddles 0 V.

The nearest converged point (:func:`nearest_converged`) is the point a new bias starts
its density from (its ``.TSDE``); on a tie the one closer to 0 V wins, like the ladder's
branches, which climb away from 0 V.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from hpcgate.domain.plan import PlanError

__all__ = [
    "MAX_REFINE_POINTS",
    "RefineConfig",
    "exceeding_intervals",
    "nearest_converged",
    "parse_refine",
    "refine_biases",
]

#: Upper bound of ``max_points`` (each added point is two jobs: device and TBtrans).
MAX_REFINE_POINTS = 200
#: Biases are kept to 1 µV (``hpcgate.domain.ladder.BIAS_DECIMALS``).
_DECIMALS = 6
_KEYS = ("max_points", "max_delta_current", "min_step_v")
#: Float slack when comparing a half interval with ``min_step_v`` (0.15 - 0.1 < 0.05).
_SLACK_V = 1e-9


@dataclass(frozen=True)
class RefineConfig:
    max_points: int  # points added in total, at most
    max_delta_current: float  # amperes
    min_step_v: float  # volts: no interval narrower than this is created


def _number(raw: Mapping[str, Any], key: str) -> float:
    value = raw.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PlanError(f"'refine.{key}' must be a number, not {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise PlanError(f"'refine.{key}' must be a positive finite number, not {value!r}")
    return float(value)


def parse_refine(raw: Any) -> RefineConfig | None:
    """The ``refine`` object of a ladder's configuration, or None when absent; a
    ``PlanError`` (a 422) naming the key otherwise."""
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise PlanError(
            '\'refine\' must be an object: {"max_points": 4, "max_delta_current": 1e-6, '
            '"min_step_v": 0.01}'
        )
    unknown = sorted(set(map(str, raw)) - set(_KEYS))
    if unknown:
        raise PlanError(
            f"unknown key(s) in 'refine': {', '.join(unknown)} (known: {', '.join(_KEYS)})"
        )
    missing = [k for k in _KEYS if k not in raw]
    if missing:
        raise PlanError(f"'refine' needs {', '.join(missing)}")
    points = raw["max_points"]
    if isinstance(points, bool) or not isinstance(points, int) or points < 1:
        raise PlanError(f"'refine.max_points' must be a positive integer, not {points!r}")
    if points > MAX_REFINE_POINTS:
        raise PlanError(f"'refine.max_points' is at most {MAX_REFINE_POINTS}, not {points}")
    step = _number(raw, "min_step_v")
    if step < 10.0**-_DECIMALS:
        raise PlanError("'refine.min_step_v' must be at least 1e-6 V (biases are kept to 1 µV)")
    return RefineConfig(points, _number(raw, "max_delta_current"), step)


Point = tuple[float, float]  # (bias in V, current in A)


def _chord_deviation(u: Point, v: Point, w: Point) -> float:
    """How far I(v) is from the straight line between u and w (amperes)."""
    t = (v[0] - u[0]) / (w[0] - u[0])
    return abs(v[1] - (u[1] + t * (w[1] - u[1])))


def exceeding_intervals(
    points: Sequence[tuple[float, float]], max_delta_current: float
) -> dict[int, float]:
    """{i: excess} for each interval ``[points[i], points[i+1]]`` (points sorted by bias)
    whose current step or adjacent dI/dV change exceeds ``max_delta_current``; the excess
    is the largest of those measures minus the threshold (> 0)."""
    measure = [abs(b[1] - a[1]) for a, b in pairwise(points)]
    for j in range(1, len(points) - 1):
        bend = _chord_deviation(points[j - 1], points[j], points[j + 1])
        measure[j - 1] = max(measure[j - 1], bend)
        measure[j] = max(measure[j], bend)
    return {i: m - max_delta_current for i, m in enumerate(measure) if m > max_delta_current}


def refine_biases(
    points: Iterable[tuple[float, float]],
    config: RefineConfig,
    *,
    added: int = 0,
    others: Iterable[float] = (),
) -> list[float]:
    """The biases to add now (sorted), given the converged ``points`` (bias, current),
    ``added`` points already added by earlier decisions, and the ladder's ``others``
    biases (pending or failed points; never duplicated, never bisected around)."""
    budget = config.max_points - added
    ordered = sorted({round(b, _DECIMALS) + 0.0: c for b, c in points}.items())
    if budget <= 0 or len(ordered) < 2:
        return []
    blocked = sorted(round(b, _DECIMALS) + 0.0 for b in others)
    candidates: list[tuple[float, float]] = []  # (-excess, midpoint)
    for i, excess in exceeding_intervals(ordered, config.max_delta_current).items():
        a, b = ordered[i][0], ordered[i + 1][0]
        mid = round((a + b) / 2, _DECIMALS) + 0.0
        if min(mid - a, b - mid) < config.min_step_v - _SLACK_V or not a < mid < b:
            continue
        if any(a < x < b for x in blocked):
            continue
        candidates.append((-excess, mid))
    return sorted(mid for _, mid in sorted(candidates)[:budget])


def nearest_converged(bias: float, converged: Iterable[float]) -> float:
    """The converged bias a new point starts from: the nearest, the one closer to 0 V on a
    tie (then the lower)."""
    return min(converged, key=lambda v: (abs(v - bias), abs(v), v))
