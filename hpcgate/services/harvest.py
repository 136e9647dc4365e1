"""Apply what a harvest observed (by the worker or reported by an agent) to the database.

The mapping from observations to our state machines lives here, once, for both modes:
transitions go through ``transition_step``; a failed or invalid step cancels its queued
descendants (durably, ``cancel_pending``); a job unknown for N ticks becomes LOST and
notifies; extracted data and validation reports are stored; the calculation's own state
follows its steps.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from hpcgate.db.base import table_of
from hpcgate.db.models import (
    ArrayTask,
    Calculation,
    Cluster,
    ExtractedResult,
    HeartbeatSample,
    Step,
    StepEdge,
)
from hpcgate.db.models.telemetry import CLUSTER_METRICS
from hpcgate.domain.states import (
    FAILED_STEP_STATES,
    CalculationState,
    StepState,
    calculation_outcome,
    can_transition_step,
    transition_calculation,
)
from hpcgate.engine.work import ActiveStep, ClusterSample, StepObservation
from hpcgate.services.events import calculation_event, cluster_event
from hpcgate.settings import Settings

log = logging.getLogger(__name__)

ACTIVE = (StepState.SUBMITTING, StepState.QUEUED, StepState.RUNNING, StepState.LOST)
TASK_SETTLED = (StepState.FINISHED, StepState.INVALID, StepState.FAILED, StepState.CANCELLED)
_TASK_OBS = {
    StepState.FINISHED: "finished",
    StepState.INVALID: "invalid",
    StepState.FAILED: "failed",
    StepState.CANCELLED: "cancelled",
}
_OBS_TO_STATE = {
    "queued": StepState.QUEUED,
    "running": StepState.RUNNING,
    "finished": StepState.FINISHED,
    "invalid": StepState.INVALID,
    "failed": StepState.FAILED,
    "cancelled": StepState.CANCELLED,
}


_st, _tasks = table_of(Step), table_of(ArrayTask)
# An agent's every pull runs this; built once (Core: cache key memoised, rows as tuples).
# One query answers both "what to observe" and "what to cancel"; the OR is a BitmapOr of
# ix_steps_cluster_state and the partial ix_steps_cancel_pending.
_WATCHED = (
    select(
        _st.c.id,
        _st.c.calculation_id,
        _st.c.scheduler_job_id,
        _st.c.workdir,
        _st.c.state,
        _st.c.array_size,
        _st.c.unknown_ticks,
        _st.c.cancel_pending,
    )
    .where(
        _st.c.cluster_id == bindparam("cluster_id"),
        _st.c.scheduler_job_id.is_not(None),
        or_(_st.c.state.in_(ACTIVE), _st.c.cancel_pending.is_(True)),
    )
    .order_by(_st.c.id)
)
_SETTLED_TASKS = select(_tasks.c.step_id, _tasks.c.task_index, _tasks.c.state).where(
    _tasks.c.step_id.in_(bindparam("step_ids", expanding=True)),
    _tasks.c.state.in_(TASK_SETTLED),
)


@dataclass(frozen=True)
class WatchedSteps:
    """A cluster's steps the scheduler may still hold, and the jobs waiting to be cancelled."""

    active: list[ActiveStep]
    cancellations: list[tuple[int, str]]  # (step id, scheduler job id)


def watched_steps(s: Session, cluster_id: int) -> WatchedSteps:
    """Only the columns the harvester needs: a step's ``spec`` carries its input files."""
    conn = s.connection()
    rows = conn.execute(_WATCHED, {"cluster_id": cluster_id}).all()
    active = [r for r in rows if r.state in ACTIVE]
    settled: dict[int, list[tuple[int, str]]] = {}
    array_ids = [r.id for r in active if r.array_size]
    if array_ids:
        for step_id, index, state in conn.execute(_SETTLED_TASKS, {"step_ids": array_ids}):
            settled.setdefault(step_id, []).append((index, _TASK_OBS[state]))
    return WatchedSteps(
        active=[
            ActiveStep(
                settled_tasks=tuple(sorted(settled.get(r.id, []))),
                step_id=r.id,
                calculation_id=r.calculation_id,
                scheduler_job_id=r.scheduler_job_id or "",
                workdir=r.workdir or "",
                state=r.state.value,
                array_size=r.array_size,
                unknown_ticks=r.unknown_ticks,
            )
            for r in active
        ],
        cancellations=[(int(r.id), r.scheduler_job_id or "") for r in rows if r.cancel_pending],
    )


