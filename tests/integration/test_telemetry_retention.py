"""Telemetry retention on the real PostgreSQL: raw heartbeat and step samples older than the
raw retention are rolled up per bucket (gauges averaged, cumulative step metrics at their
maximum) and deleted; rollups past their own retention are deleted; a late sample merges
into its bucket; a second run changes nothing; the series endpoints read raw rows and
rollups alike.
"""

from __future__ import annotations

import math
import uuid
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select

from hpcgate.db.models import HeartbeatRollup, HeartbeatSample
from hpcgate.db.models.clusters import AccessMode
from hpcgate.db.session import session_scope
from hpcgate.services.series import cluster_heartbeats
from hpcgate.services.telemetry_retention import bucket_start, raw_cutoff, roll_up
from hpcgate.settings import TelemetrySettings
from tests.helpers.engine_env import EngineEnv, engine_env

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 7, 12, 0, 10, tzinfo=UTC)
POLICY = TelemetrySettings(raw_days=1, rollup_bucket_s=3600, rollup_days=30)
EVERY = timedelta(seconds=30)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, postgres_available: str) -> Iterator[EngineEnv]:
    with engine_env(tmp_path_factory.mktemp("retention"), "hpcgate_retention") as e:
        yield e


def _cluster_and_step(env: EngineEnv, tmp_path: Path) -> tuple[int, int]:
    cid = env.add_cluster(
        f"retention-{uuid.uuid4().hex[:8]}",
        scheduler="local",
        access_mode=AccessMode.LOCAL,
        scratch_root=str(tmp_path),
        queues={"default": "local"},
    )
    calc_id = env.create(
        name="retention",
        cluster_id=cid,
        logical_queue="default",
        code="generic",
        configuration={"kind": "single", "command": ["true"]},
    )
    (step,) = env.steps(calc_id)
    return cid, step.id


def _load(i: int) -> float:
    return 2.0 + math.sin(i / 7.0)  # varies within every bucket


def _samples(cid: int, step_id: int, start: datetime, end: datetime) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    ts, i = start, 0
    while ts < end:
        rows.append(
            dict(ts=ts, cluster_id=cid, scope="cluster", cpu_load=_load(i), cpus_total=8,
                 queue_depth=i % 5, running_jobs=i % 3)
        )  # fmt: skip
        rows.append(
            dict(ts=ts, cluster_id=cid, step_id=step_id, scope="step", cpu_time_s=float(i),
                 max_rss_kb=1000 + (i * 37) % 500)
        )  # fmt: skip
        ts, i = ts + EVERY, i + 1
    return rows


def _expected(rows: list[dict[str, object]], cutoff: datetime) -> dict[tuple[str, datetime], dict]:
    """What each bucket before the cutoff must hold, computed here from the raw rows."""
    groups: dict[tuple[str, datetime], list[dict[str, object]]] = defaultdict(list)
    for row in rows:
        ts = row["ts"]
        assert isinstance(ts, datetime)
        if ts < cutoff:
            groups[(str(row["scope"]), bucket_start(ts, POLICY.rollup_bucket_s))].append(row)
    out = {}
    for key, members in groups.items():
        if key[0] == "cluster":
            loads = [float(m["cpu_load"]) for m in members]  # type: ignore[arg-type]
            out[key] = {"samples": len(members), "cpu_load": sum(loads) / len(loads)}
        else:
            out[key] = {
                "samples": len(members),
                "cpu_time_s": max(float(m["cpu_time_s"]) for m in members),  # type: ignore[arg-type]
                "max_rss_kb": max(int(m["max_rss_kb"]) for m in members),  # type: ignore[call-overload]
            }
    return out


