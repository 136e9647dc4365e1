"""Creating, approving, prioritizing and cancelling calculations.

Creation validates *everything* first (queue, resources, analyses, plan, inputs of every
variant) and only then writes the calculation, its steps, edges and array tasks in one
transaction — bad input never leaves anything half-written.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from hpcgate.codes.plugin import PreparedInputs
from hpcgate.codes.registry import get_plugin
from hpcgate.db.models import (
    Calculation,
    Cluster,
    Molecule,
    QueueMapping,
    Step,
)
from hpcgate.db.models.users import User
from hpcgate.domain.access import Action, Owned, may
from hpcgate.domain.plan import (
    Plan,
    PlanError,
    build_plan,
)
from hpcgate.domain.states import (
    CalculationState,
    StepState,
    transition_calculation,
    transition_step,
)
from hpcgate.errors import Conflict, Forbidden, InvalidInput, NotFound
from hpcgate.services import quotas
from hpcgate.services.input_blobs import BlobRef, link_inputs, resolve_binary_inputs
from hpcgate.services.planned_steps import StepsCommon, insert_edges, insert_steps
from hpcgate.services.prepare_inputs import (
    check_resources,
    prepared_inputs,
    resolve_analyses,
)
from hpcgate.services.recovery import check_recovery
from hpcgate.services.row_locks import lock_calculation_with_steps
from hpcgate.services.stall import check_stall_config
from hpcgate.services.start_from import check_start_from
from hpcgate.services.wakeup import notify_work
from hpcgate.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NewCalculation:
    name: str
    cluster_id: int
    logical_queue: str
    code: str
    configuration: Mapping[str, Any]
    description: str = ""
    molecule_id: int | None = None
    analyses: Sequence[str] = ()
    priority: int = 0


@dataclass(frozen=True)
class Created:
    """A calculation just written, with what its answer shows, known without reading back."""

    calculation: Calculation
    steps: list[Step]  # by index
    parents: dict[int, list[int]]  # parent step ids by child step id
    owner_email: str
    cluster_name: str
    warnings: list[str]  # the soft quota's


@dataclass(frozen=True)
class _Checked:
    """A creation request once every check passed: everything to write, nothing written."""

    name: str
    cluster: Cluster
    queue: QueueMapping
    quota: quotas.QuotaStatus
    config: dict[str, Any]
    resources: dict[str, int]
    analyses: list[str]
    plan: Plan
    prepared: dict[int, list[PreparedInputs]]
    blob_refs: list[BlobRef]


def create_calculation(
    session: Session, owner: User, new: NewCalculation, settings: Settings
) -> Calculation:
    """Check everything, then write the calculation, its steps, edges and array tasks."""
    return create(session, owner, new, settings).calculation


def create(session: Session, owner: User, new: NewCalculation, settings: Settings) -> Created:
    """``create_calculation``, with what its answer shows: nothing is read back (issue 16)."""
    return _write(session, owner, new, _check(session, owner, new, settings), settings)


def _check(session: Session, owner: User, new: NewCalculation, settings: Settings) -> _Checked:
    """Every check of a creation; raises before anything is written."""
    name = _checked_name(new.name)
    _check_priority(owner, new.priority)
    cluster, queue = _cluster_and_queue(session, new.cluster_id, new.logical_queue)
    quota = quotas.enforce(session, owner, cluster)  # the hard quota refuses (docs/accounting.md)
    if new.molecule_id is not None and session.get(Molecule, new.molecule_id) is None:
        raise NotFound(f"molecule {new.molecule_id} does not exist")
    config = dict(new.configuration)
    if not isinstance(new.configuration, Mapping):
        raise InvalidInput("'configuration' must be an object")
    if "start_from" in config:  # an earlier calculation's outputs (issue 20)
        config["start_from"] = check_start_from(
            session, owner, cluster, new.code, config["start_from"]
        )
    resources = check_resources(config, queue)
    check_recovery(new.code, config)  # the recovery ladder's settings (issue 17)
    check_stall_config(config)  # stall detection's settings (issue 17)
    analyses = resolve_analyses(new.analyses, new.code)
    try:
        plan = build_plan(config)
    except PlanError as exc:
        raise InvalidInput(str(exc)) from None
    prepared = prepared_inputs(plan, new.code, config, settings)
    if plan.kind == "transiesta":
        from hpcgate.codes.siesta.ladder import ladder_analyses

        analyses = ladder_analyses(analyses)
    blob_refs = resolve_binary_inputs(session, config, settings)
    return _Checked(
        name, cluster, queue, quota, config, resources, analyses, plan, prepared, blob_refs
    )


def _write(
    session: Session, owner: User, new: NewCalculation, c: _Checked, settings: Settings
) -> Created:
    """The calculation, its steps, edges, array tasks and input links; then the wake-up."""
    calc = _insert_calculation(
        session, owner, new, c.name, c.cluster, c.config, c.analyses, settings
    )
    shared = StepsCommon(
        plan_kind=c.plan.kind,
        resources=c.resources,
        queue=c.queue,
        command=list(c.config.get("command") or []),
        analyses=c.analyses,
        blob_refs=c.blob_refs,
        plugin=get_plugin(new.code),
    )
    steps = insert_steps(session, calc, c.cluster, c.plan, c.prepared, shared)
    parents = insert_edges(session, c.plan, steps)
    link_inputs(session, calc.id, c.blob_refs)
    session.flush()
    quotas.notify_soft(session, calc, c.quota, settings)
    if calc.state is CalculationState.READY:
        notify_work(session, c.cluster.id)  # delivered at commit: the dispatcher wakes at once
    log.info("calculation %s created with %d step(s)", calc.id, len(c.plan.steps))
    ordered = [steps[i] for i in sorted(steps)]
    # A new calculation's steps are exactly these: its collection is set as loaded, so the
    # answer (and a preview) reads them without a SELECT (issue 16).
    set_committed_value(calc, "steps", ordered)
    return Created(calc, ordered, parents, owner.email, c.cluster.name, c.quota.warnings())


def _checked_name(raw: str) -> str:
    name = raw.strip()
    if not name or len(name) > 200:
        raise InvalidInput("name must be 1 to 200 characters")
    return name


def _check_priority(owner: User, priority: int) -> None:
    if priority != 0 and not may(Action.CALCULATION_PRIORITIZE, owner):
        # A priority is a moderator's decision (docs/rbac.md); a user's own would jump the queue.
        raise Forbidden(
            "only moderators may set a calculation's priority; leave 'priority' out (0)"
        )


def _cluster_and_queue(
    session: Session, cluster_id: int, logical_queue: str
) -> tuple[Cluster, QueueMapping]:
    # One round trip for both (the queue is unique per cluster); the known queues are
    # listed only for a refusal.
    row = session.execute(
        select(Cluster, QueueMapping)
        .outerjoin(
            QueueMapping,
            (QueueMapping.cluster_id == Cluster.id) & (QueueMapping.logical_queue == logical_queue),
        )
        .where(Cluster.id == cluster_id)
    ).first()
    if row is None:
        raise NotFound(f"cluster {cluster_id} does not exist")
    cluster, queue = row
    if queue is None:
        known = ", ".join(sorted(q.logical_queue for q in cluster.queues)) or "none"
        raise InvalidInput(
            f"cluster {cluster.name} has no queue {logical_queue!r} (known: {known})"
        )
    return cluster, queue


def _insert_calculation(
    session: Session,
    owner: User,
    new: NewCalculation,
    name: str,
    cluster: Cluster,
    config: dict[str, Any],
    analyses: list[str],
    settings: Settings,
) -> Calculation:
    """The calculation row: ready at once, or waiting for a moderator where approval is on."""
    needs_approval = settings.scheduler.require_approval or cluster.require_approval
    calc = Calculation(
        name=name,
        description=new.description,
        owner_id=owner.id,
        molecule_id=new.molecule_id,
        cluster_id=cluster.id,
        logical_queue=new.logical_queue,
        code=new.code,
        configuration=config,
        analyses=analyses,
        state=CalculationState.PENDING_APPROVAL if needs_approval else CalculationState.READY,
        approved=not needs_approval,
        ready_at=None if needs_approval else datetime.now(UTC),
        priority=max(-1000, min(1000, new.priority)),
    )
    session.add(calc)
    session.flush()
    return calc


def get_calculation(session: Session, calc_id: int) -> Calculation:
    calc = session.get(Calculation, calc_id)
    if calc is None:
        raise NotFound(f"calculation {calc_id} does not exist")
    return calc


def ensure_may_change(calc: Calculation, user: User, action: Action) -> None:
    """Everyone reads every calculation (a lab shares results), but only its owner or a
    moderator may rename or cancel it: one researcher must not stop another's run."""
    if user.blocked:
        raise Forbidden("blocked users cannot change calculations")
    if not may(action, user, Owned(calc.owner_id)):
        raise Forbidden(
            f"calculation {calc.id} belongs to another user; "
            "only its owner or a moderator may change it"
        )


