"""Cluster-wide telemetry (issue 18): every user's queue per partition, and node states.

Written with each heartbeat (``cluster_health.record_cluster_sample``: the worker's cluster
ticks and the agents' ``POST /agent/heartbeats`` both land there): one ``partition_samples``
row per partition, and ``cluster_nodes`` upserted with each node's latest state. Read by
``GET /clusters/{id}/telemetry``, the Prometheus gauges (``metrics_state``) and cut by the
telemetry retention (raw partition samples follow ``telemetry.raw_days``).

What an agent sends is checked here (types, bounds), so a broken or hostile agent cannot
store more than :data:`MAX_PARTITIONS` rows per heartbeat or strings longer than a column.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from hpcgate.db.base import table_of
from hpcgate.db.models import Cluster, ClusterNode, PartitionSample
from hpcgate.errors import NotFound
from hpcgate.services.series import window

MAX_PARTITIONS = 1000
MAX_NODES = 20000
_ps, _cn = table_of(PartitionSample), table_of(ClusterNode)
_INSERT_PARTITIONS = insert(_ps)
_UPSERT_NODE = insert(_cn)
_UPSERT_NODE = _UPSERT_NODE.on_conflict_do_update(
    index_elements=["cluster_id", "node"],
    set_={
        c: _UPSERT_NODE.excluded[c]
        for c in (
            "state",
            "cpus_total",
            "cpus_allocated",
            "memory_total_mb",
            "partitions",
            "seen_at",
        )
    },
    # a late (buffered) heartbeat never overwrites a newer state
    where=_UPSERT_NODE.excluded.seen_at >= _cn.c.seen_at,
)
# Nodes a heartbeat no longer lists are gone from the cluster. Safe in any order: a late
# heartbeat only removes rows older than itself, which the newest one did not list either.
_DROP_GONE = delete(_cn).where(
    _cn.c.cluster_id == bindparam("cluster_id"), _cn.c.seen_at < bindparam("ts")
)


def _count(value: Any) -> int:
    number = int(value)
    if isinstance(value, bool) or not 0 <= number < 10**9:
        raise ValueError(f"bad job count {value!r}")
    return number


def partition_payload(raw: Any) -> tuple[dict[str, Any], ...]:
    """An agent's ``partitions`` list, checked (raises ValueError/TypeError on garbage).
    Absent (an agent older than issue 18) is an empty tuple."""
    if raw is None:
        return ()
    if not isinstance(raw, list | tuple) or len(raw) > MAX_PARTITIONS:
        raise ValueError("partitions must be a list of at most 1000 entries")
    out = []
    for item in raw:
        if not isinstance(item, Mapping) or not isinstance(item.get("partition"), str):
            raise ValueError(f"bad partition entry {item!r:.200}")
        name = item["partition"].strip()[:128]
        if name:
            out.append(
                {
                    "partition": name,
                    "pending": _count(item.get("pending", 0)),
                    "running": _count(item.get("running", 0)),
                }
            )
    return tuple(out)


def record_cluster_telemetry(
    s: Session,
    cluster_id: int,
    ts: datetime,
    partitions: Iterable[Mapping[str, Any]],
    nodes: Iterable[Mapping[str, Any]],
) -> None:
    """Store one heartbeat's partition loads and node states (the caller de-duplicated it)."""
    conn = s.connection()
    rows = [
        {
            "ts": ts,
            "cluster_id": cluster_id,
            "partition": str(p["partition"])[:128],
            "pending": int(p["pending"]),
            "running": int(p["running"]),
        }
        for p in list(partitions)[:MAX_PARTITIONS]
    ]
    if rows:
        conn.execute(_INSERT_PARTITIONS, rows)
    node_rows = _node_rows(cluster_id, ts, nodes)
    if node_rows:
        conn.execute(_UPSERT_NODE, node_rows)
        conn.execute(_DROP_GONE, {"cluster_id": cluster_id, "ts": ts})


def _node_rows(
    cluster_id: int, ts: datetime, nodes: Iterable[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for node in list(nodes)[:MAX_NODES]:
        name = str(node.get("name") or "")[:200]
        if not name:
            continue
        parts = node.get("partitions") or ()
        rows[name] = {
            "cluster_id": cluster_id,
            "node": name,
            "state": str(node.get("state") or "unknown")[:64],
            "cpus_total": _int(node.get("cpus_total")),
            "cpus_allocated": _int(node.get("cpus_allocated")),
            "memory_total_mb": _int(node.get("memory_total_mb")),
            "partitions": [str(p)[:128] for p in parts][:64]
            if isinstance(parts, list | tuple)
            else [],
            "seen_at": ts,
        }
    return list(rows.values())


def _int(value: Any) -> int:
    try:
        return max(0, min(int(value or 0), 2**62))
    except (TypeError, ValueError):
        return 0


def delete_partition_samples_before(s: Session, cutoff: datetime) -> int:
    """The retention of the raw partition samples (``telemetry.raw_days``)."""
    result = s.execute(delete(PartitionSample).where(PartitionSample.ts < cutoff))
    return int(getattr(result, "rowcount", 0) or 0)


# ------------------------------------------------------------------ reading
@dataclass(frozen=True)
class ClusterTelemetry:
    cluster_id: int
    sampled_at: datetime | None
    partitions: list[dict[str, Any]]
    bucket_s: int
    series: list[dict[str, Any]]
    nodes: list[ClusterNode]
    node_states: dict[str, int]


_SERIES = text(
    "SELECT date_bin(make_interval(secs => :bucket), ts, :origin) AS b, partition,"
    " avg(pending) AS pending, avg(running) AS running FROM partition_samples"
    " WHERE cluster_id = :cid AND ts >= :lo AND ts < :hi"
    " GROUP BY b, partition ORDER BY b, partition"
)


def cluster_telemetry(
    s: Session, cluster_id: int, since: datetime | None, until: datetime | None, points: int
) -> ClusterTelemetry:
    """The latest partition loads, their series over the window (the last 24 h unless given,
    at most ``points`` buckets), and every node's latest state."""
    if s.get(Cluster, cluster_id) is None:
        raise NotFound(f"cluster {cluster_id} does not exist")
    lo, hi = window(since, until, default_hours=24)
    latest = s.scalar(
        select(func.max(PartitionSample.ts)).where(PartitionSample.cluster_id == cluster_id)
    )
    now_rows = (
        []
        if latest is None
        else s.execute(
            select(PartitionSample.partition, PartitionSample.pending, PartitionSample.running)
            .where(PartitionSample.cluster_id == cluster_id, PartitionSample.ts == latest)
            .order_by(PartitionSample.partition)
        ).all()
    )
    span = max((hi - lo).total_seconds(), 1.0)
    bucket = max(1, int(span // points) + (1 if span % points else 0))
    rows = s.execute(
        _SERIES, {"bucket": bucket, "origin": lo, "cid": cluster_id, "lo": lo, "hi": hi}
    ).all()
    nodes = list(
        s.scalars(
            select(ClusterNode)
            .where(ClusterNode.cluster_id == cluster_id)
            .order_by(ClusterNode.node)
        )
    )
    states: dict[str, int] = {}
    for node in nodes:
        states[node.state] = states.get(node.state, 0) + 1
    return ClusterTelemetry(
        cluster_id=cluster_id,
        sampled_at=latest,
        partitions=[{"partition": p, "pending": q, "running": r} for p, q, r in now_rows],
        bucket_s=bucket,
        series=[
            {"ts": b, "partition": p, "pending": float(q), "running": float(r)}
            for b, p, q, r in rows
        ],
        nodes=nodes,
        node_states=states,
    )
