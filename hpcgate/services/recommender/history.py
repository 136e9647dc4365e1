"""The history the recommender learns from: finished steps, their inputs and their usage.

One row per finished step (not arrays: an array's elapsed time covers all its tasks):
its code, calculation kind, cluster and partition, the features of the inputs it ran with
(:func:`hpcgate.codes.features.step_features`), its elapsed time and its peak memory.

Usage comes from :data:`USAGE`, a subquery of ``(step_id, elapsed_s, max_rss_kb)``. Today
the elapsed time is ``Step.finished_at - Step.started_at`` and the peak memory the largest
``max_rss_kb`` of the step's harvested samples (raw and rolled up). When the ``step_usage``
table (sacct's Elapsed/MaxRSS per step) lands, ``USAGE = usage_from_step_usage`` is the
one-line switch (the table has landed; the switch waits until its rows cover the
history: steps harvested before it have none).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Subquery, func, select, union_all
from sqlalchemy.orm import Session

from hpcgate.codes.features import calculation_kind, step_features
from hpcgate.db.models import Calculation, Step
from hpcgate.db.models.telemetry import HeartbeatRollup, HeartbeatSample
from hpcgate.db.models.usage import StepUsage
from hpcgate.domain.states import StepState

__all__ = [
    "FINISHED",
    "USAGE",
    "Run",
    "fingerprint",
    "load_runs",
    "usage_from_step_usage",
    "usage_now",
]

#: Steps that ran to a normal end (their elapsed time is the run's, not a kill's).
FINISHED = (StepState.FINISHED, StepState.HARVESTED, StepState.CLEANED)
#: The most recent finished steps learnt from (older history ages out).
MAX_RUNS = 2000
_FEATURE_CACHE_SIZE = 50_000
#: Specs read per query: each holds a step's input files (up to 8 MiB), so few at a time.
_SPEC_CHUNK = 25
_features: dict[tuple[str, int], tuple[str, dict[str, float]]] = {}


@dataclass(frozen=True)
class Run:
    step_id: int
    finished_at: datetime
    cluster_id: int
    partition: str
    kind: str
    features: dict[str, float]
    elapsed_s: float
    max_rss_mb: float | None


def usage_now() -> Subquery:
    """Elapsed from the step's own timestamps, MaxRSS from its harvested samples."""
    peaks = union_all(
        select(HeartbeatSample.step_id, HeartbeatSample.max_rss_kb).where(
            HeartbeatSample.scope == "step", HeartbeatSample.max_rss_kb.is_not(None)
        ),
        select(HeartbeatRollup.step_id, HeartbeatRollup.max_rss_kb).where(
            HeartbeatRollup.scope == "step", HeartbeatRollup.max_rss_kb.is_not(None)
        ),
    ).subquery("peaks")
    peak = (
        select(peaks.c.step_id, func.max(peaks.c.max_rss_kb).label("max_rss_kb"))
        .group_by(peaks.c.step_id)
        .subquery("peak")
    )
    elapsed = func.extract("epoch", Step.finished_at - Step.started_at)
    return (
        select(
            Step.id.label("step_id"),
            elapsed.label("elapsed_s"),
            peak.c.max_rss_kb.label("max_rss_kb"),
        )
        .outerjoin(peak, peak.c.step_id == Step.id)
        .where(Step.started_at.is_not(None), Step.finished_at.is_not(None))
        .subquery("usage")
    )


def usage_from_step_usage() -> Subquery:
    """sacct's Elapsed and MaxRSS as the harvest recorded them (``step_usage``, the latest
    attempt of each step)."""
    latest = (
        select(
            StepUsage.step_id,
            StepUsage.elapsed_s,
            StepUsage.max_rss_kb,
            func.row_number()
            .over(partition_by=StepUsage.step_id, order_by=StepUsage.attempt.desc())
            .label("rank"),
        )
        .where(StepUsage.elapsed_s.is_not(None))
        .subquery("latest")
    )
    return (
        select(latest.c.step_id, latest.c.elapsed_s, latest.c.max_rss_kb)
        .where(latest.c.rank == 1)
        .subquery("usage")
    )


#: Where elapsed time and MaxRSS come from (see the module's docstring).
USAGE: Callable[[], Subquery] = usage_now


def _finished(code: str) -> Any:
    return (
        Step.state.in_(FINISHED),
        Step.array_size.is_(None),
        Step.finished_at.is_not(None),
        Calculation.code == code,
    )


def fingerprint(session: Session, code: str) -> tuple[int, int]:
    """Changes whenever a step of ``code`` finishes: (how many, the newest step id)."""
    row = session.execute(
        select(func.count(Step.id), func.coalesce(func.max(Step.id), 0))
        .join(Calculation, Calculation.id == Step.calculation_id)
        .where(*_finished(code))
    ).one()
    return int(row[0]), int(row[1])


def db_key(session: Session) -> str:
    """Which database a session talks to (caches are per database)."""
    return session.get_bind().engine.url.render_as_string(hide_password=True)


def _cached_features(session: Session, code: str, step_ids: list[int]) -> None:
    """Read the features of steps not seen before (their specs hold the input files)."""
    db = db_key(session)
    todo = [i for i in step_ids if (db, i) not in _features]
    if len(_features) + len(todo) > _FEATURE_CACHE_SIZE:
        _features.clear()
    for start in range(0, len(todo), _SPEC_CHUNK):
        chunk = todo[start : start + _SPEC_CHUNK]
        rows = session.execute(
            select(Step.id, Step.spec, Calculation.configuration)
            .join(Calculation, Calculation.id == Step.calculation_id)
            .where(Step.id.in_(chunk))
        )
        for step_id, spec, config in rows:
            spec = spec if isinstance(spec, dict) else {}
            config = config if isinstance(config, dict) else {}
            ladder = spec.get("ladder")
            role = ladder.get("role") if isinstance(ladder, dict) else None
            kind = calculation_kind(config, str(role) if role else None)
            _features[(db, step_id)] = (kind, step_features(code, spec, config))


def load_runs(session: Session, code: str, limit: int = MAX_RUNS) -> list[Run]:
    """The latest finished steps of ``code`` with their usage, oldest first."""
    usage = USAGE()
    rows = session.execute(
        select(
            Step.id,
            Step.finished_at,
            Step.cluster_id,
            Step.spec["queue"].astext,
            usage.c.elapsed_s,
            usage.c.max_rss_kb,
        )
        .join(Calculation, Calculation.id == Step.calculation_id)
        .join(usage, usage.c.step_id == Step.id)
        .where(*_finished(code), usage.c.elapsed_s > 0)
        .order_by(Step.finished_at.desc(), Step.id.desc())
        .limit(limit)
    ).all()
    _cached_features(session, code, [r[0] for r in rows])
    db = db_key(session)
    runs = []
    for step_id, finished_at, cluster_id, partition, elapsed, rss_kb in reversed(rows):
        kind, features = _features[(db, step_id)]
        runs.append(
            Run(
                step_id=step_id,
                finished_at=finished_at,
                cluster_id=cluster_id,
                partition=str(partition or ""),
                kind=kind,
                features=features,
                elapsed_s=float(elapsed),
                max_rss_mb=float(rss_kb) / 1024 if rss_kb else None,
            )
        )
    return runs