def update_calculation(
    session: Session, calc_id: int, user: User, *, name: str | None, description: str | None
) -> Calculation:
    """Rename or re-describe (owner or moderator); a blank name keeps the old one."""
    calc = get_calculation(session, calc_id)
    ensure_may_change(calc, user, Action.CALCULATION_UPDATE)
    if name is not None:
        calc.name = name.strip() or calc.name
    if description is not None:
        calc.description = description
    session.flush()
    return calc


def approve(session: Session, calc_id: int, moderator: User) -> Calculation:
    calc = _locked(session, calc_id)
    if calc.state is not CalculationState.PENDING_APPROVAL:
        raise Conflict(f"calculation {calc_id} is {calc.state.value}, not pending approval")
    calc.state = transition_calculation(calc.state, CalculationState.READY)
    calc.approved = True
    calc.approved_by_id = moderator.id
    calc.ready_at = datetime.now(UTC)  # the dispatch lag starts here
    notify_work(session, calc.cluster_id)
    return calc


def reject(session: Session, calc_id: int, moderator: User, reason: str) -> Calculation:
    calc = _locked(session, calc_id)
    calc.state = transition_calculation(calc.state, CalculationState.REJECTED)
    calc.state_reason = reason[:2000] or "rejected by a moderator"
    calc.approved_by_id = moderator.id
    calc.finished_at = datetime.now(UTC)
    return calc


