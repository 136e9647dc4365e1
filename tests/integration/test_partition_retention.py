"""Raw partition samples (every user's queue per partition) follow ``telemetry.raw_days``:
the retention run deletes those older than the raw window (real PostgreSQL), keeps the
others, and the telemetry series reads what is left."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert, select

from hpcgate.db.models import PartitionSample
from hpcgate.db.models.clusters import AccessMode
from hpcgate.db.session import session_scope
from hpcgate.services.cluster_telemetry import cluster_telemetry
from hpcgate.services.telemetry_retention import raw_cutoff, roll_up
from hpcgate.settings import TelemetrySettings
from tests.helpers.engine_env import EngineEnv, engine_env

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 7, 12, 0, 10, tzinfo=UTC)
POLICY = TelemetrySettings(raw_days=1, rollup_bucket_s=3600, rollup_days=30)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, postgres_available: str) -> Iterator[EngineEnv]:
    with engine_env(tmp_path_factory.mktemp("pretention"), "hpcgate_pretention") as e:
        yield e


def test_partition_samples_past_the_raw_window_are_deleted(env: EngineEnv, tmp_path: Path) -> None:
    cid = env.add_cluster(f"pr-{uuid.uuid4().hex[:8]}", scheduler="local",
                          access_mode=AccessMode.LOCAL, scratch_root=str(tmp_path),
                          queues={"default": "local"})  # fmt: skip
    times = [NOW - timedelta(minutes=10 * i) for i in range(3 * 24 * 6)]  # three days
    with session_scope(env.factory) as s:
        s.execute(insert(PartitionSample), [
            {"ts": ts, "cluster_id": cid, "partition": part, "pending": i % 7, "running": i % 3}
            for i, ts in enumerate(times) for part in ("debug", "long")
        ])  # fmt: skip
    cutoff = raw_cutoff(POLICY, NOW)
    run = roll_up(env.factory, POLICY, now=NOW)
    kept = [ts for ts in times if ts >= cutoff]
    assert run.partition_samples_deleted == 2 * (len(times) - len(kept))
    with session_scope(env.factory) as s:
        left = list(s.scalars(select(PartitionSample.ts).where(PartitionSample.cluster_id == cid)))
    assert sorted(left) == sorted(kept * 2)
    assert min(left) >= cutoff
    again = roll_up(env.factory, POLICY, now=NOW)  # a second run changes nothing
    assert again.partition_samples_deleted == 0
    with session_scope(env.factory) as s:
        found = cluster_telemetry(s, cid, NOW - timedelta(days=3), NOW + timedelta(seconds=1), 72)
    assert found.sampled_at == NOW
    assert {p["partition"] for p in found.partitions} == {"debug", "long"}
    assert min(pt["ts"] for pt in found.series) >= cutoff - timedelta(hours=1)
