"""Recommending a new calculation's walltime and memory (``POST /calculations/recommendation``).

The proposal is the model's p90 times a safety margin, rounded up (walltime to
:data:`WALLTIME_STEP_S`, memory to :data:`MEMORY_STEP_MB`) and capped by the queue's
walltime limit. Without enough history (fewer than :data:`~.model.MIN_RUNS` finished runs
of the code, or fewer than :data:`MIN_PLACE_RUNS` on the chosen cluster and partition) it
answers the queue's defaults and says so (``source: queue_default``).

Training is lazy and cached per database and code: a model is reused while no step of
the code has finished since, and retrained at most every :data:`RETRAIN_INTERVAL_S`
otherwise (a busy cluster finishes steps all the time). The request's own input files
are read in the parse pool, like every user input (``services/parse_pool.py``).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from hpcgate.codes.features import calculation_features, calculation_kind, feature_names
from hpcgate.codes.registry import get_plugin
from hpcgate.db.models import Cluster, QueueMapping
from hpcgate.errors import InvalidInput, NotFound
from hpcgate.services.parse_pool import get_pool
from hpcgate.services.recommender import history
from hpcgate.services.recommender.model import MIN_RUNS, Trained, predict, similar_runs, train
from hpcgate.settings import Settings

__all__ = ["Evidence", "Recommendation", "RecommendationRequest", "clear_cache", "recommend"]

SAFETY = 1.2
WALLTIME_STEP_S = 300
MEMORY_STEP_MB = 256
MIN_PLACE_RUNS = 5
RETRAIN_INTERVAL_S = 300.0
#: A queue without a walltime limit, and no walltime asked: an hour.
FALLBACK_WALLTIME_S = 3600


@dataclass(frozen=True)
class RecommendationRequest:
    cluster_id: int
    logical_queue: str
    code: str
    configuration: Mapping[str, Any]


@dataclass(frozen=True)
class Evidence:
    source: str  # "model" | "queue_default"
    reason: str
    similar_runs: int
    history_runs: int
    heldout_runs: int
    heldout_mae_walltime_s: float | None
    coverage_p90_walltime: float | None
    heldout_mae_memory_mb: float | None
    coverage_p90_memory: float | None
    capped_by_queue: bool


@dataclass(frozen=True)
class Recommendation:
    walltime_s: int
    memory_mb: int | None
    p50_walltime_s: int | None
    p90_walltime_s: int | None
    p50_memory_mb: int | None
    p90_memory_mb: int | None
    queue_max_walltime_s: int | None
    evidence: Evidence


@dataclass
class _Entry:
    model: Trained | None
    fingerprint: tuple[int, int]
    trained_at: float


_cache: dict[tuple[str, str], _Entry] = {}
_lock = threading.Lock()


def clear_cache() -> None:
    with _lock:
        _cache.clear()


def cached_model(session: Session, code: str) -> Trained | None:
    """The code's model: reused while nothing finished, retrained at most every interval."""
    key = (history.db_key(session), code)
    seen = history.fingerprint(session, code)
    with _lock:  # one training at a time; the others wait and reuse it
        entry = _cache.get(key)
        fresh = entry is not None and (
            entry.fingerprint == seen or time.monotonic() - entry.trained_at < RETRAIN_INTERVAL_S
        )
        if entry is not None and fresh:
            return entry.model
        model = train(history.load_runs(session, code), feature_names(code))
        _cache[key] = _Entry(model, seen, time.monotonic())
        return model


def _queue(session: Session, cluster_id: int, logical_queue: str) -> QueueMapping:
    cluster = session.get(Cluster, cluster_id)
    if cluster is None:
        raise NotFound(f"cluster {cluster_id} does not exist")
    for queue in cluster.queues:
        if queue.logical_queue == logical_queue:
            return queue
    known = ", ".join(sorted(q.logical_queue for q in cluster.queues)) or "none"
    raise InvalidInput(f"cluster {cluster.name} has no queue {logical_queue!r} (known: {known})")


def _round_up(value: float, step: int) -> int:
    return max(step, math.ceil(value / step) * step)


def proposed_walltime_s(p90_s: float, queue_max_s: int | None) -> tuple[int, bool]:
    """p90 x :data:`SAFETY`, rounded up to :data:`WALLTIME_STEP_S`, capped by the queue's
    limit; and whether the cap applied."""
    walltime = _round_up(p90_s * SAFETY, WALLTIME_STEP_S)
    if queue_max_s and walltime > queue_max_s:
        return queue_max_s, True
    return walltime, False


