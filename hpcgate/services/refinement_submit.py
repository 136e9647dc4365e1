"""Submitting the points a refinement added to a running ladder (``services/refinement``).

The calculation stays SUBMITTED/RUNNING: the normal drain only claims READY and
SUBMITTING calculations, so running calculations with PLANNED (or SUBMITTING: a crash
mid-submission) steps are handed to ``engine/added_steps.submit_added_steps``, which
submits each added step on its own through the durable ``submit_calculation`` (mark
``submitting`` committed, look the job up by name after a crash, stage, submit, record the
id): a parent that already succeeded is no dependency (the new device point copies its
``.TSDE`` at start, unheld), the TBtrans step waits ``afterok`` on the device job.

* **Worker-dispatched clusters** (SSH, local): after each drain, ``submit_refinements``,
  under the advisory lock per calculation.
* **Agent clusters**: the agent's pull (``POST /agent/pull``, woken by the ``NOTIFY`` the
  refinement sends) claims them with ``claim_refinements`` — the same lease as a new
  calculation's claim, renewed by every step the agent reports, so one agent at a time —
  and answers them as ``refinements``; the agent runs the same ``submit_added_steps`` with
  the API as its step store (``HttpStepStore``).

A kill -9 anywhere leaves each step either PLANNED (submitted next time), SUBMITTING (found
by its deterministic job name, never submitted twice) or with its job id. A permanent
scheduler refusal fails the refused points (not the jobs already running) and the
calculation settles like any other (``refuse_points``; the agent reports it through
``POST /agent/calculations/{id}/failed``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy import BigInteger, Engine, any_, bindparam, or_, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session, sessionmaker

from hpcgate.db.base import table_of
from hpcgate.db.models import Calculation, Cluster, Step
from hpcgate.db.session import session_scope
from hpcgate.domain.states import (
    CalculationState,
    StepState,
    calculation_outcome,
    transition_calculation,
)
from hpcgate.engine.added_steps import submit_added_steps
from hpcgate.engine.blobs import BlobCache
from hpcgate.engine.submission import SubmissionOutcome
from hpcgate.engine.work import for_dispatcher
from hpcgate.services.connections import ClusterConnections, default_hpcgate_command
from hpcgate.services.dispatch import CLAIM_LEASE, DbStepStore
from hpcgate.services.input_blobs import DbBlobFetcher
from hpcgate.services.job_identity import account_for
from hpcgate.services.locks import NS_CALCULATION, try_advisory_lock
from hpcgate.services.row_locks import lock_calculation_with_steps
from hpcgate.services.work_items import build_work
from hpcgate.settings import Settings

__all__ = ["claim_refinements", "refuse_points", "submit_refinements"]

log = logging.getLogger(__name__)

_RUNNING = (CalculationState.SUBMITTED, CalculationState.RUNNING)
_UNSUBMITTED = (StepState.PLANNED, StepState.SUBMITTING)


class RefinementStore(DbStepStore):
    """The dispatcher's durable store, except that the calculation keeps its state."""

    def mark_submitted(self, calculation_id: int) -> None:
        """Nothing: the calculation is already SUBMITTED or RUNNING."""

    def mark_failed(self, calculation_id: int, message: str) -> None:
        with session_scope(self.factory) as s:
            refuse_points(s, calculation_id, message)


def refuse_points(s: Session, calculation_id: int, message: str) -> None:
    """The scheduler refused a refinement step for good: its unsubmitted steps fail,
    and the calculation settles when nothing else runs."""
    calc = lock_calculation_with_steps(s, calculation_id)  # steps first: docs/engine.md
    if calc is None or calc.state not in _RUNNING:
        return
    steps = list(s.scalars(select(Step).where(Step.calculation_id == calculation_id)))
    reason = f"submission refused: {message}"[:4000]
    for st in steps:
        if st.state in _UNSUBMITTED and st.scheduler_job_id is None:
            st.state = StepState.FAILED if st.state is StepState.SUBMITTING else StepState.CANCELLED
            st.state_reason = reason
    outcome = calculation_outcome([st.state for st in steps])
    if outcome is not None:
        calc.state = transition_calculation(calc.state, CalculationState.FAILED)
        calc.state_reason = reason
        calc.finished_at = datetime.now(UTC)


