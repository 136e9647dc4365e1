"""API benchmarks beside plain SQL in the same run (prints figures; asserts nothing).

1. Heartbeat ingest through ``POST /agent/heartbeats`` (batches of B samples, 4 nodes each,
   one agent, sequential) against the same rows inserted with plain SQL ``executemany``.
2. The calculation list with 100,000 rows: see ``bench/bench_dashboard.py`` (p50/p99 of the
   list endpoint, filtered and paginated, beside the same queries in plain SQL).

Usage: .venv/bin/python bench/bench_api.py [--samples 2000] [--batch 50]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import text
from sqlalchemy.orm import Session

from hpcgate.api.app import create_app
from hpcgate.db.models import Cluster
from hpcgate.db.models.clusters import AccessMode
from hpcgate.domain.access import ApiKeyOwner
from hpcgate.services.api_keys import create_api_key
from tests.helpers.engine_env import engine_env
from tests.helpers.live_api import live_server


def sample(i: int, t0: datetime) -> dict[str, object]:
    return {
        "ts": (t0 + timedelta(seconds=30 * i)).isoformat(),
        "queue_depth": i % 7,
        "running_jobs": i % 5,
        "sample_key": uuid.uuid4().hex,
        "nodes": [
            {"name": f"n{n}", "state": "mixed", "cpu_load": 1.0 + n, "cpus_allocated": 4,
             "cpus_total": 8, "memory_free_mb": 2000, "memory_total_mb": 4096}
            for n in range(4)
        ],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=50)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp, engine_env(Path(tmp), "hpcgate_apibench") as env:
        with Session(env.engine) as s:
            c1 = Cluster(name="api", scheduler="slurm", access_mode=AccessMode.AGENT,
                         scratch_root="/s")
            c2 = Cluster(name="sql", scheduler="slurm", access_mode=AccessMode.AGENT,
                         scratch_root="/s")
            s.add_all([c1, c2])
            s.flush()
            api_cluster, sql_cluster = c1.id, c2.id
            _, key = create_api_key(s, owner_kind=ApiKeyOwner.CLUSTER, name="k",
                                    cluster_id=api_cluster)
        t0 = datetime.now(UTC)
        samples = [sample(i, t0) for i in range(args.samples)]
        app = create_app(env.settings, engine=env.engine)
        with live_server(app) as base, httpx.Client(base_url=base,
                                                    headers={"X-API-Key": key}) as client:
            start = time.perf_counter()
            for i in range(0, len(samples), args.batch):
                r = client.post("/agent/heartbeats", json={"samples": samples[i:i + args.batch]})
                r.raise_for_status()
            api_s = time.perf_counter() - start
        rows = []
        for smp in samples:
            rows.append({"ts": smp["ts"], "c": sql_cluster, "scope": "cluster", "node": None,
                         "load": 10.0, "qd": smp["queue_depth"], "key": uuid.uuid4().hex})
            for n in smp["nodes"]:  # type: ignore[union-attr]
                rows.append({"ts": smp["ts"], "c": sql_cluster, "scope": "node",
                             "node": n["name"], "load": n["cpu_load"], "qd": None, "key": None})
        start = time.perf_counter()
        with env.engine.begin() as conn:
            for i in range(0, len(rows), args.batch * 5):
                conn.execute(text(
                    "INSERT INTO heartbeat_samples (ts, cluster_id, scope, node, cpu_load, "
                    "queue_depth, sample_key) VALUES (:ts, :c, :scope, :node, :load, :qd, :key)"),
                    rows[i:i + args.batch * 5])
        sql_s = time.perf_counter() - start
        print(f"heartbeat ingest, {args.samples} samples (x5 rows: cluster + 4 nodes), "
              f"batches of {args.batch}:")
        print(f"  API  POST /agent/heartbeats : {args.samples / api_s:8.0f} samples/s "
              f"({api_s:.2f} s)")
        print(f"  plain SQL executemany      : {args.samples / sql_s:8.0f} samples/s "
              f"({sql_s:.2f} s)")
        print(f"  ratio API / SQL time       : {api_s / sql_s:8.1f}x")


if __name__ == "__main__":
    main()
