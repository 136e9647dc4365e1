"""Submitting the points a refinement added to a running ladder (``services/refinement``).

The calculation stays SUBMITTED/RUNNING: the normal drain only claims READY and
SUBMITTING calculations, so after each drain the dispatcher also looks for running
calculations with PLANNED (or SUBMITTING: a crash mid-submission) steps and submits them
through the same durable ``submit_calculation`` (mark ``submitting`` committed, look the
job up by name after a crash, stage, submit, record the id), one step at a time:

* a parent that already succeeded is no dependency any more (its job may long have left
  the scheduler; ``afterok`` on a purged job is refused): the new device point is
  submitted without a dependency and unheld, and copies the ``.TSDE`` at its start
  (``inherit_from``, from the step's edges);
* its TBtrans step is submitted with ``afterok`` on the device job (just recorded, or
  queued/running from before a crash);
* a step whose parent has no job yet, or did not succeed, waits.

A kill -9 anywhere leaves each step either PLANNED (submitted next time), SUBMITTING (found
by its deterministic job name, never submitted twice) or with its job id. A permanent
scheduler refusal fails the refused points (not the jobs already running) and the
calculation settles like any other.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from hpcgate.db.models import Calculation, Cluster, Step
from hpcgate.db.session import session_scope
from hpcgate.domain.states import (
    SUCCESSFUL_STEP_STATES,
    CalculationState,
    StepState,
    calculation_outcome,
    transition_calculation,
)
from hpcgate.engine.blobs import BlobCache
from hpcgate.engine.submission import SubmissionOutcome, submit_calculation
from hpcgate.engine.work import CalculationWork, StepWork, for_dispatcher
from hpcgate.services.connections import ClusterConnections, default_hpcgate_command
from hpcgate.services.dispatch import DbStepStore
from hpcgate.services.input_blobs import DbBlobFetcher
from hpcgate.services.job_identity import account_for
from hpcgate.services.locks import NS_CALCULATION, try_advisory_lock
from hpcgate.services.work_items import build_work
from hpcgate.settings import Settings

__all__ = ["submit_refinements"]

log = logging.getLogger(__name__)

_RUNNING = (CalculationState.SUBMITTED, CalculationState.RUNNING)
_UNSUBMITTED = (StepState.PLANNED, StepState.SUBMITTING)
_LIVE = (StepState.QUEUED, StepState.RUNNING)  # its job is in Slurm: afterok is valid


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
    calc = s.get(Calculation, calculation_id, with_for_update=True)
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
    store = RefinementStore(factory, settings)
    by_id = {st.step_id: st for st in work.steps}
    todo = [st for st in work.steps if st.scheduler_job_id is None and st.state in _UNSUBMITTED]
    round_ids = {st.step_id for st in todo}
    job_ids: dict[int, str] = {}  # submitted in this round
    outcomes: list[SubmissionOutcome] = []
    for step in todo:  # dependency order
        one = _work_for(work, step, by_id, round_ids, job_ids)
        if one is None:
            continue
        outcome = submit_calculation(one, adapter, store, blobs)
        outcomes.append(outcome)
        if outcome.failed or outcome.deferred:
            break
        if step.step_id in outcome.job_ids:
            job_ids[step.step_id] = outcome.job_ids[step.step_id]
    return outcomes


def _work_for(
    work: CalculationWork,
    step: StepWork,
    by_id: dict[int, StepWork],
    round_ids: set[int],
    job_ids: dict[int, str],
) -> CalculationWork | None:
    """A work item holding ``step`` and the parents it must wait for, with their job ids
    (nothing to submit for them): those submitted in this round, and those queued or
    running from an earlier round (a restart after a crash). A parent that succeeded is
    no dependency (its job may have left Slurm). None while a parent has no job yet or
    did not succeed."""
    known = {**{p.step_id: p.scheduler_job_id for p in by_id.values()}, **job_ids}
    waits: list[int] = []
    for p in step.parents:
        parent = by_id[p]
        if p not in round_ids and parent.state in SUCCESSFUL_STEP_STATES:
            continue
        if not known.get(p) or parent.state not in (*_UNSUBMITTED, *_LIVE):
            log.info("step %s waits for step %s (%s)", step.step_id, p, parent.state)
            return None
        waits.append(p)
    # The parents keep their own parents: no step of this item is a head, so nothing is
    # held or released (a device point may already run when its TBtrans is submitted).
    parents = tuple(replace(by_id[p], scheduler_job_id=known[p]) for p in waits)
    return replace(work, steps=(*parents, replace(step, parents=tuple(waits))))
