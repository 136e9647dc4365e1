"""Load: N simulated agents (real HTTP clients) pull work and send heartbeats against ONE
API process (`hpcgate serve`, one uvicorn worker) on this 2-core machine.

Each agent has its own cluster and API key, and follows the real agent's loop: ``POST
/agent/pull`` every PULL_S, a harvest every HARVEST_S (it uses the step list the last pull
returned, or asks ``GET /agent/active-steps`` when that list is used up), and a heartbeat
batch (4 nodes) every BEAT_S, each interval jittered by +-JITTER as the agent does.

Prints throughput, p50/p99 latency per endpoint as the agent sees it and as the server
reports it (``Server-Timing``: admission wait + handling), errors, the API process's CPU,
and a baseline measured in the same run: a pull's SQL over plain psycopg at the same rate.
The target from the reliability brief is p99 < 50 ms. Asserts nothing.

Real agents run on different machines with independent clocks, so their polls are spread
over the interval: agent i starts at phase i/N of PULL_S (and a decorrelated phase of
BEAT_S). The agents are shared among PROCESSES load-generator processes, so
one generator's event loop or garbage collector stalling does not release a synthetic burst
that no real fleet would send. ``--burst`` instead starts every agent at the same instant, as
after a site-wide restart of the agents, to show how the queue drains.

The figures cover a steady state: the same load runs ``--warmup`` seconds (5) before the
measured window, while the fresh API process opens its pooled connections and has the server
prepare its statements; that warm-up is reported on its own line (count, worst, errors).

Usage: .venv/bin/python bench/bench_load_agents.py [--agents 200] [--seconds 60]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import multiprocessing
import os
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from hpcgate.agent.loop import next_due
from hpcgate.db.models import Cluster
from hpcgate.db.models.clusters import AccessMode
from hpcgate.domain.access import ApiKeyOwner
from hpcgate.services.api_keys import create_api_key
from tests.helpers.engine_env import engine_env
from tests.helpers.live_api import free_port


@dataclass
class Results:
    """Per endpoint: client-observed seconds, server (admission ms, handling ms), errors."""

    latency: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    server: dict[str, list[tuple[float, float]]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    # (time.time() the request was sent, client-observed seconds): the --timeline view
    sent: list[tuple[float, float]] = field(default_factory=list)
    # Requests sent before this time.time() are the warm-up: counted apart, not in the figures.
    measure_from: float = 0.0
    warmup: list[float] = field(default_factory=list)
    warmup_errors: int = 0

    def merge(self, other: Results) -> None:
        for k, v in other.latency.items():
            self.latency[k].extend(v)
        for k, s in other.server.items():
            self.server[k].extend(s)
        for k, n in other.errors.items():
            self.errors[k] += n
        self.sent.extend(other.sent)
        self.warmup.extend(other.warmup)
        self.warmup_errors += other.warmup_errors


@dataclass(frozen=True)
class Cadence:
    """How often an agent polls, as the real agent's ``intervals`` configure it."""

    pull_s: float
    harvest_s: float
    beat_s: float
    jitter: float


@dataclass(frozen=True)
class AgentPlan:
    name: str
    key: str
    first_pull: float  # seconds after the start (then absolute, once the start is known)
    first_beat: float


