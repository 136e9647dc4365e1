"""A cluster heartbeat: node metrics and queue figures, from two scheduler calls."""

from __future__ import annotations

import uuid
from dataclasses import asdict
from datetime import UTC, datetime

from hpcgate.engine.work import ClusterSample
from scheduler_adapters.base import SchedulerAdapter
from scheduler_adapters.types import JobState


def collect_sample(adapter: SchedulerAdapter) -> ClusterSample:
    nodes = adapter.node_metrics()
    jobs = adapter.status(None)
    waiting = sum(1 for s in jobs.values() if s.state in (JobState.PENDING, JobState.HELD))
    running = sum(1 for s in jobs.values() if s.state in (JobState.RUNNING, JobState.COMPLETING))
    return ClusterSample(
        ts=datetime.now(UTC).isoformat(),
        nodes=tuple(asdict(n) for n in nodes),
        queue_depth=waiting,
        running_jobs=running,
        sample_key=uuid.uuid4().hex,
    )
