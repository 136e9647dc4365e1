"""Dispatch for clusters the service drives itself (SSH and local): claim, plan, submit.

The same ``submit_calculation`` algorithm runs in the agent; here its ``StepStore`` commits
each change to PostgreSQL before the scheduler is touched.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from sqlalchemy import BigInteger, Engine, all_, and_, any_, bindparam, or_, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session, sessionmaker

from hpcgate.db.base import table_of
from hpcgate.db.models import Calculation, Cluster, Step
from hpcgate.db.models.clusters import AccessMode
from hpcgate.db.session import session_scope
from hpcgate.domain.states import (
    CalculationState,
    StepState,
    transition_calculation,
    transition_step,
)
from hpcgate.engine.blobs import BlobCache
from hpcgate.engine.submission import SubmissionOutcome, submit_calculation
from hpcgate.engine.work import StepWork, for_dispatcher
from hpcgate.metrics.lags import observe_dispatch_lag
from hpcgate.services.connections import ClusterConnections, default_hpcgate_command
from hpcgate.services.events import calculation_event
from hpcgate.services.input_blobs import DbBlobFetcher
from hpcgate.services.job_identity import account_for
from hpcgate.services.locks import NS_CALCULATION, try_advisory_lock
from hpcgate.services.row_locks import lock_calculation_with_steps
from hpcgate.services.work_items import build_work
from hpcgate.settings import Settings

log = logging.getLogger(__name__)


class DbStepStore:
    """Each method is its own committed transaction: durable before the scheduler is called."""

    def __init__(self, factory: sessionmaker[Session], settings: Settings) -> None:
        self.factory = factory
        self.settings = settings

    def mark_submitting(self, calculation_id: int, step: StepWork) -> bool:
        with session_scope(self.factory) as s:
            row = s.get(Step, step.step_id, with_for_update=True)
            if row is None:
                raise LookupError(f"step {step.step_id} vanished")
            fresh = row.state is StepState.PLANNED
            if row.state is not StepState.SUBMITTING:
                row.state = transition_step(row.state, StepState.SUBMITTING)
            renew_claim(s, calculation_id)
            return fresh

    def record_job_id(
        self, calculation_id: int, step: StepWork, job_id: str, *, recovered: bool
    ) -> None:
        with session_scope(self.factory) as s:
            apply_job_id(s, step.step_id, job_id)

    def mark_submitted(self, calculation_id: int) -> None:
        with session_scope(self.factory) as s:
            apply_submitted(s, calculation_id, self.settings)

    def mark_failed(self, calculation_id: int, message: str) -> None:
        with session_scope(self.factory) as s:
            apply_submit_failed(s, calculation_id, message, self.settings)


def renew_claim(s: Session, calculation_id: int) -> None:
    s.execute(
        update(Calculation)
        .where(Calculation.id == calculation_id)
        .values(claimed_at=datetime.now(UTC))
    )


def apply_job_id(s: Session, step_id: int, job_id: str) -> None:
    row = s.get(Step, step_id, with_for_update=True)
    if row is None:
        raise LookupError(f"step {step_id} vanished")
    if row.scheduler_job_id and row.scheduler_job_id != job_id:
        raise ValueError(f"step {step_id} already has job {row.scheduler_job_id}, not {job_id}")
    row.scheduler_job_id = job_id
    if row.state is StepState.SUBMITTING:
        row.state = transition_step(row.state, StepState.QUEUED)
    row.submitted_at = row.submitted_at or datetime.now(UTC)
    renew_claim(s, row.calculation_id)


def apply_submitted(s: Session, calculation_id: int, settings: Settings) -> None:
    calc = s.get(Calculation, calculation_id, with_for_update=True)
    if calc is None:
        return
    if any(st.state is StepState.PLANNED for st in calc.steps):
        return  # a retry was scheduled meanwhile (recovery ladder): the next drain submits it
    if calc.state is CalculationState.SUBMITTING:
        calc.state = transition_calculation(calc.state, CalculationState.SUBMITTED)
        if calc.submitted_at is not None:
            return  # a retry's resubmission (recovery ladder): told when it was scheduled
        calc.submitted_at = datetime.now(UTC)
        observe_dispatch_lag(calc.ready_at or calc.created_at, calc.submitted_at)
        calculation_event(
            s, calc, "submitted", "all steps are queued", level="info", settings=settings
        )


def apply_submit_failed(s: Session, calculation_id: int, message: str, settings: Settings) -> None:
    calc = lock_calculation_with_steps(s, calculation_id)  # it fails its steps too
    if calc is None or calc.state is not CalculationState.SUBMITTING:
        return
    calc.state = transition_calculation(calc.state, CalculationState.FAILED)
    calc.state_reason = f"submission refused: {message}"[:4000]
    calc.finished_at = datetime.now(UTC)
    for step in calc.steps:
        if step.state in (StepState.PLANNED, StepState.SUBMITTING, StepState.QUEUED):
            step.state = transition_step(
                step.state,
                StepState.FAILED if step.state is StepState.SUBMITTING else StepState.CANCELLED,
            )
            step.state_reason = calc.state_reason
    calculation_event(s, calc, "error", calc.state_reason, level="error", settings=settings)


CLAIM_LEASE = timedelta(seconds=120)


_calc, _clus, _step = table_of(Calculation), table_of(Cluster), table_of(Step)
# Agents run this on every pull: Core, built once (its cache key is memoised), rows as tuples.
_CLAIMABLE = (
    select(_calc.c.id, _calc.c.state)
    .join(_clus, _clus.c.id == _calc.c.cluster_id)
    .where(
        # = ANY(array), not an expanding IN: one SQL text whatever the number of clusters,
        # so it is compiled once and prepared once by the server.
        _calc.c.cluster_id == any_(bindparam("cluster_ids", type_=ARRAY(BigInteger))),
        _calc.c.approved.is_(True),
        _clus.c.enabled.is_(True),
        or_(
            _calc.c.state == CalculationState.READY,
            and_(
                _calc.c.state == CalculationState.SUBMITTING,
                or_(
                    _calc.c.claimed_by == bindparam("claimed_by"),
                    _calc.c.claimed_at.is_(None),
                    _calc.c.claimed_at < bindparam("lease_start"),
                ),
            ),
        ),
    )
    .order_by(_calc.c.priority.desc(), _calc.c.created_at, _calc.c.id)
    .limit(bindparam("limit"))
    .with_for_update(of=_calc, skip_locked=True)
)
# The worker's drain: the same, minus what this drain already handled (a deferred calculation
# stays claimable by us and must not be taken again and again within one drain).
_CLAIMABLE_EXCEPT = _CLAIMABLE.where(
    _calc.c.id != all_(bindparam("exclude", type_=ARRAY(BigInteger)))
)
_CLAIM = (
    update(_calc)
    .where(_calc.c.id.in_(bindparam("ids", expanding=True)))
    .values(
        state=CalculationState.SUBMITTING,
        processed=True,
        claimed_by=bindparam("claimed_by"),
        claimed_at=bindparam("now"),
    )
)


def claim_calculations(
    s: Session,
    cluster_ids: list[int],
    limit: int,
    claimed_by: str,
    exclude: Sequence[int] = (),
) -> list[int]:
    """Take READY (approved) calculations, highest priority first, and resume SUBMITTING ones.

    A SUBMITTING calculation is resumed by the dispatcher that claimed it (a restart), or by
    anyone once its claim lease expired (its dispatcher died). Dispatchers renew the lease
    with every step they report, so a long chain is never taken over mid-submission.
    """
    if not cluster_ids or limit < 1:
        return []
    now = datetime.now(UTC)
    conn = s.connection()
    params: dict[str, object] = {
        "cluster_ids": cluster_ids,
        "claimed_by": claimed_by,
        "lease_start": now - CLAIM_LEASE,
        "limit": limit,
    }
    if exclude:
        params["exclude"] = list(exclude)
    rows = conn.execute(_CLAIMABLE_EXCEPT if exclude else _CLAIMABLE, params).all()
    if not rows:
        return []
    for row in rows:  # rows are locked: validate each move, then write the claim columns
        if row.state is not CalculationState.SUBMITTING:
            transition_calculation(row.state, CalculationState.SUBMITTING)
    ids = [int(r.id) for r in rows]
    conn.execute(_CLAIM, {"ids": ids, "claimed_by": claimed_by, "now": now})
    return ids


def dispatch_tick(
    engine: Engine,
    factory: sessionmaker[Session],
    connections: ClusterConnections,
    settings: Settings,
    *,
    claimed_by: str,
    limit: int | None = None,
    stopping: Callable[[], bool] | None = None,
) -> list[SubmissionOutcome]:
    """Drain: claim bounded batches and submit them until nothing claimable is left.

    Each batch (``dispatch_batch``, or ``limit``) is submitted with up to
    ``submit_concurrency`` calculations in flight per cluster; every calculation keeps its
    own advisory lock and durable step store, so concurrency changes nothing about the
    crash guarantees. A cluster whose submission was deferred (a transient scheduler or SSH
    error) gets no more work in this drain: the next drain (wake-up or poll) retries it.
    """
    sched = settings.scheduler
    batch = limit or sched.dispatch_batch
    cluster_ids = _dispatched_clusters(factory)
    if not cluster_ids:
        return []
    per_cluster = sched.submit_concurrency
    slots = {cid: threading.BoundedSemaphore(per_cluster) for cid in cluster_ids}

    def submit_locked(calc_id: int, cluster_id: int) -> SubmissionOutcome | None:
        with slots[cluster_id], try_advisory_lock(engine, NS_CALCULATION, calc_id) as got:
            if not got:
                return None  # another worker is on it
            return submit_one(factory, connections, settings, calc_id)

    seen: set[int] = set()
    outcomes: list[SubmissionOutcome] = []
    workers = min(per_cluster * len(cluster_ids), 32)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="submit") as pool:
        while cluster_ids and not (stopping and stopping()):
            claimed = _claim_batch(factory, cluster_ids, batch, claimed_by, seen)
            if not claimed:
                break
            futures = [
                (cluster_id, pool.submit(submit_locked, calc_id, cluster_id))
                for calc_id, cluster_id in claimed.items()
            ]
            _collect(futures, outcomes, cluster_ids)
    from hpcgate.services.refinement_submit import submit_refinements

    outcomes += submit_refinements(engine, factory, connections, settings, cluster_ids)
    return outcomes


def _dispatched_clusters(factory: sessionmaker[Session]) -> set[int]:
    """Enabled clusters this worker submits to (agents submit to their own)."""
    with session_scope(factory) as s:
        return set(
            s.scalars(
                select(Cluster.id).where(
                    Cluster.access_mode.in_([AccessMode.SSH, AccessMode.LOCAL]),
                    Cluster.enabled.is_(True),
                )
            )
        )


def _claim_batch(
    factory: sessionmaker[Session],
    cluster_ids: set[int],
    batch: int,
    claimed_by: str,
    seen: set[int],
) -> dict[int, int]:
    """Claim up to ``batch`` calculations not handled yet in this drain (added to ``seen``):
    id -> cluster id."""
    with session_scope(factory) as s:
        ids = claim_calculations(s, sorted(cluster_ids), batch, claimed_by, sorted(seen))
        seen.update(ids)
        if not ids:
            return {}
        rows = s.execute(
            select(Calculation.id, Calculation.cluster_id).where(Calculation.id.in_(ids))
        ).all()
    where = {int(r[0]): int(r[1]) for r in rows}
    return {cid: where[cid] for cid in ids if cid in where}


def _collect(
    futures: list[tuple[int, Future[SubmissionOutcome | None]]],
    outcomes: list[SubmissionOutcome],
    cluster_ids: set[int],
) -> None:
    """Wait for a batch; a cluster that deferred or failed gets no more work this drain."""
    for cluster_id, future in futures:
        try:
            outcome = future.result()
        except Exception:
            log.exception("submission failed unexpectedly; the next drain resumes it")
            cluster_ids.discard(cluster_id)
            continue
        if outcome is None:
            continue
        outcomes.append(outcome)
        if outcome.deferred:
            cluster_ids.discard(cluster_id)


def submit_one(
    factory: sessionmaker[Session],
    connections: ClusterConnections,
    settings: Settings,
    calc_id: int,
) -> SubmissionOutcome | None:
    with session_scope(factory) as s:
        calc = s.get(Calculation, calc_id)
        if calc is None or calc.state is not CalculationState.SUBMITTING:
            return None
        cluster = s.get(Cluster, calc.cluster_id)
        if cluster is None:
            return None
        work = build_work(s, calc, cluster)
        # The owner's mapped login, if any: their jobs run (and are accounted) as them.
        adapter = connections.adapter_for(cluster, account_for(s, cluster.id, calc.owner_id))
        command = list(cluster.options.get("hpcgate_command") or default_hpcgate_command())
    work = for_dispatcher(work, command)
    blobs = None
    if any(step.blobs for step in work.steps):
        blobs = BlobCache(settings.paths.data_dir / "blob-cache", DbBlobFetcher(factory))
        blobs.prune()
    return submit_calculation(work, adapter, DbStepStore(factory, settings), blobs)