def apply_observations(
    s: Session,
    cluster_id: int,
    observations: Sequence[StepObservation],
    *,
    lost_after: int,
    settings: Settings,
) -> list[str]:
    """Apply one tick's observations; return scheduler ids the dispatcher must now cancel."""
    now = datetime.now(UTC)
    touched: set[int] = set()
    settled: set[int] = set()  # calculations with a step that ended this tick
    for obs in observations:
        step = s.get(Step, obs.step_id, with_for_update=True)
        if step is None or step.cluster_id != cluster_id or step.state not in ACTIVE:
            continue  # stale report (e.g. the user cancelled meanwhile)
        touched.add(step.calculation_id)
        _record_sample(s, step, obs, now)
        if obs.state == "unknown":
            step.unknown_ticks += 1
            if step.unknown_ticks >= lost_after and step.state is not StepState.LOST:
                _move(
                    step, StepState.LOST, f"unknown to the scheduler for {step.unknown_ticks} polls"
                )
                calc = s.get(Calculation, step.calculation_id)
                if calc is not None:
                    calculation_event(
                        s,
                        calc,
                        "lost",
                        f"step {step.index} ({step.label}) is lost",
                        level="error",
                        settings=settings,
                    )
            continue
        step.unknown_ticks = 0
        target = _OBS_TO_STATE.get(obs.state)
        if target is None:
            log.warning("ignoring observation with state %r for step %s", obs.state, step.id)
            continue
        step.native_state = (obs.native_state or step.native_state or "")[:64] or None
        if obs.exit_code is not None:
            step.exit_code = obs.exit_code
        if obs.tasks:
            by_index = {
                t.task_index: t
                for t in s.scalars(select(ArrayTask).where(ArrayTask.step_id == step.id))
            }
            for task_obs in obs.tasks:
                _apply_task(s, step, by_index.get(task_obs.task_index), task_obs)
        if target is step.state:
            continue
        if target is StepState.RUNNING and step.started_at is None:
            step.started_at = now
        if target in (StepState.FINISHED, StepState.INVALID, StepState.FAILED, StepState.CANCELLED):
            step.finished_at = now
            settled.add(step.calculation_id)
            _store_results(s, step, obs)
        if not can_transition_step(step.state, target):
            # e.g. QUEUED seen while LOST: stay LOST until a real outcome is seen.
            if not (step.state is StepState.LOST and target is StepState.QUEUED):
                log.warning("step %s: ignoring %s -> %s", step.id, step.state, target)
            continue
        _move(step, target, obs.reason)
        if target is StepState.FINISHED:
            _move(step, StepState.HARVESTED, None)
    cancels: list[str] = []
    for calc_id in sorted(touched):
        cancels += _settle_calculation(s, calc_id, now, settings, calc_id in settled)
    return cancels


def _move(step: Step, target: StepState, reason: str | None) -> None:
    if can_transition_step(step.state, target):
        step.state = target
        if reason:
            step.state_reason = reason[:4000]


def _apply_task(s: Session, step: Step, task: ArrayTask | None, obs: Any) -> None:
    if task is None:
        return
    target = _OBS_TO_STATE.get(obs.state)
    if target is not None and target is not task.state and can_transition_step(task.state, target):
        task.state = target
    elif target is not None and task.state is StepState.PLANNED:
        task.state = target  # tasks have no SUBMITTING phase of their own
    task.native_state = obs.native_state
    task.exit_code = obs.exit_code
    task.state_reason = obs.reason
    if obs.validation is not None or obs.extracted is not None:
        _upsert_result(s, step.id, obs.task_index, "validation", obs.validation)
        _store_extract(s, step.id, obs.task_index, obs.extracted)


def _store_results(s: Session, step: Step, obs: StepObservation) -> None:
    _upsert_result(s, step.id, -1, "validation", obs.validation)
    _store_extract(s, step.id, -1, obs.extracted)
    _upsert_result(
        s,
        step.id,
        -1,
        "accounting",
        {
            "exit_code": obs.exit_code,
            "native_state": obs.native_state,
            "cpu_time_s": obs.cpu_time_s,
            "max_rss_kb": obs.max_rss_kb,
            "elapsed_s": obs.elapsed_s,
        },
    )


