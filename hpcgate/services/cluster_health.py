"""Cluster liveness: heartbeat samples stored, clusters marked heard from or offline.

Both dispatch modes feed it: the worker's heartbeat tick for the clusters it drives, and
the agents' batched ``POST /agent/heartbeat``. A cluster silent for longer than
``offline_after_s`` is marked offline (and its admins notified) by the worker.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from hpcgate.db.base import table_of
from hpcgate.db.models import Cluster, HeartbeatSample
from hpcgate.db.models.telemetry import CLUSTER_METRICS
from hpcgate.engine.work import ClusterSample
from hpcgate.services.cluster_telemetry import record_cluster_telemetry
from hpcgate.services.events import cluster_event
from hpcgate.settings import Settings

_hb, _cl = table_of(HeartbeatSample), table_of(Cluster)
_SAMPLE_COLUMNS = ("ts", "cluster_id", "scope", "node", *CLUSTER_METRICS, "sample_key")
# Built once: every agent sends a batch every 30 s.
_INSERT_SAMPLE = (
    insert(_hb)
    .values({c: bindparam(c) for c in _SAMPLE_COLUMNS})
    .on_conflict_do_nothing(index_elements=["sample_key"])
    .returning(_hb.c.id)
)
_INSERT_NODES = insert(_hb)
# One atomic UPDATE instead of SELECT ... FOR UPDATE then UPDATE: concurrent batches of one
# cluster (two API processes) still end at the latest timestamp. updated_at tracks
# configuration, not liveness.
_HEARD_FROM = (
    update(_cl)
    .where(_cl.c.id == bindparam("cluster_id"))
    .values(
        last_heartbeat_at=func.greatest(
            func.coalesce(_cl.c.last_heartbeat_at, bindparam("ts")), bindparam("ts")
        ),
        online=True,
        updated_at=_cl.c.updated_at,
    )
)


def record_cluster_sample(s: Session, cluster_id: int, sample: ClusterSample) -> bool:
    """Store one heartbeat (idempotent by ``sample_key``); returns False for a duplicate.

    The caller marks the cluster heard from (``mark_heard``) once per batch.
    """
    ts = datetime.fromisoformat(sample.ts)
    totals = {"cpus_allocated": 0, "cpus_total": 0, "memory_free_mb": 0, "memory_total_mb": 0}
    loads: list[float] = []
    for node in sample.nodes:
        totals["cpus_allocated"] += int(node.get("cpus_allocated") or 0)
        totals["cpus_total"] += int(node.get("cpus_total") or 0)
        totals["memory_free_mb"] += int(node.get("memory_free_mb") or 0)
        totals["memory_total_mb"] += int(node.get("memory_total_mb") or 0)
        if node.get("cpu_load") is not None:
            loads.append(float(node["cpu_load"]))
    conn = s.connection()
    row = {
        "ts": ts,
        "cluster_id": cluster_id,
        "scope": "cluster",
        "node": None,
        "sample_key": sample.sample_key[:128],
        "cpu_load": sum(loads) if loads else None,
        "queue_depth": sample.queue_depth,
        "running_jobs": sample.running_jobs,
        **totals,
    }
    inserted = conn.execute(_INSERT_SAMPLE, row).first() is not None
    if inserted and sample.nodes:
        conn.execute(  # one executemany, not an ORM object per node
            _INSERT_NODES,
            [
                {
                    "ts": ts,
                    "cluster_id": cluster_id,
                    "scope": "node",
                    "node": str(node.get("name"))[:200],
                    "cpu_load": node.get("cpu_load"),
                    "cpus_allocated": node.get("cpus_allocated"),
                    "cpus_total": node.get("cpus_total"),
                    "memory_free_mb": node.get("memory_free_mb"),
                    "memory_total_mb": node.get("memory_total_mb"),
                }
                for node in sample.nodes
            ],
        )
    if inserted:
        record_cluster_telemetry(s, cluster_id, ts, sample.partitions, sample.nodes)
    return inserted


def mark_heard(s: Session, cluster_id: int, latest: datetime) -> None:
    """The cluster is online and was last heard from at ``latest`` (or later)."""
    s.connection().execute(_HEARD_FROM, {"cluster_id": cluster_id, "ts": latest})


def mark_offline_clusters(s: Session, offline_after_s: float, settings: Settings) -> list[str]:
    now = datetime.now(UTC)
    names = []
    for cluster in s.scalars(
        select(Cluster).where(Cluster.online.is_(True)).with_for_update(skip_locked=True)
    ):
        last = cluster.last_heartbeat_at
        if last is None or (now - last).total_seconds() > offline_after_s:
            cluster.online = False
            names.append(cluster.name)
            cluster_event(
                s,
                cluster,
                "cluster_offline",
                f"no heartbeat since {last.isoformat() if last else 'ever'}",
                settings=settings,
            )
    return names