def set_priority(session: Session, calc_id: int, priority: int) -> Calculation:
    calc = _locked(session, calc_id)
    if not -1000 <= priority <= 1000:
        raise InvalidInput("priority must be between -1000 and 1000")
    calc.priority = priority
    return calc


def request_cancel(session: Session, calc_id: int, user: User) -> tuple[Calculation, list[str]]:
    """Mark the calculation cancelled; return the scheduler ids the dispatcher must cancel.

    Steps first, then the calculation (``row_locks``): the other writers' order."""
    calc = lock_calculation_with_steps(session, calc_id)
    if calc is None:
        raise NotFound(f"calculation {calc_id} does not exist")
    ensure_may_change(calc, user, Action.CALCULATION_CANCEL)
    if calc.state in (
        CalculationState.COMPLETED,
        CalculationState.FAILED,
        CalculationState.CANCELLED,
        CalculationState.REJECTED,
    ):
        raise Conflict(f"calculation {calc_id} is already {calc.state.value}")
    calc.state = transition_calculation(calc.state, CalculationState.CANCELLED)
    calc.state_reason = f"cancelled by {user.email}"
    calc.finished_at = datetime.now(UTC)
    job_ids: list[str] = []
    for step in calc.steps:
        if step.state in (
            StepState.PLANNED,
            StepState.SUBMITTING,
            StepState.QUEUED,
            StepState.RUNNING,
            StepState.LOST,
        ):
            if step.scheduler_job_id:
                job_ids.append(step.scheduler_job_id)
                step.cancel_pending = True
            step.state = transition_step(step.state, StepState.CANCELLED)
            step.state_reason = calc.state_reason
    return calc, job_ids


def _locked(session: Session, calc_id: int) -> Calculation:
    calc = session.scalar(select(Calculation).where(Calculation.id == calc_id).with_for_update())
    if calc is None:
        raise NotFound(f"calculation {calc_id} does not exist")
    return calc
