"""Scratch cleanup of settled steps on the clusters the worker drives (SSH and local).

Each cluster's ``cleanup_policy`` decides what goes and when; every directory is cleaned
through its owner's account (issue 15), under a per-cluster advisory lock.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from hpcgate.db.models import Calculation, Cluster, Step
from hpcgate.db.session import session_scope
from hpcgate.domain.states import StepState
from hpcgate.engine.cleanup import CleanupPolicy, clean_directory
from hpcgate.services.cluster_ticks import driven_clusters
from hpcgate.services.connections import ClusterConnections
from hpcgate.services.job_identity import account_for
from hpcgate.services.locks import NS_CLUSTER_CLEANUP, try_advisory_lock
from scheduler_adapters.base import SchedulerAdapter
from scheduler_adapters.errors import SchedulerError

log = logging.getLogger(__name__)

CLEANABLE = (StepState.HARVESTED, StepState.INVALID, StepState.FAILED, StepState.CANCELLED)


@dataclass(frozen=True)
class CleanableStep:
    step_id: int
    workdir: str
    expired: bool


def cleanable_steps(
    session: Session, cluster_id: int, cleanup_policy: dict[str, Any] | None, limit: int = 200
) -> list[CleanableStep]:
    """An agent's cleanup work: finished steps not cleaned yet, and whether the policy's
    ``keep_days`` has passed for each (nothing without a policy)."""
    if not cleanup_policy:
        return []
    policy = CleanupPolicy.from_dict(cleanup_policy)
    now = datetime.now(UTC)
    rows = session.scalars(
        select(Step)
        .where(
            Step.cluster_id == cluster_id,
            Step.state.in_(CLEANABLE),
            Step.cleaned_at.is_(None),
            Step.workdir.is_not(None),
        )
        .limit(limit)
    )
    return [
        CleanableStep(
            step_id=st.id,
            workdir=st.workdir or "",
            expired=bool(
                policy.keep_days is not None
                and st.finished_at is not None
                and now - st.finished_at > timedelta(days=policy.keep_days)
            ),
        )
        for st in rows
    ]


def cleanup_tick(
    engine: Engine, factory: sessionmaker[Session], connections: ClusterConnections
) -> None:
    for cluster_id in driven_clusters(factory):
        with try_advisory_lock(engine, NS_CLUSTER_CLEANUP, cluster_id) as got:
            if got:
                cleanup_cluster(factory, connections, cluster_id)


@dataclass(frozen=True)
class _Target:
    step_id: int
    workdir: str | None
    finished_at: datetime | None
    adapter: SchedulerAdapter  # of the owner's account on this cluster


def cleanup_cluster(
    factory: sessionmaker[Session], connections: ClusterConnections, cluster_id: int
) -> int:
    """Apply the cluster's policy to settled steps; returns the bytes freed."""
    with session_scope(factory) as s:
        cluster = s.get(Cluster, cluster_id)
        if cluster is None or not cluster.cleanup_policy:
            return 0
        policy = CleanupPolicy.from_dict(cluster.cleanup_policy)
        targets = _targets(s, connections, cluster)
    freed = 0
    now = datetime.now(UTC)
    for target in targets:
        expired = bool(
            policy.keep_days is not None
            and target.finished_at is not None
            and now - target.finished_at > timedelta(days=policy.keep_days)
        )
        try:
            report = clean_directory(
                target.adapter.runner, target.workdir or "", policy, expired=expired
            )
        except SchedulerError as exc:
            log.warning("cleanup of %s failed: %s", target.workdir, exc.message)
            continue
        freed += report.freed_bytes
        if expired and not policy.dry_run:
            _mark_cleaned(factory, target.step_id, now)
    return freed


def _targets(s: Session, connections: ClusterConnections, cluster: Cluster) -> list[_Target]:
    """Settled, not yet cleaned steps, each with the runner of its owner's account: on an
    SSH cluster a mapped user's directories are private to their login (issue 15)."""
    rows = s.execute(
        select(Step.id, Step.workdir, Step.finished_at, Calculation.owner_id)
        .join(Calculation, Calculation.id == Step.calculation_id)
        .where(
            Step.cluster_id == cluster.id,
            Step.state.in_(CLEANABLE),
            Step.cleaned_at.is_(None),
            Step.workdir.is_not(None),
        )
    ).all()
    adapters: dict[int | None, SchedulerAdapter] = {}
    targets = []
    for step_id, workdir, finished_at, owner in rows:
        if owner not in adapters:
            adapters[owner] = connections.adapter_for(cluster, account_for(s, cluster.id, owner))
        targets.append(_Target(step_id, workdir, finished_at, adapters[owner]))
    return targets


def _mark_cleaned(factory: sessionmaker[Session], step_id: int, now: datetime) -> None:
    with session_scope(factory) as s:
        st = s.get(Step, step_id)
        if st is not None:
            st.cleaned_at = now
            if st.state is not StepState.CLEANED:
                st.state = StepState.CLEANED