def proposed_memory_mb(p90_mb: float, values: Mapping[str, float]) -> int:
    """Per node (``--mem``): a task's p90 peak x tasks per node x :data:`SAFETY`, rounded up."""
    per_node = math.ceil(values.get("cpus", 1.0) / max(1.0, values.get("nodes", 1.0)))
    return _round_up(p90_mb * SAFETY * per_node, MEMORY_STEP_MB)


def _asked(configuration: Mapping[str, Any], key: str) -> int | None:
    res = configuration.get("resources")
    value = res.get(key) if isinstance(res, Mapping) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _fallback(
    queue: QueueMapping, configuration: Mapping[str, Any], reason: str, runs: int
) -> Recommendation:
    walltime = queue.max_walltime_s or _asked(configuration, "walltime_s") or FALLBACK_WALLTIME_S
    return Recommendation(
        walltime_s=walltime,
        memory_mb=_asked(configuration, "memory_mb"),
        p50_walltime_s=None,
        p90_walltime_s=None,
        p50_memory_mb=None,
        p90_memory_mb=None,
        queue_max_walltime_s=queue.max_walltime_s,
        evidence=Evidence(
            source="queue_default",
            reason=reason,
            similar_runs=0,
            history_runs=runs,
            heldout_runs=0,
            heldout_mae_walltime_s=None,
            coverage_p90_walltime=None,
            heldout_mae_memory_mb=None,
            coverage_p90_memory=None,
            capped_by_queue=False,
        ),
    )


def recommend(session: Session, req: RecommendationRequest, settings: Settings) -> Recommendation:
    """The proposal for a new calculation, with its evidence (or the queue's defaults)."""
    code = get_plugin(req.code).name
    if not isinstance(req.configuration, Mapping):
        raise InvalidInput("'configuration' must be an object")
    queue = _queue(session, req.cluster_id, req.logical_queue)
    pool = get_pool(settings.parse_workers, settings.parse_timeout_s)
    values = pool.run(calculation_features, code, dict(req.configuration))
    if code == "generic":
        return _fallback(queue, req.configuration, "a generic program's inputs are not read", 0)
    model = cached_model(session, code)
    if model is None:
        found = history.fingerprint(session, code)[0]
        return _fallback(
            queue,
            req.configuration,
            f"{found} finished {code} run(s) on record; the model needs {MIN_RUNS}",
            found,
        )
    place = (req.cluster_id, queue.partition)
    here = sum(1 for r in model.runs if (r.cluster_id, r.partition) == place)
    if here < MIN_PLACE_RUNS:
        return _fallback(
            queue,
            req.configuration,
            f"{here} {code} run(s) on this cluster's partition {queue.partition!r}; "
            f"the model needs {MIN_PLACE_RUNS} there",
            len(model.runs),
        )
    kind = calculation_kind(req.configuration, "device")
    return _proposal(model, values, kind, place, queue)


def _proposal(
    model: Trained,
    values: dict[str, float],
    kind: str,
    place: tuple[int, str],
    queue: QueueMapping,
) -> Recommendation:
    found = predict(model, values, kind, place)
    walltime, capped = proposed_walltime_s(found.p90_s, queue.max_walltime_s)
    memory = proposed_memory_mb(found.p90_mb, values) if found.p90_mb else None
    th, mh = model.time_heldout, model.memory_heldout
    return Recommendation(
        walltime_s=walltime,
        memory_mb=memory,
        p50_walltime_s=math.ceil(found.p50_s),
        p90_walltime_s=math.ceil(found.p90_s),
        p50_memory_mb=math.ceil(found.p50_mb) if found.p50_mb else None,
        p90_memory_mb=math.ceil(found.p90_mb) if found.p90_mb else None,
        queue_max_walltime_s=queue.max_walltime_s,
        evidence=Evidence(
            source="model",
            reason=f"p90 of {len(model.runs)} finished runs, x{SAFETY} safety margin",
            similar_runs=similar_runs(model, values, place),
            history_runs=len(model.runs),
            heldout_runs=th.runs if th else 0,
            heldout_mae_walltime_s=th.mae if th else None,
            coverage_p90_walltime=th.coverage_p90 if th else None,
            heldout_mae_memory_mb=mh.mae if mh else None,
            coverage_p90_memory=mh.coverage_p90 if mh else None,
            capped_by_queue=capped,
        ),
    )
