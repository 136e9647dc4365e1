"""Load: N simulated agents (real HTTP clients) pull work and send heartbeats against ONE
API process (`hpcgate serve`, one uvicorn worker) on this 2-core machine.

Each agent has its own cluster and API key, and behaves like the real one at compressed
intervals: ``POST /agent/pull`` every PULL_S and a heartbeat batch every BEAT_S, plus
``GET /agent/active-steps`` with every pull. Prints throughput, p50/p99 latency per endpoint
and errors; the target from the reliability brief is p99 < 50 ms. Asserts nothing.

Usage: .venv/bin/python bench/bench_load_agents.py [--agents 200] [--seconds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy.orm import Session

from hpcgate.db.models import Cluster
from hpcgate.db.models.clusters import AccessMode
from hpcgate.db.models.users import ApiKeyOwner
from hpcgate.services.api_keys import create_api_key
from tests.helpers.engine_env import engine_env
from tests.helpers.live_api import free_port


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def agent(
    base: str,
    key: str,
    name: str,
    stop: float,
    pull_s: float,
    beat_s: float,
    lat: dict[str, list[float]],
    errors: dict[str, int],
) -> None:
    headers = {"X-API-Key": key}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=10) as client:
        next_pull = time.monotonic() + (hash(name) % 1000) / 1000 * pull_s
        next_beat = time.monotonic() + (hash(name[::-1]) % 1000) / 1000 * beat_s
        while time.monotonic() < stop:
            now = time.monotonic()
            if now >= next_pull:
                next_pull = now + pull_s
                for label, call in (
                    ("pull", client.post("/agent/pull", json={"agent": name})),
                    ("active-steps", client.get("/agent/active-steps")),
                ):
                    t0 = time.monotonic()
                    try:
                        r = await call
                        ok = r.status_code < 400
                    except httpx.HTTPError:
                        ok = False
                    lat[label].append(time.monotonic() - t0)
                    if not ok:
                        errors[label] += 1
            if now >= next_beat:
                next_beat = now + beat_s
                sample = {
                    "ts": datetime.now(UTC).isoformat(),
                    "queue_depth": 3,
                    "running_jobs": 2,
                    "sample_key": uuid.uuid4().hex,
                    "nodes": [
                        {
                            "name": f"{name}-n{i}",
                            "state": "mixed",
                            "cpu_load": 1.5,
                            "cpus_allocated": 4,
                            "cpus_total": 8,
                            "memory_free_mb": 2000,
                            "memory_total_mb": 4096,
                        }
                        for i in range(4)
                    ],
                }
                t0 = time.monotonic()
                try:
                    r = await client.post("/agent/heartbeats", json={"samples": [sample]})
                    ok = r.status_code < 400
                except httpx.HTTPError:
                    ok = False
                lat["heartbeats"].append(time.monotonic() - t0)
                if not ok:
                    errors["heartbeats"] += 1
            await asyncio.sleep(max(0.0, min(next_pull, next_beat) - time.monotonic()))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--agents", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--pull-s", type=float, default=10.0)  # the agent's defaults
    ap.add_argument("--beat-s", type=float, default=30.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp, engine_env(Path(tmp), "hpcgate_load") as env:
        keys = []
        with Session(env.engine) as s:
            for i in range(args.agents):
                cluster = Cluster(
                    name=f"load-{i}",
                    scheduler="slurm",
                    access_mode=AccessMode.AGENT,
                    scratch_root="/scratch",
                )
                s.add(cluster)
                s.flush()
                _, raw = create_api_key(
                    s, owner_kind=ApiKeyOwner.CLUSTER, name="k", cluster_id=cluster.id
                )
                keys.append(raw)
        port = free_port()
        envvars = {
            **{k: v for k, v in os.environ.items() if not k.startswith("HPCGATE_")},
            "HPCGATE_ENV": "test",
            "HPCGATE_DATABASE_URL": env.url,
            "HPCGATE_SECRET_KEY": "bench-secret-key-0123456789abcdef",
        }
        api_log = open(Path(tmp) / "api.log", "wb")  # noqa: SIM115
        api = subprocess.Popen(
            [sys.executable, "-m", "hpcgate.cli", "serve", "--port", str(port)],
            env=envvars,
            stdout=api_log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(100):
                try:
                    if httpx.get(base + "/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.2)
            lat: dict[str, list[float]] = defaultdict(list)
            errors: dict[str, int] = defaultdict(int)
            stop = time.monotonic() + args.seconds
            t0 = time.monotonic()

            async def run() -> None:
                await asyncio.gather(
                    *(
                        agent(base, k, f"agent{i}", stop, args.pull_s, args.beat_s, lat, errors)
                        for i, k in enumerate(keys)
                    )
                )

            asyncio.run(run())
            wall = time.monotonic() - t0
        finally:
            os.killpg(api.pid, signal.SIGTERM)
            try:
                api.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(api.pid, signal.SIGKILL)
            api_log.close()
            shutil.copy(
                Path(tmp) / "api.log", Path(tempfile.gettempdir()) / "hpcgate-bench-api.log"
            )
            errors_logged = [
                ln
                for ln in (Path(tmp) / "api.log").read_text().splitlines()
                if '"level": "error"' in ln
            ]
            if errors_logged:
                first = errors_logged[0]
                last_line = first.rsplit("\\n", 2)[-2] if "\\n" in first else first[:300]
                print(f"  API logged {len(errors_logged)} errors; first ends: {last_line[-300:]}")
        total = sum(len(v) for v in lat.values())
        print(
            f"{args.agents} agents, {wall:.0f} s, pull every {args.pull_s:g} s, "
            f"heartbeat every {args.beat_s:g} s, one API process"
        )
        print(f"  throughput: {total / wall:.0f} requests/s, errors: {sum(errors.values())}")
        for label, values in sorted(lat.items()):
            ms = [v * 1000 for v in values]
            print(
                f"  {label:13s} n={len(ms):6d}  p50={percentile(ms, 50):6.1f} ms  "
                f"p99={percentile(ms, 99):6.1f} ms  mean={statistics.fmean(ms):6.1f} ms  "
                f"errors={errors[label]}"
            )
        all_ms = [v * 1000 for vals in lat.values() for v in vals]
        print(f"  all endpoints p99 = {percentile(all_ms, 99):.1f} ms (target < 50 ms)")


if __name__ == "__main__":
    main()