def _store_extract(s: Session, step_id: int, task_index: int, doc: dict[str, Any] | None) -> None:
    """An ``extract.json`` document: one row per analysis, plus the per-analysis errors."""
    if not doc:
        return
    analyses = doc.get("analyses")
    if isinstance(analyses, dict):
        for name, data in analyses.items():
            _upsert_result(s, step_id, task_index, f"analysis:{name}", data)
        if doc.get("errors"):
            _upsert_result(s, step_id, task_index, "extract_errors", doc["errors"])
    else:
        _upsert_result(s, step_id, task_index, "extract", doc)


def _upsert_result(s: Session, step_id: int, task_index: int, kind: str, data: Any) -> None:
    if data is None:
        return
    payload = data if isinstance(data, dict) else {"value": data}
    stmt = insert(ExtractedResult).values(
        step_id=step_id, task_index=task_index, kind=kind[:100], data=payload
    )
    s.execute(
        stmt.on_conflict_do_update(
            index_elements=["step_id", "task_index", "kind"], set_={"data": stmt.excluded.data}
        )
    )


def _record_sample(s: Session, step: Step, obs: StepObservation, now: datetime) -> None:
    if obs.cpu_time_s is None and obs.max_rss_kb is None:
        return
    s.add(
        HeartbeatSample(
            ts=now,
            cluster_id=step.cluster_id,
            step_id=step.id,
            scope="step",
            cpu_time_s=obs.cpu_time_s,
            max_rss_kb=obs.max_rss_kb,
        )
    )


def _descendants(s: Session, step_ids: set[int]) -> set[int]:
    found: set[int] = set()
    frontier = set(step_ids)
    while frontier:
        children = set(s.scalars(select(StepEdge.child_id).where(StepEdge.parent_id.in_(frontier))))
        frontier = children - found
        found |= children
    return found


def _settle_calculation(
    s: Session, calc_id: int, now: datetime, settings: Settings, step_ended: bool = False
) -> list[str]:
    calc = s.get(Calculation, calc_id, with_for_update=True)
    if calc is None:
        return []
    steps = list(s.scalars(select(Step).where(Step.calculation_id == calc_id)))
    cancels: list[str] = []
    failed = {st.id for st in steps if st.state in (StepState.FAILED, StepState.INVALID)}
    if failed:
        doomed = _descendants(s, failed)
        for st in steps:
            if st.id in doomed and st.state in (StepState.PLANNED, *ACTIVE):
                if st.scheduler_job_id and not st.cancel_pending:
                    st.cancel_pending = True
                    cancels.append(st.scheduler_job_id)
                _move(st, StepState.CANCELLED, "a step it depends on did not succeed")
    if calc.state in (CalculationState.SUBMITTED,) and any(
        st.state in (StepState.RUNNING, StepState.FINISHED, StepState.HARVESTED) for st in steps
    ):
        calc.state = transition_calculation(calc.state, CalculationState.RUNNING)
    outcome = calculation_outcome([st.state for st in steps])
    if outcome is None or calc.state not in (CalculationState.SUBMITTED, CalculationState.RUNNING):
        if step_ended and calc.configuration.get("kind") == "transiesta":
            s.flush()
            _compute_analyses(s, calc)  # a ladder's I-V grows as its points arrive
        return cancels
    if outcome is CalculationState.CANCELLED:
        outcome = CalculationState.FAILED  # cancellations not asked for by a user are failures
    calc.state = transition_calculation(calc.state, outcome)
    calc.finished_at = now
    if outcome is CalculationState.COMPLETED:
        _compute_analyses(s, calc)
        calculation_event(
            s,
            calc,
            "finished",
            "all steps converged; the report is ready",
            level="info",
            settings=settings,
        )
    else:
        bad = next(
            (
                st
                for st in sorted(steps, key=lambda x: x.index)
                if st.state in FAILED_STEP_STATES and st.state is not StepState.CANCELLED
            ),
            None,
        )
        reason = (
            f"step {bad.index} ({bad.label}): {bad.state_reason or bad.state.value}"
            if bad
            else "a step did not succeed"
        )
        calc.state_reason = reason[:4000]
        if calc.configuration.get("kind") == "transiesta":
            s.flush()
            _compute_analyses(s, calc)  # the I-V of the points that did converge (partial)
        event = "validation_failed" if bad and bad.state is StepState.INVALID else "error"
        calculation_event(s, calc, event, reason, level="error", settings=settings)
    return cancels


