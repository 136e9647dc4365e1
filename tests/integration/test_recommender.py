"""The walltime/memory recommender on a recorded history in the real PostgreSQL test database.

The history is synthetic but physically shaped (``tests/helpers/recommender_history.py``):
finished SIESTA steps with their real fdf inputs, elapsed times (``started_at`` to
``finished_at``) and MaxRSS samples, exactly as the harvest stores them.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session

from hpcgate.db.models import Cluster, QueueMapping
from hpcgate.db.models.clusters import AccessMode
from hpcgate.db.models.usage import StepUsage
from hpcgate.db.models.users import User
from hpcgate.domain.access import Role
from hpcgate.services.recommender import history, service
from hpcgate.services.recommender.service import RecommendationRequest, recommend
from hpcgate.settings import Settings
from tests.helpers.recommender_history import fdf_text, store_history, synthetic_runs

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    service.clear_cache()  # each test's history lives in its own rolled-back transaction


def _setup(session: Session) -> tuple[User, Cluster]:
    user = User(email="recommender@example.org", password_hash="x", role=Role.USER)
    cluster = Cluster(
        name="recommender-cluster", access_mode=AccessMode.LOCAL, scratch_root="/tmp/x"
    )
    session.add_all([user, cluster])
    session.flush()
    for name in ("batch", "old"):
        session.add(
            QueueMapping(
                cluster_id=cluster.id, logical_queue=name, partition=name, max_walltime_s=86_400
            )
        )
    session.add(
        QueueMapping(cluster_id=cluster.id, logical_queue="short", partition="short",
                     max_walltime_s=1800)
    )  # fmt: skip
    session.flush()
    session.refresh(cluster)
    return user, cluster


def _ask(
    cluster: Cluster, fdf: str, queue: str = "batch", code: str = "siesta", **res: int
) -> RecommendationRequest:
    config: dict[str, Any] = {
        "kind": "single",
        "inputs": {"input.fdf" if code == "siesta" else "pw.in": fdf},
        "resources": {"tasks": 1, **res},
    }
    return RecommendationRequest(cluster.id, queue, code, config)


def test_proposal_tracks_the_history(db_session: Session, settings: Settings) -> None:
    user, cluster = _setup(db_session)
    store_history(db_session, user.id, cluster.id, synthetic_runs(120, seed=3))
    small = recommend(db_session, _ask(cluster, fdf_text(4, (1, 1, 1), 100, 1, 0)), settings)
    big = recommend(db_session, _ask(cluster, fdf_text(48, (4, 4, 2), 200, 4, 0)), settings)
    for rec in (small, big):
        assert rec.evidence.source == "model"
        assert rec.p50_walltime_s is not None
        assert rec.p90_walltime_s is not None
        assert rec.p90_walltime_s >= rec.p50_walltime_s
        assert rec.walltime_s >= rec.p90_walltime_s  # p90 with the safety margin, rounded up
        assert rec.memory_mb is not None
        assert rec.p90_memory_mb is not None
        assert rec.memory_mb >= rec.p90_memory_mb
    assert big.p50_walltime_s
    assert small.p50_walltime_s
    assert big.p50_walltime_s > 5 * small.p50_walltime_s  # bigger systems run longer
    assert big.p90_memory_mb
    assert small.p90_memory_mb
    assert big.p90_memory_mb > small.p90_memory_mb
    ev = big.evidence
    assert ev.history_runs == 120
    assert ev.heldout_runs == 24
    assert ev.coverage_p90_walltime is not None
    assert ev.coverage_p90_walltime >= 0.75
    assert ev.heldout_mae_walltime_s is not None
    assert ev.heldout_mae_walltime_s > 0
    # more CPUs, same inputs: shorter
    fast = recommend(db_session, _ask(cluster, fdf_text(48, (4, 4, 2), 200, 4, 0), tasks=8),
                     settings)  # fmt: skip
    assert fast.p50_walltime_s is not None
    assert fast.p50_walltime_s < big.p50_walltime_s


def test_similar_runs_count_same_place_and_near_features(
    db_session: Session, settings: Settings
) -> None:
    user, cluster = _setup(db_session)
    target = synthetic_runs(1, seed=6, atoms=24)[0]
    twins = [replace(target, partition="batch", resources={"tasks": 2})] * 6
    elsewhere = [replace(target, partition="old", resources={"tasks": 2})] * 3
    store_history(db_session, user.id, cluster.id, synthetic_runs(30, seed=5) + twins + elsewhere)
    rec = recommend(db_session, _ask(cluster, target.fdf, tasks=2), settings)
    assert rec.evidence.source == "model"
    assert 6 <= rec.evidence.similar_runs < 30  # the twins, not the other partition's copies
    far = recommend(db_session, _ask(cluster, fdf_text(2, (1, 1, 1), 100, 1, 0), tasks=8), settings)
    assert far.evidence.similar_runs < rec.evidence.similar_runs


def test_queue_limit_caps_the_walltime(db_session: Session, settings: Settings) -> None:
    user, cluster = _setup(db_session)
    runs = synthetic_runs(40, seed=4, scale=50.0)  # long runs
    store_history(db_session, user.id, cluster.id, runs)
    store_history(
        db_session, user.id, cluster.id,
        [r.__class__(r.fdf, r.resources, "short", r.elapsed_s, r.max_rss_mb) for r in runs[:8]],
    )  # fmt: skip
    rec = recommend(
        db_session, _ask(cluster, fdf_text(64, (4, 4, 4), 300, 4, 10), "short"), settings
    )
    assert rec.evidence.source == "model"
    assert rec.walltime_s == 1800
    assert rec.evidence.capped_by_queue


def test_without_history_the_queue_default_answers(db_session: Session, settings: Settings) -> None:
    user, cluster = _setup(db_session)
    rec = recommend(db_session, _ask(cluster, "&system\n nat=2\n/\n", code="qe"), settings)
    assert rec.evidence.source == "queue_default"
    assert rec.walltime_s == 86_400
    assert rec.p90_walltime_s is None
    assert "the model needs" in rec.evidence.reason
    # history elsewhere, none on this partition: still the queue's default
    store_history(db_session, user.id, cluster.id, synthetic_runs(30, seed=1))
    db_session.execute(
        update(QueueMapping)
        .where(QueueMapping.cluster_id == cluster.id, QueueMapping.logical_queue == "short")
        .values(max_walltime_s=None)
    )
    db_session.expire_all()
    rec = recommend(
        db_session, _ask(cluster, fdf_text(4, (1, 1, 1), 100, 1, 0), "short", walltime_s=900),
        settings,
    )  # fmt: skip
    assert rec.evidence.source == "queue_default"
    assert rec.walltime_s == 900  # no queue limit: what was asked
    assert "partition 'short'" in rec.evidence.reason


def test_usage_source_switches_to_step_usage_in_one_line(
    db_session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    user, cluster = _setup(db_session)
    (step,) = store_history(db_session, user.id, cluster.id, synthetic_runs(1, seed=2))
    (now,) = history.load_runs(db_session, "siesta")[-1:]
    assert now.step_id == step.id
    db_session.add_all(
        StepUsage(step_id=step.id, attempt=attempt, calculation_id=step.calculation_id,
                  cluster_id=cluster.id, user_id=user.id, core_seconds=1.0, elapsed_s=elapsed,
                  max_rss_kb=rss, state="COMPLETED")
        for attempt, elapsed, rss in ((1, 10, 1024), (2, 777, 2048 * 1024))
    )  # fmt: skip
    db_session.flush()
    monkeypatch.setattr(history, "USAGE", history.usage_from_step_usage)
    (switched,) = [r for r in history.load_runs(db_session, "siesta") if r.step_id == step.id]
    assert (switched.elapsed_s, switched.max_rss_mb) == (777, 2048)  # the latest attempt
    assert switched.features == now.features