def test_old_samples_are_rolled_up_then_deleted(env: EngineEnv, tmp_path: Path) -> None:
    cid, step_id = _cluster_and_step(env, tmp_path)
    # Three days of 30 s samples (two raw-expired), plus a day 40 days back (rollup-expired).
    rows = _samples(cid, step_id, NOW - timedelta(days=3), NOW)
    ancient = _samples(cid, step_id, NOW - timedelta(days=40), NOW - timedelta(days=39))
    with session_scope(env.factory) as s:
        s.execute(insert(HeartbeatSample), rows + ancient)
    cutoff = raw_cutoff(POLICY, NOW)
    assert cutoff == bucket_start(NOW - timedelta(days=1), 3600)
    kept = sum(1 for r in rows if r["ts"] >= cutoff)  # type: ignore[operator]

    run = roll_up(env.factory, POLICY, now=NOW)

    expected = _expected(rows, cutoff)
    assert run.rolled_up == len(rows) - kept + len(ancient)
    assert run.rollups_deleted == 48  # the ancient day's 24 buckets, cluster and step
    with session_scope(env.factory) as s:
        raw = s.scalars(select(HeartbeatSample.ts).where(HeartbeatSample.cluster_id == cid)).all()
        assert len(raw) == kept  # old raw rows are gone
        assert min(raw) >= cutoff
        rollups = s.scalars(
            select(HeartbeatRollup).where(HeartbeatRollup.cluster_id == cid)
        ).all()
    assert {(r.scope, r.bucket_start) for r in rollups} == set(expected)
    for r in rollups:
        want = expected[(r.scope, r.bucket_start)]
        assert r.samples == want["samples"] == 120  # one hour of 30 s samples
        assert r.bucket_s == 3600
        if r.scope == "cluster":
            assert r.cpu_load == pytest.approx(want["cpu_load"])
            assert r.cpus_total == 8
        else:
            assert r.cpu_time_s == want["cpu_time_s"]
            assert r.max_rss_kb == want["max_rss_kb"]

    again = roll_up(env.factory, POLICY, now=NOW)
    assert (again.rolled_up, again.rollup_rows, again.rollups_deleted) == (0, 0, 0)


def test_a_late_sample_merges_into_its_bucket(env: EngineEnv, tmp_path: Path) -> None:
    cid, step_id = _cluster_and_step(env, tmp_path)
    start = NOW - timedelta(days=2)
    rows = _samples(cid, step_id, start, start + timedelta(hours=1))
    with session_scope(env.factory) as s:
        s.execute(insert(HeartbeatSample), rows)
    roll_up(env.factory, POLICY, now=NOW)
    # An agent's buffered heartbeat from that hour arrives after the bucket was rolled up.
    late = dict(ts=start + timedelta(minutes=5, seconds=1), cluster_id=cid, scope="cluster",
                cpu_load=50.0)  # fmt: skip
    with session_scope(env.factory) as s:
        s.execute(insert(HeartbeatSample), [late])
    run = roll_up(env.factory, POLICY, now=NOW)
    assert (run.rolled_up, run.rollup_rows) == (1, 1)
    loads = [float(r["cpu_load"]) for r in rows if r["scope"] == "cluster"] + [50.0]  # type: ignore[arg-type]
    with session_scope(env.factory) as s:
        (bucket,) = s.scalars(
            select(HeartbeatRollup).where(
                HeartbeatRollup.cluster_id == cid, HeartbeatRollup.scope == "cluster"
            )
        ).all()
        assert s.scalar(select(func.count()).where(HeartbeatSample.cluster_id == cid)) == 0
    assert bucket.samples == 121
    assert bucket.cpu_load == pytest.approx(sum(loads) / len(loads))


def test_series_read_rollups_and_raw_rows_alike(env: EngineEnv, tmp_path: Path) -> None:
    cid, step_id = _cluster_and_step(env, tmp_path)
    rows = _samples(cid, step_id, NOW - timedelta(days=2), NOW)
    with session_scope(env.factory) as s:
        s.execute(insert(HeartbeatSample), rows)
    since, until = bucket_start(NOW - timedelta(days=2), 3600), bucket_start(NOW, 3600)
    with session_scope(env.factory) as s:
        before = cluster_heartbeats(s, cid, since, until, points=48)
    roll_up(env.factory, POLICY, now=NOW)
    with session_scope(env.factory) as s:
        after = cluster_heartbeats(s, cid, since, until, points=48)
    assert before.bucket_s == after.bucket_s == 3600
    assert [p.ts for p in after.points] == [p.ts for p in before.points]
    assert len(after.points) == 48
    for old, new in zip(before.points, after.points, strict=True):
        for metric in ("cpu_load", "cpus_total", "queue_depth", "running_jobs"):
            assert new.values[metric] == pytest.approx(old.values[metric]), (old.ts, metric)
