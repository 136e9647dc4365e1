"""Error metrics of predictions against DFT values, overall and per period. Pure.

``error = dft - predicted`` (the sign convention of ``services/predictions.py``);
MAE = mean |error|, RMSE = sqrt(mean error^2), bias = mean error. Periods are calendar
buckets of the prediction's time in UTC: a day, an ISO week (starting Monday) or a month.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum


class Period(StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"


@dataclass(frozen=True)
class Metrics:
    n: int
    mae: float | None  # None when n == 0
    rmse: float | None
    bias: float | None


@dataclass(frozen=True)
class PeriodMetrics:
    start: date
    metrics: Metrics


def metrics(errors: Iterable[float]) -> Metrics:
    """MAE, RMSE and bias of the errors (``math.fsum``: the order does not matter)."""
    values = list(errors)
    n = len(values)
    if n == 0:
        return Metrics(0, None, None, None)
    mae = math.fsum(abs(e) for e in values) / n
    rmse = math.sqrt(math.fsum(e * e for e in values) / n)
    # MAE <= RMSE holds exactly; rounding of the two sums must not break it.
    return Metrics(n, mae, max(rmse, mae), math.fsum(values) / n)


def period_start(at: datetime, period: Period) -> date:
    """The first day of the period ``at`` (aware, or naive UTC) falls in, in UTC."""
    day = (at.astimezone(UTC) if at.tzinfo else at).date()
    if period is Period.DAY:
        return day
    if period is Period.WEEK:
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


def per_period(points: Sequence[tuple[datetime, float]], period: Period) -> list[PeriodMetrics]:
    """Metrics of ``(when, error)`` points per period, oldest first; empty periods absent."""
    buckets: dict[date, list[float]] = {}
    for at, error in points:
        buckets.setdefault(period_start(at, period), []).append(error)
    return [PeriodMetrics(start, metrics(buckets[start])) for start in sorted(buckets)]


def pick_unit(
    instance_index: int, instances: int, units: int, last_judged: int | None
) -> int | None:
    """Which step (or array task) of a calculation a predicted instance is about, as an index
    into its units in step order: one to one when the answer had as many instances as the
    calculation has units, otherwise the last judged unit (the calculation's final result),
    like ``services/predictions.compare_prediction``. None: nothing to compare with."""
    if instances == units and 0 <= instance_index < units:
        return instance_index
    return last_judged
