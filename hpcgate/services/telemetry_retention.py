"""Retention of the telemetry series: raw samples for N days, hourly (configurable) rollups
beyond, then nothing.

Heartbeats every 30 s from every node of every cluster, plus per-step samples, grow without
bound; graphs over months only need one point per bucket. Each run moves the raw rows of
complete buckets older than the raw retention into ``heartbeat_rollups`` in ONE statement
(``DELETE ... RETURNING`` feeding the ``INSERT``), so a row is either still raw or already
rolled up, never both nor lost, whatever crashes. A sample that arrives late (an agent's
buffered heartbeats after an outage) merges into its bucket (``ON CONFLICT``), weighted by
the number of samples behind each side.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from hpcgate.db.session import session_scope
from hpcgate.services.cluster_telemetry import delete_partition_samples_before
from hpcgate.settings import TelemetrySettings

GAUGES = ("cpu_load", "cpus_allocated", "cpus_total", "memory_free_mb", "memory_total_mb",
          "queue_depth", "running_jobs")  # fmt: skip
CUMULATIVE = ("cpu_time_s", "max_rss_kb")  # a bucket keeps their maximum, not their mean
ORIGIN = datetime(2000, 1, 1, tzinfo=UTC)  # buckets align on this, whatever the run time
_CHUNK = timedelta(days=1)  # raw rows moved per transaction: bounded, however far behind


@dataclass(frozen=True)
class RetentionRun:
    rolled_up: int  # raw rows moved into rollups
    rollup_rows: int  # rollup rows written or merged
    rollups_deleted: int
    partition_samples_deleted: int = 0  # raw only: no rollup (cluster_telemetry)


def _merge(column: str) -> str:
    """A rolled-up gauge merged with a late one: the mean weighted by the samples behind each."""
    old, new = f"heartbeat_rollups.{column}", f"EXCLUDED.{column}"
    return (
        f"{column} = CASE WHEN {old} IS NULL THEN {new} WHEN {new} IS NULL THEN {old} "
        f"ELSE ({old} * heartbeat_rollups.samples + {new} * EXCLUDED.samples) "
        f"/ (heartbeat_rollups.samples + EXCLUDED.samples) END"
    )


_AGGREGATES = [f"avg({g})" for g in GAUGES] + [f"max({c})" for c in CUMULATIVE]
_ON_CONFLICT = (
    [_merge(g) for g in GAUGES]
    + [f"{c} = greatest(heartbeat_rollups.{c}, EXCLUDED.{c})" for c in CUMULATIVE]
    + ["samples = heartbeat_rollups.samples + EXCLUDED.samples"]
)
# Column names are this module's constants; every value is a bound parameter.
_MOVE = text(
    " ".join(
        [
            "WITH moved AS (DELETE FROM heartbeat_samples WHERE ts >= :lo AND ts < :hi",
            "RETURNING *), written AS (INSERT INTO heartbeat_rollups (cluster_id, step_id,",
            "scope, node, bucket_start, bucket_s, samples,",
            ", ".join(GAUGES + CUMULATIVE),
            ") SELECT cluster_id, step_id, scope, node,",
            "date_bin(make_interval(secs => :bucket), ts, :origin), :bucket, count(*),",
            ", ".join(_AGGREGATES),
            "FROM moved GROUP BY 1, 2, 3, 4, 5 ON CONFLICT (scope, cluster_id,",
            "(coalesce(step_id, 0)), (coalesce(node, '')), bucket_s, bucket_start)",
            "DO UPDATE SET",
            ", ".join(_ON_CONFLICT),
            "RETURNING 1) SELECT (SELECT count(*) FROM moved), (SELECT count(*) FROM written)",
        ]
    )
)
_OLDEST = text("SELECT min(ts) FROM heartbeat_samples WHERE ts < :cutoff")


def bucket_start(ts: datetime, bucket_s: int) -> datetime:
    """The start of the bucket ``ts`` falls in (buckets align on ``ORIGIN``)."""
    seconds = int((ts - ORIGIN).total_seconds()) // bucket_s * bucket_s
    return ORIGIN + timedelta(seconds=seconds)


def raw_cutoff(settings: TelemetrySettings, now: datetime) -> datetime:
    """The start of the oldest bucket still kept raw: every bucket before it is complete."""
    return bucket_start(now - timedelta(days=settings.raw_days), settings.rollup_bucket_s)


def roll_up(
    factory: sessionmaker[Session], settings: TelemetrySettings, now: datetime | None = None
) -> RetentionRun:
    """Move raw rows older than the retention into rollups, then drop expired rollups.

    One transaction per day of raw rows (or per bucket, if buckets are longer), oldest first,
    so a service far behind catches up in bounded steps."""
    now = now or datetime.now(UTC)
    cutoff, bucket = raw_cutoff(settings, now), settings.rollup_bucket_s
    moved = written = 0
    while True:
        with session_scope(factory) as session:
            oldest = session.scalar(_OLDEST, {"cutoff": cutoff})
            if oldest is None:
                break
            first = bucket_start(oldest, bucket)
            hi = max(bucket_start(oldest + _CHUNK, bucket), first + timedelta(seconds=bucket))
            params = {"lo": first, "hi": min(hi, cutoff), "bucket": bucket, "origin": ORIGIN}
            counts = session.execute(_MOVE, params).one()
            moved, written = moved + counts[0], written + counts[1]
    with session_scope(factory) as session:
        partitions = delete_partition_samples_before(session, cutoff)
    return RetentionRun(moved, written, _drop_expired(factory, settings, now), partitions)


def _drop_expired(
    factory: sessionmaker[Session], settings: TelemetrySettings, now: datetime
) -> int:
    if settings.rollup_days <= 0:
        return 0
    expiry = now - timedelta(days=settings.rollup_days)
    with session_scope(factory) as session:
        result = session.execute(
            text("DELETE FROM heartbeat_rollups WHERE bucket_start + "
                 "make_interval(secs => bucket_s) <= :expiry"),
            {"expiry": expiry},
        )  # fmt: skip
        return getattr(result, "rowcount", 0) or 0
