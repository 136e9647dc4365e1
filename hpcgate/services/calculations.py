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

from hpcgate.codes.plugin import PreparedInputs, check_binary_inputs, check_input_files
from hpcgate.codes.registry import get_plugin
from hpcgate.db.models import (
    Calculation,
    Cluster,
    Molecule,
    QueueMapping,
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
from hpcgate.services.input_blobs import link_inputs, resolve_binary_inputs
from hpcgate.services.parse_pool import get_pool
from hpcgate.services.planned_steps import StepsCommon, insert_edges, insert_steps
from hpcgate.services.start_from import check_start_from
from hpcgate.services.wakeup import notify_work
from hpcgate.settings import Settings

log = logging.getLogger(__name__)

_RESOURCE_KEYS = {"nodes", "tasks", "cpus_per_task", "memory_mb", "walltime_s", "gpus"}


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


def resolve_analyses(selection: Sequence[str], code: str) -> list[str]:
    """Refuse a selection missing a requirement (with the missing names), or unknown names."""
    if not selection:
        return []
    try:
        from analyses.graph import InvalidSelection, resolve
    except ImportError:  # pragma: no cover - analyses ship with hpcgate
        raise InvalidInput("analyses are not available on this server") from None
    try:
        ordered = resolve(list(selection), code=code if code != "generic" else None)
    except InvalidSelection as exc:
        raise InvalidInput(
            str(exc),
            missing=dict(getattr(exc, "missing", {}) or {}),
            unknown=sorted(getattr(exc, "unknown", ()) or ()),
        ) from None
    return list(ordered)


def _resources(config: Mapping[str, Any], queue: QueueMapping) -> dict[str, int]:
    raw = config.get("resources", {}) or {}
    if not isinstance(raw, Mapping):
        raise InvalidInput("'resources' must be an object")
    unknown = set(raw) - _RESOURCE_KEYS
    if unknown:
        raise InvalidInput(f"unknown resource(s): {', '.join(sorted(unknown))}")
    out: dict[str, int] = {}
    for key, value in raw.items():
        if (
            not isinstance(value, int)
            or isinstance(value, bool)
            or value < (0 if key == "gpus" else 1)
        ):
            raise InvalidInput(f"resource {key!r} must be a positive integer")
        out[key] = value
    if queue.max_walltime_s and out.get("walltime_s", 0) > queue.max_walltime_s:
        raise InvalidInput(
            f"walltime {out['walltime_s']} s exceeds the queue limit of {queue.max_walltime_s} s"
        )
    if queue.max_nodes and out.get("nodes", 1) > queue.max_nodes:
        raise InvalidInput(f"{out['nodes']} nodes exceed the queue limit of {queue.max_nodes}")
    cpus = out.get("tasks", 1) * out.get("cpus_per_task", 1)
    if queue.max_cpus and cpus > queue.max_cpus:
        raise InvalidInput(f"{cpus} CPUs exceed the queue limit of {queue.max_cpus}")
    return out


def _prepare_all(
    plan: Plan, code: str, config: Mapping[str, Any]
) -> dict[int, list[PreparedInputs]]:
    """Prepare the inputs of every step/task now, so a bad variant is refused at creation."""
    plugin = get_plugin(code)
    files = check_input_files(config.get("inputs", {}) or {})
    binary = frozenset(check_binary_inputs(config.get("binary_inputs"), files))
    # Only when there are binary inputs: a plugin written before them still works without.
    extra: dict[str, Any] = {"binary": binary} if binary else {}
    main = str(config.get("main_input") or plugin.default_main_input)
    if plugin.name != "generic" and not files:
        raise InvalidInput(f"a {code} calculation needs its input files under 'inputs'")
    base = config.get("parameters", {}) or {}
    if not isinstance(base, Mapping):
        raise InvalidInput("'parameters' must be an object")
    if plan.kind == "transiesta":  # electrode, device and TBtrans steps from their own fdfs
        from hpcgate.codes.siesta.ladder import prepare_ladder

        return prepare_ladder(plan, code, config, binary=binary)
    prepared: dict[int, list[PreparedInputs]] = {}
    for step in plan.steps:
        variants = step.array if step.is_array else ((step.variant,) if step.variant else ())
        prepared[step.index] = [
            plugin.prepare(
                files, main, {**base, **(v.parameters if v else {})},
                bool(step.parents or config.get("start_from")), **extra
            )
            for v in variants
        ]
    if plugin.name == "generic":
        command = config.get("command")
        if (
            not isinstance(command, list)
            or not command
            or not all(isinstance(a, str) for a in command)
        ):
            raise InvalidInput("a generic calculation needs 'command': a non-empty list of strings")
    return prepared


def create_calculation(
    session: Session, owner: User, new: NewCalculation, settings: Settings
) -> Calculation:
    """Check everything, then write the calculation, its steps, edges and array tasks."""
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
    resources = _resources(config, queue)
    analyses = resolve_analyses(new.analyses, new.code)
    try:
        plan = build_plan(config)
    except PlanError as exc:
        raise InvalidInput(str(exc)) from None
    # In a worker process with a time limit: parsing user text must not stall the API.
    pool = get_pool(settings.parse_workers, settings.parse_timeout_s)
    prepared = pool.run(_prepare_all, plan, new.code, config)
    if plan.kind == "transiesta":
        from hpcgate.codes.siesta.ladder import ladder_analyses

        analyses = ladder_analyses(analyses)
    blob_refs = resolve_binary_inputs(session, config, settings)
    calc = _insert_calculation(session, owner, new, name, cluster, config, analyses, settings)
    shared = StepsCommon(
        plan_kind=plan.kind,
        resources=resources,
        queue=queue,
        command=list(config.get("command") or []),
        analyses=analyses,
        blob_refs=blob_refs,
        plugin=get_plugin(new.code),
    )
    steps = insert_steps(session, calc, cluster, plan, prepared, shared)
    insert_edges(session, plan, steps)
    link_inputs(session, calc.id, blob_refs)
    session.flush()
    quotas.notify_soft(session, calc, quota, settings)
    if calc.state is CalculationState.READY:
        notify_work(session, cluster.id)  # delivered at commit: the dispatcher wakes at once
    log.info("calculation %s created with %d step(s)", calc.id, len(plan.steps))
    return calc


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
    cluster = session.get(Cluster, cluster_id)
    if cluster is None:
        raise NotFound(f"cluster {cluster_id} does not exist")
    queue = next((q for q in cluster.queues if q.logical_queue == logical_queue), None)
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
    """Mark the calculation cancelled; return the scheduler ids the dispatcher must cancel."""
    calc = _locked(session, calc_id)
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
