"""Gauges read from the database when Prometheus scrapes: calculation and step states, the
dispatch backlog, each cluster's queue (all users, from its last heartbeat; per
partition too) and liveness, its nodes by state.

Computed at scrape time instead of kept in process memory, so every API process reports the
same numbers and a restart loses nothing. Six small queries on indexed columns, cached
for ``ttl_s`` so several scrapers cost one round.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from hpcgate.db.session import session_scope

_CALCULATIONS = text("SELECT state, count(*) FROM calculations GROUP BY state")
_STEPS = text(
    "SELECT s.cluster_id, c.name, s.state, count(*) FROM steps s "
    "JOIN clusters c ON c.id = s.cluster_id "
    "WHERE s.state IN ('submitting', 'queued', 'running', 'lost') "
    "GROUP BY s.cluster_id, c.name, s.state"
)
_BACKLOG = text("SELECT min(updated_at) FROM calculations WHERE state = 'ready'")
# The latest cluster-scope heartbeat per cluster: the whole queue, every user's jobs.
_CLUSTERS = text(
    "SELECT c.name, c.online, c.last_heartbeat_at, h.queue_depth, h.running_jobs, "
    "h.cpus_allocated, h.cpus_total FROM clusters c LEFT JOIN LATERAL ("
    " SELECT queue_depth, running_jobs, cpus_allocated, cpus_total FROM heartbeat_samples"
    " WHERE cluster_id = c.id AND scope = 'cluster' ORDER BY ts DESC LIMIT 1) h ON true "
    "WHERE c.enabled"
)


# Cluster-wide telemetry (issue 18): each cluster's latest partition loads, its nodes by state.
_PARTITIONS = text(
    "SELECT c.name, p.partition, p.pending, p.running FROM clusters c"
    " JOIN LATERAL (SELECT max(ts) AS ts FROM partition_samples WHERE cluster_id = c.id) l"
    " ON l.ts IS NOT NULL JOIN partition_samples p ON p.cluster_id = c.id AND p.ts = l.ts"
    " WHERE c.enabled"
)
_NODES = text(
    "SELECT c.name, n.state, count(*) FROM cluster_nodes n JOIN clusters c ON c.id = n.cluster_id"
    " WHERE c.enabled GROUP BY c.name, n.state"
)

class DatabaseState(Collector):
    def __init__(self, factory: sessionmaker[Session], ttl_s: float = 5.0) -> None:
        self.factory = factory
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self._cached: tuple[float, list[GaugeMetricFamily]] | None = None

    def describe(self) -> Iterator[GaugeMetricFamily]:
        """Nothing at registration: ``collect`` would query the database there (building the
        app without one, as the portal's schema dump does, must work)."""
        return iter(())

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._lock:
            if self._cached is None or time.monotonic() - self._cached[0] > self.ttl_s:
                self._cached = (time.monotonic(), self._read())
            families = self._cached[1]
        yield from families

    def _read(self) -> list[GaugeMetricFamily]:
        with session_scope(self.factory) as session:
            calcs = session.execute(_CALCULATIONS).all()
            steps = session.execute(_STEPS).all()
            oldest = session.scalar(_BACKLOG)
            clusters = session.execute(_CLUSTERS).all()
            partitions = session.execute(_PARTITIONS).all()
            nodes = session.execute(_NODES).all()
        return [
            _calculations(calcs),
            _steps(steps),
            _backlog(oldest),
            *_clusters(clusters),
            _partition_jobs(partitions),
            _nodes(nodes),
        ]


def _calculations(rows: Sequence[Any]) -> GaugeMetricFamily:
    family = GaugeMetricFamily("hpcgate_calculations", "Calculations by state.", labels=["state"])
    for state, count in rows:
        family.add_metric([str(state)], count)
    return family


def _steps(rows: Sequence[Any]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(
        "hpcgate_active_steps",
        "hpcgate's own steps on the scheduler (submitting, queued, running, lost), per cluster.",
        labels=["cluster", "state"],
    )
    for _cid, name, state, count in rows:
        family.add_metric([name, str(state)], count)
    return family


def _backlog(oldest: datetime | None) -> GaugeMetricFamily:
    age = 0.0 if oldest is None else max(0.0, (datetime.now(UTC) - oldest).total_seconds())
    return GaugeMetricFamily(
        "hpcgate_dispatch_backlog_age_seconds",
        "Age of the oldest calculation waiting to be dispatched (0: none waits).",
        value=age,
    )


def _clusters(rows: Sequence[Any]) -> list[GaugeMetricFamily]:
    online = GaugeMetricFamily("hpcgate_cluster_online", "1 if the cluster is heard from.",
                               labels=["cluster"])  # fmt: skip
    heard = GaugeMetricFamily(
        "hpcgate_cluster_heartbeat_age_seconds", "Seconds since the cluster's last heartbeat.",
        labels=["cluster"],
    )  # fmt: skip
    gauges = {
        "queue_depth": GaugeMetricFamily(
            "hpcgate_cluster_queue_depth", "Pending jobs of all users (last heartbeat).",
            labels=["cluster"]),
        "running_jobs": GaugeMetricFamily(
            "hpcgate_cluster_running_jobs", "Running jobs of all users (last heartbeat).",
            labels=["cluster"]),
        "cpus_allocated": GaugeMetricFamily(
            "hpcgate_cluster_cpus_allocated", "Allocated CPUs (last heartbeat).",
            labels=["cluster"]),
        "cpus_total": GaugeMetricFamily(
            "hpcgate_cluster_cpus_total", "CPUs in the cluster (last heartbeat).",
            labels=["cluster"]),
    }  # fmt: skip
    now = datetime.now(UTC)
    for name, is_online, last, *values in rows:
        online.add_metric([name], 1.0 if is_online else 0.0)
        if last is not None:
            heard.add_metric([name], max(0.0, (now - last).total_seconds()))
        for family, value in zip(gauges.values(), values, strict=True):
            if value is not None:
                family.add_metric([name], value)
    return [online, heard, *gauges.values()]


def _partition_jobs(rows: Sequence[Any]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(
        "hpcgate_partition_jobs",
        "Jobs of all users per partition and state (pending, running), last heartbeat.",
        labels=["cluster", "partition", "state"],
    )
    for name, partition, pending, running in rows:
        family.add_metric([name, partition, "pending"], pending)
        family.add_metric([name, partition, "running"], running)
    return family


def node_state_label(state: str) -> str:
    """A bounded label: Slurm's flag suffixes (``*`` not responding, ``~`` powered down…)
    and combined states (``idle+drain``) reduced to the base state."""
    base = state.strip().lower().split("+", 1)[0].rstrip("*~#!%$@^-")[:32]
    return base if base and all(c.isalpha() or c in "-_" for c in base) else "other"


def _nodes(rows: Sequence[Any]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(
        "hpcgate_nodes", "Nodes per state (idle, mixed, allocated, down, drained...).",
        labels=["cluster", "state"],
    )  # fmt: skip
    counts: dict[tuple[str, str], int] = {}
    for name, state, count in rows:
        key = (name, node_state_label(str(state)))
        counts[key] = counts.get(key, 0) + int(count)
    for (name, state), count in sorted(counts.items()):
        family.add_metric([name, state], count)
    return family

_installed: DatabaseState | None = None
_install_lock = threading.Lock()


def install(factory: sessionmaker[Session]) -> DatabaseState:
    """Register the collector once per process; a later app (tests) points it at its database."""
    global _installed
    with _install_lock:
        if _installed is None:
            _installed = DatabaseState(factory)
            REGISTRY.register(_installed)
        else:
            _installed.factory, _installed._cached = factory, None
        return _installed
