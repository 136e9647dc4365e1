"""Submitting steps added to a calculation that already runs (adaptive bias refinement).

Shared by the worker (``services/refinement_submit``) and the agent (``agent/loop``): the
scheduler calls are the dispatcher's, the bookkeeping its ``StepStore``'s. The
calculation's other steps ran or run already, so each added step is submitted on its own
through the durable ``submit_calculation`` (mark ``submitting``, look the job up by its
deterministic name after a crash, stage, submit, record the id), in dependency order:

* a parent that already succeeded is no dependency (its job may long have left the
  scheduler; ``afterok`` on a purged job is refused): the step is submitted without it and
  unheld, and copies the parent's files at its start (``inherit_from``, from the edges);
* a parent added in the same round, or queued/running from before a crash, is waited
  for with ``afterok`` on its job;
* a step whose parent has no job yet, or did not succeed, waits for a later round.

No step of these one-step work items is a head, so nothing is held or released.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from hpcgate.domain.states import SUCCESSFUL_STEP_STATES, StepState
from hpcgate.engine.blobs import BlobCache
from hpcgate.engine.submission import StepStore, SubmissionOutcome, submit_calculation
from hpcgate.engine.work import CalculationWork, StepWork
from scheduler_adapters.base import SchedulerAdapter

__all__ = ["added_steps", "submit_added_steps", "work_for"]

log = logging.getLogger(__name__)

_UNSUBMITTED = (StepState.PLANNED, StepState.SUBMITTING)
_LIVE = (StepState.QUEUED, StepState.RUNNING)  # its job is in the scheduler: afterok is valid


def added_steps(work: CalculationWork) -> list[StepWork]:
    """The steps still to submit, in dependency order."""
    return [s for s in work.steps if s.scheduler_job_id is None and s.state in _UNSUBMITTED]


def submit_added_steps(
    work: CalculationWork,
    adapter: SchedulerAdapter,
    store: StepStore,
    blobs: BlobCache | None = None,
) -> list[SubmissionOutcome]:
    """Submit every added step that can be submitted now, one work item per step; stop at
    the first failure or deferral (the rest is resumed next round)."""
    by_id = {st.step_id: st for st in work.steps}
    todo = added_steps(work)
    round_ids = {st.step_id for st in todo}
    job_ids: dict[int, str] = {}  # submitted in this round
    outcomes: list[SubmissionOutcome] = []
    for step in todo:
        one = work_for(work, step, by_id, round_ids, job_ids)
        if one is None:
            continue
        outcome = submit_calculation(one, adapter, store, blobs)
        outcomes.append(outcome)
        if outcome.failed or outcome.deferred:
            break
        if step.step_id in outcome.job_ids:
            job_ids[step.step_id] = outcome.job_ids[step.step_id]
    return outcomes


def work_for(
    work: CalculationWork,
    step: StepWork,
    by_id: dict[int, StepWork],
    round_ids: set[int],
    job_ids: dict[int, str],
) -> CalculationWork | None:
    """A work item holding ``step`` and the parents it must wait for, with their job ids
    (nothing to submit for them): those submitted in this round, and those queued or
    running from an earlier round (a restart after a crash). A parent that succeeded is
    no dependency. None while a parent has no job yet or did not succeed."""
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