def server_ms(response: httpx.Response) -> tuple[float, float] | None:
    """(admission wait, handling) in ms from the API's ``Server-Timing`` header."""
    header = response.headers.get("server-timing")
    if not header:
        return None
    parts = dict(p.strip().split(";dur=", 1) for p in header.split(",") if ";dur=" in p)
    return float(parts.get("admit", 0)), float(parts.get("app", 0))


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def _heartbeat(name: str) -> dict[str, object]:
    return {
        "samples": [
            {
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
        ]
    }


async def _timed(results: Results, label: str, request: Awaitable[httpx.Response]) -> None:
    sent = time.time()
    t0 = time.monotonic()
    timing = None
    try:
        r = await request
        ok = r.status_code < 400
        if (timing := server_ms(r)) is not None:
            results.server[label].append(timing)
    except httpx.HTTPError:
        ok = False
    seconds = time.monotonic() - t0
    results.sent.append((sent, seconds))
    if sent < results.measure_from:
        results.warmup.append(seconds)
        results.warmup_errors += not ok
        if timing is not None:
            results.server[label].pop()
        return
    results.latency[label].append(seconds)
    if not ok:
        results.errors[label] += 1


async def _agent(
    client: httpx.AsyncClient, plan: AgentPlan, stop: float, cadence: Cadence, results: Results
) -> None:
    """The real agent's loop (hpcgate/agent/loop.py) minus the scheduler: pull, harvest and
    heartbeat on their own jittered schedules; a harvest uses the last pull's step list once,
    and asks GET /agent/active-steps only when no unused list is at hand."""
    next_pull = next_harvest = plan.first_pull  # the agent's first tick: pull, then harvest
    next_beat = plan.first_beat
    pulled = False
    while True:
        await asyncio.sleep(max(0.0, min(next_pull, next_harvest, next_beat, stop) - time.time()))
        now = time.time()
        if now >= stop:
            return
        if now >= next_pull:
            next_pull = next_due(now, cadence.pull_s, cadence.jitter)
            await _timed(results, "pull", client.post("/agent/pull", json={"agent": plan.name}))
            pulled = True
        if now >= next_harvest:
            next_harvest = next_due(now, cadence.harvest_s, cadence.jitter)
            if not pulled:
                await _timed(results, "active-steps", client.get("/agent/active-steps"))
            pulled = False
        if now >= next_beat:
            next_beat = next_due(now, cadence.beat_s, cadence.jitter)
            beat = client.post("/agent/heartbeats", json=_heartbeat(plan.name))
            await _timed(results, "heartbeats", beat)


def _generator(
    base: str,
    plans: list[AgentPlan],
    cadence: Cadence,
    ready: Barrier,
    go: Queue[tuple[float, float, float]],
    out: Queue[Results],
) -> None:
    """One load-generator process: its agents on one event loop, one client each.

    It builds its clients first (TLS contexts are slow to make, so one is shared), says it
    is ready, and only then learns the start time: no agent starts late and catches up.
    """

    # Real agents run on other machines: lowest CPU priority here, so the generators do not
    # take the API process's core when both want it.
    os.nice(19)

    async def run() -> Results:
        results = Results()
        tls = ssl.create_default_context()
        clients = [
            httpx.AsyncClient(base_url=base, headers={"X-API-Key": p.key}, timeout=10, verify=tls)
            for p in plans
        ]
        gc.collect()
        gc.freeze()  # the clients live to the end: keep them out of the collector's way
        ready.wait()
        start, results.measure_from, stop = go.get()
        shifted = [
            AgentPlan(p.name, p.key, start + p.first_pull, start + p.first_beat) for p in plans
        ]
        try:
            await asyncio.gather(
                *(
                    _agent(c, p, stop, cadence, results)
                    for c, p in zip(clients, shifted, strict=True)
                )
            )
        finally:
            for c in clients:
                await c.aclose()
        return results

    out.put(asyncio.run(run()))


# A pull's statements written by hand (auth, claim, cancellations, active steps, commit).
_PULL_SQL = (
    "SELECT k.key_hash, k.revoked_at, c.id, c.enabled FROM api_keys k"
    " JOIN clusters c ON c.id = k.cluster_id WHERE k.prefix = %(prefix)s",
    "SELECT id, state FROM calculations WHERE cluster_id = %(cluster)s AND approved"
    " AND state = 'ready' ORDER BY priority DESC, created_at, id LIMIT 10"
    " FOR UPDATE SKIP LOCKED",
    "SELECT id, scheduler_job_id FROM steps WHERE cluster_id = %(cluster)s"
    " AND cancel_pending AND scheduler_job_id IS NOT NULL",
    "SELECT id, calculation_id, scheduler_job_id, workdir, state, array_size, unknown_ticks"
    " FROM steps WHERE cluster_id = %(cluster)s"
    " AND state IN ('submitting', 'queued', 'running', 'lost')"
    " AND scheduler_job_id IS NOT NULL ORDER BY id",
)


def _sql_baseline(url: str, keys: list[str], rate: float, go: Queue[tuple[float, float, float]],
                  ready: Barrier, out: Queue[list[float]]) -> None:  # fmt: skip
    """The baseline of the same run: a pull's SQL over plain psycopg, no HTTP, no ORM, at the
    agents' pull rate. Whatever tail it shows is the machine's and the database's."""
    import psycopg

    conn = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"))
    params = []
    for key in keys:
        prefix = key.split("_")[1]
        row = conn.execute(
            "SELECT cluster_id FROM api_keys WHERE prefix = %s", (prefix,)
        ).fetchone()
        params.append({"prefix": prefix, "cluster": row[0] if row else 0})
    conn.commit()
    os.nice(19)
    ready.wait()
    start, measure_from, stop = go.get()
    samples: list[float] = []
    due, i = start, 0
    while True:
        time.sleep(max(0.0, due - time.time()))
        if time.time() >= stop:
            break
        began, t0 = time.time(), time.monotonic()
        for sql in _PULL_SQL:
            conn.execute(sql, params[i % len(params)]).fetchall()
        conn.commit()
        if began >= measure_from:
            samples.append(time.monotonic() - t0)
        due += 1 / rate
        i += 1
    conn.close()
    out.put(samples)


def _seed(env_engine: Engine, agents: int) -> list[str]:
    keys = []
    with Session(env_engine) as s:
        for i in range(agents):
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
    return keys


def _plans(keys: list[str], pull_s: float, beat_s: float, burst: bool) -> list[AgentPlan]:
    n = len(keys)
    plans = []
    for i, key in enumerate(keys):
        pull_phase = 0.0 if burst else i / n * pull_s
        beat_phase = 0.0 if burst else (i * 7919 % n) / n * beat_s  # 7919: prime, decorrelates
        plans.append(AgentPlan(f"agent{i}", key, pull_phase, beat_phase))
    return plans


def _timeline(results: Results, start: float) -> None:
    """Requests sent and the slowest answer, per second of the run."""
    per_second: dict[int, list[float]] = defaultdict(list)
    for sent, seconds in results.sent:
        per_second[int(sent - start)].append(seconds * 1000)
    print("  second  sent  slowest")
    for second in sorted(per_second):
        values = per_second[second]
        print(f"  {second:6d}  {len(values):4d}  {max(values):7.1f} ms")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _report(results: Results, wall: float, args: argparse.Namespace) -> None:
    lat, server, errors = results.latency, results.server, results.errors
    total = sum(len(v) for v in lat.values())
    mode = "all agents start together" if args.burst else "polls spread over the interval"
    print(
        f"{args.agents} agents in {args.processes} generator processes, {wall:.0f} s, pull every "
        f"{args.pull_s:g} s, harvest every {args.harvest_s:g} s, heartbeat every {args.beat_s:g} s"
        f" (jitter {args.jitter:g}; {mode}), one API process"
    )
    print(f"  throughput: {total / wall:.1f} requests/s, errors: {sum(errors.values())}")
    if args.warmup:
        warm = [v * 1000 for v in results.warmup]
        print(
            f"  warm-up ({args.warmup:g} s before the measured window, not in the figures below:"
            f" the API process opens its pooled connections): n={len(warm)}, worst "
            f"{max(warm, default=0):.1f} ms, errors {results.warmup_errors}"
        )
    print("  client-observed latency (what an agent sees):")
    for label, values in sorted(lat.items()):
        ms = [v * 1000 for v in values]
        print(
            f"    {label:13s} n={len(ms):6d}  p50={percentile(ms, 50):6.1f} ms  "
            f"p99={percentile(ms, 99):6.1f} ms  mean={statistics.fmean(ms):6.1f} ms  "
            f"errors={errors[label]}"
        )
    print("  server-side time (Server-Timing: admission wait + handling):")
    for label, pairs in sorted(server.items()):
        ms = [a + b for a, b in pairs]
        admit = [a for a, _ in pairs]
        app = [b for _, b in pairs]
        print(
            f"    {label:13s} n={len(ms):6d}  p50={percentile(ms, 50):6.1f} ms  "
            f"p99={percentile(ms, 99):6.1f} ms  (admission p99={percentile(admit, 99):6.1f}"
            f" ms, handling p50={percentile(app, 50):5.1f} p99={percentile(app, 99):6.1f} ms)"
        )
    all_ms = [v * 1000 for vals in lat.values() for v in vals]
    all_server = [a + b for pairs in server.values() for a, b in pairs]
    print(
        f"  all endpoints p99 = {percentile(all_ms, 99):.1f} ms client-observed, "
        f"{percentile(all_server, 99):.1f} ms server-side (target < 50 ms)"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--agents", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--pull-s", type=float, default=10.0)  # the agent's defaults
    ap.add_argument("--harvest-s", type=float, default=10.0)
    ap.add_argument("--beat-s", type=float, default=30.0)
    ap.add_argument("--jitter", type=float, default=0.1)
    ap.add_argument("--processes", type=int, default=4, help="load-generator processes")
    ap.add_argument("--burst", action="store_true", help="start every agent at the same instant")
    ap.add_argument("--timeline", action="store_true", help="print requests per second too")
    ap.add_argument(
        "--warmup",
        type=float,
        default=None,
        help="seconds of the same load before the measured window, reported apart "
        "(default 5; 0 with --burst, whose point is the start)",
    )
    ap.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for the API process (e.g. HPCGATE_API_CONCURRENCY=4)",
    )
    args = ap.parse_args()
    if args.warmup is None:
        args.warmup = 0.0 if args.burst else 5.0
    with tempfile.TemporaryDirectory() as tmp, engine_env(Path(tmp), "hpcgate_load") as env:
        keys = _seed(env.engine, args.agents)
        port = free_port()
        envvars = {
            **{k: v for k, v in os.environ.items() if not k.startswith("HPCGATE_")},
            "HPCGATE_ENV": "test",
            "HPCGATE_DATABASE_URL": env.url,
            "HPCGATE_SECRET_KEY": "bench-secret-key-0123456789abcdef",
            **dict(item.split("=", 1) for item in args.server_env),
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
        results = Results()
        try:
            for _ in range(100):
                if api.poll() is not None:
                    raise SystemExit(f"the API process exited ({api.returncode}); see its log")
                try:
                    if httpx.get(base + "/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.2)
            else:
                raise SystemExit("the API process did not answer /health in time")
            plans = _plans(keys, args.pull_s, args.beat_s, args.burst)
            cadence = Cadence(args.pull_s, args.harvest_s, args.beat_s, args.jitter)
            mp = multiprocessing.get_context("fork")
            ready = mp.Barrier(args.processes + 2)
            go: Queue[tuple[float, float, float]] = mp.Queue()
            out: Queue[Results] = mp.Queue()
            sql_out: Queue[list[float]] = mp.Queue()
            baseline = mp.Process(
                target=_sql_baseline,
                args=(env.url, keys, args.agents / args.pull_s, go, ready, sql_out),
            )
            baseline.start()
            generators = [
                mp.Process(
                    target=_generator,
                    args=(
                        base,
                        plans[i :: args.processes],
                        cadence,
                        ready,
                        go,
                        out,
                    ),
                )
                for i in range(args.processes)
            ]
            for g in generators:
                g.start()
            ready.wait()
            run_start = time.time() + 0.2
            start = run_start + args.warmup  # the measured window starts after the warm-up
            stop = start + args.seconds
            for _ in range(len(generators) + 1):
                go.put((run_start, start, stop))
            time.sleep(max(0.0, start - time.time()))
            cpu_before = _cpu_seconds(api.pid)
            for _ in generators:
                results.merge(out.get(timeout=args.seconds + 120))
            sql_samples = sql_out.get(timeout=args.seconds + 120)
            for g in [*generators, baseline]:
                g.join()
            api_cpu = _cpu_seconds(api.pid) - cpu_before
            wall = time.time() - start
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
        if args.timeline:
            _timeline(results, start)
        _report(results, wall, args)
        sql_ms = [v * 1000 for v in sql_samples]
        pull_ms = [v * 1000 for v in results.latency.get("pull", [])]
        print(
            f"  baseline, a pull's SQL over plain psycopg at the same rate (n={len(sql_ms)}): "
            f"p50={percentile(sql_ms, 50):.1f} ms p99={percentile(sql_ms, 99):.1f} ms; "
            f"API pull / plain SQL: p50 x{percentile(pull_ms, 50) / percentile(sql_ms, 50):.1f},"
            f" p99 x{percentile(pull_ms, 99) / percentile(sql_ms, 99):.1f}"
        )
        requests = sum(len(v) for v in results.latency.values())
        print(
            f"  API process CPU: {api_cpu / wall * 100:.0f}% of one core, "
            f"{api_cpu / max(requests, 1) * 1000:.2f} ms per request"
        )


if __name__ == "__main__":
    main()
