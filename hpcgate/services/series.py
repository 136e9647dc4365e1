"""Resource series from heartbeat samples: a step's CPU time and memory, a cluster's load.

Downsampled in PostgreSQL with ``date_bin``: a week of 30 s heartbeats becomes ``points``
rows, so a chart never pulls the raw samples. Samples past the raw retention are read from
their rollups.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from hpcgate.db.models import Cluster
from hpcgate.db.models.telemetry import CLUSTER_METRICS
from hpcgate.errors import InvalidInput, NotFound
from hpcgate.services.calculation_queries import get_step

STEP_METRICS = ("cpu_time_s", "max_rss_kb")
_CUMULATIVE = frozenset(STEP_METRICS)  # a bucket's value is its maximum, not its mean
_MAX_WINDOW = timedelta(days=400)


@dataclass(frozen=True)
class SeriesPoint:
    ts: datetime
    values: dict[str, float | None]


@dataclass(frozen=True)
class Series:
    bucket_s: int
    points: list[SeriesPoint]


def step_samples(
    session: Session, step_id: int, since: datetime | None, until: datetime | None, points: int
) -> Series:
    """A step's CPU time and peak memory; the window starts just before its submission."""
    step = get_step(session, step_id)
    start = since or (step.submitted_at or step.created_at) - timedelta(minutes=1)
    lo, hi = window(start, until, default_hours=24)
    return _downsample(
        session, "step_id = :sid AND scope = 'step'", {"sid": step_id}, STEP_METRICS, lo, hi, points
    )


def cluster_heartbeats(
    session: Session,
    cluster_id: int,
    since: datetime | None,
    until: datetime | None,
    points: int,
) -> Series:
    """A cluster's load over a window (the last 24 hours unless given)."""
    if session.get(Cluster, cluster_id) is None:
        raise NotFound(f"cluster {cluster_id} does not exist")
    lo, hi = window(since, until, default_hours=24)
    return _downsample(
        session,
        "cluster_id = :cid AND scope = 'cluster'",
        {"cid": cluster_id},
        CLUSTER_METRICS,
        lo,
        hi,
        points,
    )


def window(
    since: datetime | None, until: datetime | None, *, default_hours: float
) -> tuple[datetime, datetime]:
    """The ``[since, until)`` asked for: until defaults to now, since to ``default_hours``
    before until; empty or over-long windows are refused."""
    until = until or datetime.now(UTC)
    since = since or until - timedelta(hours=default_hours)
    if since >= until:
        raise InvalidInput("'since' must be before 'until'")
    if until - since > _MAX_WINDOW:
        raise InvalidInput("the window is limited to 400 days")
    return since, until


def _downsample(
    session: Session,
    where_sql: str,
    params: dict[str, Any],
    metrics: tuple[str, ...],
    since: datetime,
    until: datetime,
    points: int,
) -> Series:
    """At most ``points`` buckets of equal width over the window (``where_sql`` is ours)."""
    span = max((until - since).total_seconds(), 1.0)
    bucket = max(1, int(span // points) + (1 if span % points else 0))
    # Raw samples weigh 1, a rollup (services/telemetry_retention.py) the samples behind it,
    # so a window across the raw retention reads the same as before the rollup.
    aggs = ", ".join(
        f"max({m}) AS {m}"
        if m in _CUMULATIVE
        else f"sum({m}::float8 * w) / nullif(sum(CASE WHEN {m} IS NOT NULL THEN w END), 0)"
        for m in metrics
    )
    columns = ", ".join(metrics)
    sql = text(
        f"SELECT date_bin(make_interval(secs => :bucket), ts, :since) AS b, {aggs} "  # noqa: S608
        f"FROM (SELECT ts, 1 AS w, {columns} FROM heartbeat_samples "
        f"WHERE {where_sql} AND ts >= :since AND ts < :until "
        f"UNION ALL SELECT bucket_start, samples, {columns} FROM heartbeat_rollups "
        f"WHERE {where_sql} AND bucket_start >= :since AND bucket_start < :until) AS pts "
        "GROUP BY b ORDER BY b"
    )
    rows = session.execute(sql, {**params, "bucket": bucket, "since": since, "until": until})
    out = [
        SeriesPoint(
            ts=row[0],
            values={
                m: (float(v) if v is not None else None)
                for m, v in zip(metrics, row[1:], strict=True)
            },
        )
        for row in rows
    ]
    return Series(bucket_s=bucket, points=out)
