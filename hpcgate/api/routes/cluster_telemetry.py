"""A cluster's whole queue (every user's jobs, per partition, now and over a window) and its
nodes' states, from the heartbeats (``services/cluster_telemetry.py``). Every logged-in user
reads them, like the cluster's load graphs."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from hpcgate.api.deps import CurrentUser, SessionDep
from hpcgate.api.schemas.cluster_telemetry import (
    ClusterNodeOut,
    ClusterTelemetryOut,
    PartitionLoadOut,
    PartitionPointOut,
)
from hpcgate.services import cluster_telemetry

router = APIRouter(tags=["clusters"])


@router.get("/clusters/{cluster_id}/telemetry", response_model=ClusterTelemetryOut)
def get_cluster_telemetry(
    cluster_id: int,
    _: CurrentUser,
    session: SessionDep,
    since: datetime | None = None,
    until: datetime | None = None,
    points: Annotated[int, Query(ge=1, le=2000)] = 300,
) -> ClusterTelemetryOut:
    found = cluster_telemetry.cluster_telemetry(session, cluster_id, since, until, points)
    return ClusterTelemetryOut(
        cluster_id=found.cluster_id,
        sampled_at=found.sampled_at,
        partitions=[PartitionLoadOut(**p) for p in found.partitions],
        bucket_s=found.bucket_s,
        series=[PartitionPointOut(**p) for p in found.series],
        nodes=[ClusterNodeOut.model_validate(n) for n in found.nodes],
        node_states=found.node_states,
    )
