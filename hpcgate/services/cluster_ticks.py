"""The worker's periodic harvest and heartbeat of the clusters it drives itself (SSH, local).

Per cluster and tick: cancel what must be cancelled, one harvest (``squeue`` + ``sacct``),
one heartbeat (scratch cleanup is ``scratch_cleanup``'s). Each cluster is guarded by an
advisory lock, so two workers never poll the same cluster in the same tick. A scheduler/SSH
failure marks the cluster unhealthy in the log and leaves every job as it was.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from hpcgate.db.models import Calculation, Cluster, ClusterAccount, Step
from hpcgate.db.models.clusters import AccessMode
from hpcgate.db.session import session_scope
from hpcgate.engine.heartbeat import collect_sample
from hpcgate.engine.live_usage import with_live_usage
from hpcgate.engine.observe import observe
from hpcgate.engine.work import ActiveStep, StepObservation
from hpcgate.logging import bind_context
from hpcgate.services.cancellations import acknowledge_cancellations, pending_cancellations
from hpcgate.services.cluster_health import mark_heard, record_cluster_sample
from hpcgate.services.connections import ClusterConnections
from hpcgate.services.harvest import apply_observations, watched_steps
from hpcgate.services.job_identity import account_for
from hpcgate.services.locks import NS_CLUSTER_HARVEST, try_advisory_lock
from hpcgate.settings import Settings
from scheduler_adapters.base import SchedulerAdapter
from scheduler_adapters.errors import SchedulerError
from scheduler_adapters.types import JobId

log = logging.getLogger(__name__)


def driven_clusters(factory: sessionmaker[Session]) -> list[int]:
    """The clusters the worker itself talks to; agents look after the others."""
    with session_scope(factory) as s:
        return list(
            s.scalars(
                select(Cluster.id).where(
                    Cluster.access_mode.in_([AccessMode.SSH, AccessMode.LOCAL])
                )
            )
        )


def harvest_tick(
    engine: Engine,
    factory: sessionmaker[Session],
    connections: ClusterConnections,
    settings: Settings,
) -> None:
    for cluster_id in driven_clusters(factory):
        with try_advisory_lock(engine, NS_CLUSTER_HARVEST, cluster_id) as got:
            if got:
                harvest_cluster(factory, connections, settings, cluster_id)


def harvest_cluster(
    factory: sessionmaker[Session],
    connections: ClusterConnections,
    settings: Settings,
    cluster_id: int,
    full: bool = True,
) -> None:
    """Disabled clusters are still harvested: maintenance stops new work, not running work.

    ``full=False`` (a harvest woken by a job's end, ``services/end_watch.py``) applies only
    what changed and takes no live samples: see ``changed_observations``."""
    with session_scope(factory) as s:
        cluster = s.get(Cluster, cluster_id)
        if cluster is None:
            return
        name = cluster.name
        watched = watched_steps(s, cluster_id)
        steps, cancels = watched.active, watched.cancellations
        groups = _group_by_owner_account(s, connections, cluster, steps)
    with bind_context(cluster=name):
        try:
            if cancels:
                _cancel_as_owners(factory, connections, cluster_id, cancels)
                with session_scope(factory) as s:
                    acknowledge_cancellations(s, cancels)
            # Each owner's jobs are observed through their own account: on an SSH cluster a
            # mapped user's directories are private to that login (one squeue + one sacct
            # per account, not per job).
            observations = [
                o
                for adapter, group in groups
                for o in (
                    with_live_usage(adapter, group, observe(adapter, group))
                    if full
                    else changed_observations(group, observe(adapter, group))
                )
            ]
        except SchedulerError as exc:
            log.warning("harvest of %s failed (jobs left as they are): %s", name, exc.message)
            return
        with session_scope(factory) as s:
            new_cancels = apply_observations(
                s,
                cluster_id,
                observations,
                lost_after=settings.scheduler.lost_after_ticks,
                settings=settings,
            )
            cancels = pending_cancellations(s, cluster_id)
        if new_cancels or cancels:
            try:
                _cancel_as_owners(factory, connections, cluster_id, cancels)
                with session_scope(factory) as s:
                    acknowledge_cancellations(s, cancels)
            except SchedulerError as exc:
                log.warning("cancelling %s failed, will retry: %s", cancels, exc.message)


def changed_observations(
    steps: list[ActiveStep], observations: list[StepObservation]
) -> list[StepObservation]:
    """What a harvest woken by a job's end applies: steps whose state changed (and arrays,
    whose tasks may have). A burst of N ends would otherwise apply every active step N
    times (issue 16); a job not seen is counted towards LOST by the periodic harvest only,
    once per poll as ``lost_after_ticks`` means."""
    state = {st.step_id: st.state for st in steps}
    return [
        o
        for o in observations
        if o.state is not None and (o.tasks or o.state is not state.get(o.step_id))
    ]


def _group_by_owner_account(
    s: Session, connections: ClusterConnections, cluster: Cluster, steps: list[ActiveStep]
) -> list[tuple[SchedulerAdapter, list[ActiveStep]]]:
    """Steps grouped by the account their calculation's owner is mapped to (None: the
    cluster's own), each with the adapter of that account. One query for the owners."""
    if not steps:
        return [(connections.adapter_for(cluster), [])]
    rows = s.execute(
        select(Calculation.id, Calculation.owner_id).where(
            Calculation.id.in_({st.calculation_id for st in steps})
        )
    ).all()
    owners: dict[int, int | None] = {int(r[0]): r[1] for r in rows}
    groups: dict[str | None, tuple[SchedulerAdapter, list[ActiveStep]]] = {}
    accounts: dict[int | None, ClusterAccount | None] = {}
    for st in steps:
        owner = owners.get(st.calculation_id)
        if owner not in accounts:
            accounts[owner] = account_for(s, cluster.id, owner)
        account = accounts[owner]
        key = account.login_name if account is not None else None
        if key not in groups:
            groups[key] = (connections.adapter_for(cluster, account), [])
        groups[key][1].append(st)
    return list(groups.values())