def refining_calculations(s: Session, cluster_ids: Iterable[int]) -> list[int]:
    """Running calculations with steps still to submit (only refinement adds those)."""
    return list(
        s.scalars(
            select(Step.calculation_id)
            .join(Calculation, Calculation.id == Step.calculation_id)
            .where(
                Step.cluster_id.in_(list(cluster_ids)),
                Step.state.in_(_UNSUBMITTED),
                Calculation.state.in_(_RUNNING),
            )
            .distinct()
            .order_by(Step.calculation_id)
        )
    )


_calc, _step = table_of(Calculation), table_of(Step)
# Every agent pull runs this: Core, built once (ix_steps_cluster_state, calculations.state).
_REFINABLE = (
    select(_calc.c.id)
    .where(
        _calc.c.id.in_(
            select(_step.c.calculation_id).where(
                _step.c.cluster_id == bindparam("cluster_id"),
                _step.c.state.in_(_UNSUBMITTED),
            )
        ),
        _calc.c.state.in_(_RUNNING),
        or_(
            _calc.c.claimed_by == bindparam("claimed_by"),
            _calc.c.claimed_at.is_(None),
            _calc.c.claimed_at < bindparam("lease_start"),
        ),
    )
    .order_by(_calc.c.priority.desc(), _calc.c.id)
    .limit(bindparam("limit"))
    .with_for_update(of=_calc, skip_locked=True)
)
_CLAIM = (
    update(_calc)
    .where(_calc.c.id == any_(bindparam("ids", type_=ARRAY(BigInteger))))
    .values(claimed_by=bindparam("claimed_by"), claimed_at=bindparam("now"))
)


def claim_refinements(s: Session, cluster_id: int, limit: int, claimed_by: str) -> list[int]:
    """Running calculations of an agent's cluster with added steps to submit, claimed for
    ``claimed_by`` (state unchanged). The claim is the dispatch lease: kept by the agent
    that holds it (a restarted one resumes at once), free for another once it expired."""
    if limit < 1:
        return []
    now = datetime.now(UTC)
    params = {
        "cluster_id": cluster_id,
        "claimed_by": claimed_by,
        "lease_start": now - CLAIM_LEASE,
        "limit": limit,
    }
    ids = [int(i) for i in s.connection().execute(_REFINABLE, params).scalars()]
    if ids:
        s.connection().execute(_CLAIM, {"ids": ids, "claimed_by": claimed_by, "now": now})
    return ids


def submit_refinements(
    engine: Engine,
    factory: sessionmaker[Session],
    connections: ClusterConnections,
    settings: Settings,
    cluster_ids: Iterable[int],
) -> list[SubmissionOutcome]:
    """Submit the added points of every running ladder on these clusters."""
    with session_scope(factory) as s:
        calc_ids = refining_calculations(s, cluster_ids)
    outcomes: list[SubmissionOutcome] = []
    for calc_id in calc_ids:
        with try_advisory_lock(engine, NS_CALCULATION, calc_id) as got:
            if not got:
                continue  # another dispatcher is on it
            try:
                outcomes += _submit_added(factory, connections, settings, calc_id)
            except Exception:
                log.exception("calculation %s: submitting refinement points failed", calc_id)
    return outcomes


def _submit_added(
    factory: sessionmaker[Session],
    connections: ClusterConnections,
    settings: Settings,
    calc_id: int,
) -> list[SubmissionOutcome]:
    with session_scope(factory) as s:
        calc = s.get(Calculation, calc_id)
        cluster = s.get(Cluster, calc.cluster_id) if calc is not None else None
        if calc is None or cluster is None or calc.state not in _RUNNING:
            return []
        work = build_work(s, calc, cluster)
        adapter = connections.adapter_for(cluster, account_for(s, cluster.id, calc.owner_id))
        command = list(cluster.options.get("hpcgate_command") or default_hpcgate_command())
    work = for_dispatcher(work, command)
    blobs = None
    if any(step.blobs for step in work.steps):
        blobs = BlobCache(settings.paths.data_dir / "blob-cache", DbBlobFetcher(factory))
    return submit_added_steps(work, adapter, RefinementStore(factory, settings), blobs)
