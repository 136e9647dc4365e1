"""A cluster heartbeat: node metrics and every user's queue per partition, from two
scheduler calls (``node_metrics`` and ``queue_summary``)."""

from __future__ import annotations

import uuid
from dataclasses import asdict
from datetime import UTC, datetime

from hpcgate.engine.work import ClusterSample
from scheduler_adapters.base import SchedulerAdapter
from scheduler_adapters.queue_summary import PartitionLoad, totals


def collect_sample(adapter: SchedulerAdapter) -> ClusterSample:
    nodes = adapter.node_metrics()
    loads = {x.partition: x for x in adapter.queue_summary()}
    for node in nodes:  # partitions without jobs are listed too, at zero
        for name in node.partitions:
            loads.setdefault(name, PartitionLoad(name))
    waiting, running = totals(loads.values())
    return ClusterSample(
        ts=datetime.now(UTC).isoformat(),
        nodes=tuple(asdict(n) for n in nodes),
        queue_depth=waiting,
        running_jobs=running,
        sample_key=uuid.uuid4().hex,
        partitions=tuple(asdict(x) for x in sorted(loads.values())),
    )