def _compute_analyses(s: Session, calc: Calculation) -> None:
    """Central half of the analyses; failures are recorded on the result, never raised."""
    if not calc.analyses:
        return
    try:
        from hpcgate.services.analysis_results import compute_for_calculation
    except ImportError:
        return
    try:
        with s.begin_nested():  # a failure must not poison the harvest's transaction
            compute_for_calculation(s, calc)
    except Exception:
        log.exception("computing analyses of calculation %s failed", calc.id)


_hb, _cl = table_of(HeartbeatSample), table_of(Cluster)
_SAMPLE_COLUMNS = ("ts", "cluster_id", "scope", "node", *CLUSTER_METRICS, "sample_key")
# Built once: every agent sends a batch every 30 s.
_INSERT_SAMPLE = (
    insert(_hb)
    .values({c: bindparam(c) for c in _SAMPLE_COLUMNS})
    .on_conflict_do_nothing(index_elements=["sample_key"])
    .returning(_hb.c.id)
)
_INSERT_NODES = insert(_hb)
# One atomic UPDATE instead of SELECT ... FOR UPDATE then UPDATE: concurrent batches of one
# cluster (two API processes) still end at the latest timestamp. updated_at tracks
# configuration, not liveness.
_HEARD_FROM = (
    update(_cl)
    .where(_cl.c.id == bindparam("cluster_id"))
    .values(
        last_heartbeat_at=func.greatest(
            func.coalesce(_cl.c.last_heartbeat_at, bindparam("ts")), bindparam("ts")
        ),
        online=True,
        updated_at=_cl.c.updated_at,
    )
)


def record_cluster_sample(s: Session, cluster_id: int, sample: ClusterSample) -> bool:
    """Store one heartbeat (idempotent by ``sample_key``); returns False for a duplicate.

    The caller marks the cluster heard from (``mark_heard``) once per batch.
    """
    ts = datetime.fromisoformat(sample.ts)
    totals = {"cpus_allocated": 0, "cpus_total": 0, "memory_free_mb": 0, "memory_total_mb": 0}
    loads: list[float] = []
    for node in sample.nodes:
        totals["cpus_allocated"] += int(node.get("cpus_allocated") or 0)
        totals["cpus_total"] += int(node.get("cpus_total") or 0)
        totals["memory_free_mb"] += int(node.get("memory_free_mb") or 0)
        totals["memory_total_mb"] += int(node.get("memory_total_mb") or 0)
        if node.get("cpu_load") is not None:
            loads.append(float(node["cpu_load"]))
    conn = s.connection()
    row = {
        "ts": ts,
        "cluster_id": cluster_id,
        "scope": "cluster",
        "node": None,
        "sample_key": sample.sample_key[:128],
        "cpu_load": sum(loads) if loads else None,
        "queue_depth": sample.queue_depth,
        "running_jobs": sample.running_jobs,
        **totals,
    }
    inserted = conn.execute(_INSERT_SAMPLE, row).first() is not None
    if inserted and sample.nodes:
        conn.execute(  # one executemany, not an ORM object per node
            _INSERT_NODES,
            [
                {
                    "ts": ts,
                    "cluster_id": cluster_id,
                    "scope": "node",
                    "node": str(node.get("name"))[:200],
                    "cpu_load": node.get("cpu_load"),
                    "cpus_allocated": node.get("cpus_allocated"),
                    "cpus_total": node.get("cpus_total"),
                    "memory_free_mb": node.get("memory_free_mb"),
                    "memory_total_mb": node.get("memory_total_mb"),
                }
                for node in sample.nodes
            ],
        )
    return inserted


def mark_heard(s: Session, cluster_id: int, latest: datetime) -> None:
    """The cluster is online and was last heard from at ``latest`` (or later)."""
    s.connection().execute(_HEARD_FROM, {"cluster_id": cluster_id, "ts": latest})


def mark_offline_clusters(s: Session, offline_after_s: float, settings: Settings) -> list[str]:
    now = datetime.now(UTC)
    names = []
    for cluster in s.scalars(
        select(Cluster).where(Cluster.online.is_(True)).with_for_update(skip_locked=True)
    ):
        last = cluster.last_heartbeat_at
        if last is None or (now - last).total_seconds() > offline_after_s:
            cluster.online = False
            names.append(cluster.name)
            cluster_event(
                s,
                cluster,
                "cluster_offline",
                f"no heartbeat since {last.isoformat() if last else 'ever'}",
                settings=settings,
            )
    return names
