"""Core-hour accounting (docs/accounting.md): one ``step_usage`` row per settled step
attempt, written from the observation the harvest already has (the same ``sacct`` /
``qstat`` call: no extra scheduler call), and the totals read from those rows.

Who sees what is ``usage.read`` (``domain/access.py``): users their own usage, moderators
and admins everyone's. A month counts the rows recorded (the step settled) in it, UTC.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from hpcgate.db.models import Calculation, Cluster, Step, StepUsage, User
from hpcgate.domain import usage as math
from hpcgate.domain.access import Action, Actor, Owned, may, require
from hpcgate.domain.states import StepState
from hpcgate.engine.work import StepObservation

GroupBy = Literal["user", "project", "cluster", "calculation"]
NO_PROJECT = "(no project)"


def planned_cpus(step: Step) -> int:
    resources = step.spec.get("resources", {}) if isinstance(step.spec, dict) else {}
    return int(resources.get("tasks") or 1) * int(resources.get("cpus_per_task") or 1)


def record_step_usage(s: Session, step: Step, obs: StepObservation, state: StepState) -> None:
    """Store what a step that just ended cost (idempotent per step attempt)."""
    calc = s.get(Calculation, step.calculation_id)
    if calc is None:
        return
    cpus = obs.alloc_cpus or planned_cpus(step)
    core = math.core_seconds_of(obs.core_seconds, obs.elapsed_s, cpus)
    stmt = (
        insert(StepUsage)
        .values(
            step_id=step.id,
            attempt=step.attempt,
            calculation_id=step.calculation_id,
            cluster_id=step.cluster_id,
            user_id=calc.owner_id,
            core_seconds=core or 0.0,
            cpu_seconds=obs.cpu_time_s,
            elapsed_s=obs.elapsed_s,
            alloc_cpus=cpus,
            max_rss_kb=obs.max_rss_kb,
            req_mem_kb=obs.req_mem_kb,
            state=state.value,
            native_state=(obs.native_state or "")[:64] or None,
            recorded_at=datetime.now(UTC),
        )
        .on_conflict_do_nothing(constraint="uq_step_usage_step_id_attempt")
    )
    s.execute(stmt)


# ------------------------------------------------------------------------- totals
@dataclass(frozen=True)
class UsageRow:
    key: str
    label: str
    core_hours: float
    cpu_hours: float
    steps: int
    calculations: int
    cpu_efficiency: float | None


def _dimension(group_by: GroupBy) -> tuple[Any, Any, type[Any]]:
    """The key and label columns of a grouping, and the table they need joined."""
    if group_by == "user":
        return StepUsage.user_id, User.email, User
    if group_by == "project":
        project = func.coalesce(User.project, NO_PROJECT)
        return project, project, User
    if group_by == "cluster":
        return StepUsage.cluster_id, Cluster.name, Cluster
    return StepUsage.calculation_id, Calculation.name, Calculation


def usage_totals(
    s: Session,
    viewer: Actor,
    window: tuple[datetime, datetime],
    group_by: GroupBy,
    *,
    user_id: int | None = None,
    cluster_id: int | None = None,
) -> list[UsageRow]:
    """Totals per ``group_by`` over ``[start, end)``; a plain user's own rows only."""
    key, label, joined = _dimension(group_by)
    measured = func.sum(StepUsage.core_seconds).filter(StepUsage.cpu_seconds.is_not(None))
    stmt = select(
        key,
        label,
        func.sum(StepUsage.core_seconds),
        func.sum(StepUsage.cpu_seconds),
        func.count(),
        func.count(StepUsage.calculation_id.distinct()),
        measured,
    ).where(StepUsage.recorded_at >= window[0], StepUsage.recorded_at < window[1])
    stmt = stmt.join(joined, _JOIN_ON[joined])
    if not may(Action.USAGE_READ, viewer):
        stmt = stmt.where(StepUsage.user_id == viewer.id)
    if user_id is not None:
        stmt = stmt.where(StepUsage.user_id == user_id)
    if cluster_id is not None:
        stmt = stmt.where(StepUsage.cluster_id == cluster_id)
    stmt = stmt.group_by(key, label).order_by(func.sum(StepUsage.core_seconds).desc(), key)
    return [
        UsageRow(
            key=str(k),
            label=str(lbl),
            core_hours=math.hours(core),
            cpu_hours=math.hours(cpu),
            steps=int(n),
            calculations=int(calcs),
            cpu_efficiency=math.ratio(cpu, measured_core),
        )
        for k, lbl, core, cpu, n, calcs, measured_core in s.execute(stmt)
    ]


_JOIN_ON: dict[type, ColumnElement[bool]] = {
    User: User.id == StepUsage.user_id,
    Cluster: Cluster.id == StepUsage.cluster_id,
    Calculation: Calculation.id == StepUsage.calculation_id,
}


def month_core_hours(
    s: Session, user_id: int, cluster_id: int | None, now: datetime | None = None
) -> float:
    """What ``user_id`` used this UTC month (on ``cluster_id``, or everywhere)."""
    start, end = math.month_of(now or datetime.now(UTC))
    stmt = select(func.coalesce(func.sum(StepUsage.core_seconds), 0.0)).where(
        StepUsage.user_id == user_id, StepUsage.recorded_at >= start, StepUsage.recorded_at < end
    )
    if cluster_id is not None:
        stmt = stmt.where(StepUsage.cluster_id == cluster_id)
    return math.hours(s.scalar(stmt))


# ------------------------------------------------------------------ one calculation
@dataclass(frozen=True)
class StepUsageView:
    step_id: int
    index: int
    label: str
    attempt: int
    state: str
    native_state: str | None
    alloc_cpus: int | None
    elapsed_s: int | None
    core_seconds: float
    cpu_seconds: float | None
    max_rss_kb: int | None
    req_mem_kb: int | None
    cpu_efficiency: float | None
    memory_efficiency: float | None
    recorded_at: datetime


def calculation_usage(s: Session, viewer: Actor, calc_id: int) -> list[StepUsageView]:
    """Per step attempt, with ``seff``-style efficiencies (the owner, moderators, admins)."""
    from hpcgate.services.calculations import get_calculation

    calc = get_calculation(s, calc_id)
    require(Action.USAGE_READ, viewer, Owned(calc.owner_id), message="not your calculation")
    rows: Sequence[tuple[StepUsage, Step]] = s.execute(
        select(StepUsage, Step)
        .join(Step, Step.id == StepUsage.step_id)
        .where(StepUsage.calculation_id == calc_id)
        .order_by(Step.index, StepUsage.attempt)
    ).all()
    return [
        StepUsageView(
            step_id=u.step_id,
            index=st.index,
            label=st.label,
            attempt=u.attempt,
            state=u.state,
            native_state=u.native_state,
            alloc_cpus=u.alloc_cpus,
            elapsed_s=u.elapsed_s,
            core_seconds=u.core_seconds,
            cpu_seconds=u.cpu_seconds,
            max_rss_kb=u.max_rss_kb,
            req_mem_kb=u.req_mem_kb,
            cpu_efficiency=math.ratio(u.cpu_seconds, u.core_seconds),
            memory_efficiency=math.memory_efficiency(u.max_rss_kb, u.req_mem_kb),
            recorded_at=u.recorded_at,
        )
        for u, st in rows
    ]