def _cancel_as_owners(
    factory: sessionmaker[Session],
    connections: ClusterConnections,
    cluster_id: int,
    cancels: list[tuple[int, str]],
) -> None:
    """Cancel each job as the account that submitted it (issue 15): a job of a user mapped to
    their own login belongs to that login, and only it (or root) may ``scancel`` it."""
    if not cancels:
        return
    groups: dict[str | None, tuple[SchedulerAdapter, list[JobId]]] = {}
    with session_scope(factory) as s:
        cluster = s.get(Cluster, cluster_id)
        if cluster is None:
            return
        for step_id, job in cancels:
            owner = s.scalar(
                select(Calculation.owner_id)
                .join(Step, Step.calculation_id == Calculation.id)
                .where(Step.id == step_id)
            )
            account = account_for(s, cluster_id, owner)
            key = account.login_name if account is not None else None
            if key not in groups:
                groups[key] = (connections.adapter_for(cluster, account), [])
            groups[key][1].append(JobId.parse(job))
    for adapter, ids in groups.values():
        adapter.cancel(ids)


def heartbeat_tick(factory: sessionmaker[Session], connections: ClusterConnections) -> None:
    for cluster_id in driven_clusters(factory):
        with session_scope(factory) as s:
            cluster = s.get(Cluster, cluster_id)
            if cluster is None:
                continue
            adapter = connections.adapter_for(cluster)
            name = cluster.name
        try:
            sample = collect_sample(adapter)
        except SchedulerError as exc:
            log.warning("heartbeat of %s failed: %s", name, exc.message)
            continue
        with session_scope(factory) as s:
            if s.get(Cluster, cluster_id) is not None:
                record_cluster_sample(s, cluster_id, sample)
                mark_heard(s, cluster_id, datetime.fromisoformat(sample.ts))
