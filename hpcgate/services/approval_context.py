"""What a moderator sees next to a calculation waiting for approval: what it may cost
(planned CPUs x walltime x array size, in core-hours) and what its owner already used this
month, on that cluster and in total, with the owner's quota there (docs/accounting.md)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from hpcgate.db.models import Calculation, Cluster, QueueMapping, Step, User
from hpcgate.domain import usage as math
from hpcgate.domain.states import CalculationState
from hpcgate.errors import NotFound
from hpcgate.services.calculations import get_calculation
from hpcgate.services.quotas import quota_status
from hpcgate.services.usage import month_core_hours

# A step without a walltime runs up to its partition's default; the estimate then assumes
# the queue's limit, or this when the queue has none (and says so).
FALLBACK_WALLTIME_S = 3600


@dataclass(frozen=True)
class ApprovalContext:
    calculation_id: int
    name: str
    owner_id: int
    owner_email: str
    cluster_id: int
    cluster_name: str
    state: str
    created_at: datetime
    estimated_core_hours: float
    walltime_assumed: bool
    month: str
    owner_month_core_hours_cluster: float
    owner_month_core_hours_total: float
    soft_core_hours: float | None
    hard_core_hours: float | None


def _default_walltime(s: Session, calc: Calculation) -> int | None:
    queue = s.scalar(
        select(QueueMapping).where(
            QueueMapping.cluster_id == calc.cluster_id,
            QueueMapping.logical_queue == calc.logical_queue,
        )
    )
    return queue.max_walltime_s if queue is not None else None


def estimate(s: Session, calc: Calculation) -> tuple[float, bool]:
    """Core-hours the plan may take, and whether a walltime had to be assumed."""
    default = _default_walltime(s, calc)
    steps = s.scalars(select(Step).where(Step.calculation_id == calc.id)).all()
    assumed = False
    parts = []
    for step in steps:
        resources = step.spec.get("resources", {}) if isinstance(step.spec, dict) else {}
        assumed = assumed or not (resources.get("walltime_s") or default)
        parts.append(math.step_estimate(resources, step.array_size, default or FALLBACK_WALLTIME_S))
    return math.estimate_core_hours(parts), assumed


def context_of(s: Session, calc: Calculation, now: datetime | None = None) -> ApprovalContext:
    now = now or datetime.now(UTC)
    owner = s.get(User, calc.owner_id)
    cluster = s.get(Cluster, calc.cluster_id)
    if owner is None or cluster is None:  # RESTRICT foreign keys: never
        raise NotFound(f"calculation {calc.id}: owner or cluster gone")
    quota = quota_status(s, owner.id, cluster)
    core_hours, assumed = estimate(s, calc)
    return ApprovalContext(
        calculation_id=calc.id,
        name=calc.name,
        owner_id=owner.id,
        owner_email=owner.email,
        cluster_id=cluster.id,
        cluster_name=cluster.name,
        state=calc.state.value,
        created_at=calc.created_at,
        estimated_core_hours=core_hours,
        walltime_assumed=assumed,
        month=math.month_text(now),
        owner_month_core_hours_cluster=quota.used_core_hours,
        owner_month_core_hours_total=month_core_hours(s, owner.id, None, now),
        soft_core_hours=quota.soft_core_hours,
        hard_core_hours=quota.hard_core_hours,
    )


def calculation_context(s: Session, calc_id: int) -> ApprovalContext:
    return context_of(s, get_calculation(s, calc_id))


def pending_approvals(s: Session, limit: int = 200) -> list[ApprovalContext]:
    """Every calculation waiting for a moderator, oldest first, with its context."""
    calcs = s.scalars(
        select(Calculation)
        .where(Calculation.state == CalculationState.PENDING_APPROVAL)
        .order_by(Calculation.created_at, Calculation.id)
        .limit(limit)
    ).all()
    return [context_of(s, c) for c in calcs]
