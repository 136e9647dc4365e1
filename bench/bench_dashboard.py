"""Dashboard API latency at scale (prints figures; asserts nothing).

A scratch database gets 100,000 calculations (with their steps) and a week of heartbeats
(every 30 s, cluster totals plus 8 nodes per cluster, 4 clusters), inserted with plain SQL.
The real API (uvicorn on loopback, the same app the portal talks to) then answers the calls
the portal's dashboard and calculation list make; each is timed over ``--repeat`` requests
(p50/p99, ms) beside the same query run as plain SQL on a psycopg connection (the floor:
what the database alone costs).

    .venv/bin/python bench/bench_dashboard.py [--calculations 100000] [--repeat 200] [--keep]

Needs the test PostgreSQL (HPCGATE_TEST_DATABASE_URL, default 127.0.0.1:5432 trust auth).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import psycopg
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from hpcgate.api.app import create_app
from hpcgate.auth.jwt import issue_access_token
from hpcgate.db import migrate
from hpcgate.domain.access import Role
from hpcgate.settings import Settings
from tests.conftest import create_scratch_database, drop_database
from tests.helpers.live_api import live_server

CLUSTERS = 4
NODES = 8
HEARTBEAT_S = 30
STATES = (
    # (state, share of calculations) - a lab's history: mostly finished work
    ("completed", 0.70),
    ("failed", 0.12),
    ("cancelled", 0.05),
    ("running", 0.04),
    ("submitted", 0.04),
    ("ready", 0.02),
    ("pending_approval", 0.02),
    ("rejected", 0.01),
)


def seed(dsn: str, calculations: int) -> dict[str, Any]:
    t0 = time.monotonic()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO users (email, full_name, password_hash, role, notify_level, blocked) "
            "VALUES ('bench@example.org', 'Bench', 'x', 'admin', 'error', false)"
        )
        user_id = conn.execute("SELECT id FROM users").fetchone()[0]  # type: ignore[index]
        for i in range(CLUSTERS):
            conn.execute(
                "INSERT INTO clusters (name, description, scheduler, access_mode, port, "
                "scratch_root, enabled, require_approval, online, options, cleanup_policy) "
                "VALUES (%s, '', 'slurm', 'agent', 22, '/scratch', true, false, true, "
                "'{}', '{}')",
                (f"hpc{i}",),
            )
        cluster_ids = [r[0] for r in conn.execute("SELECT id FROM clusters ORDER BY id")]
        # Calculations: states by share, created over 90 days, names searchable.
        bounds, acc = [], 0.0
        for state, share in STATES:
            acc += share
            bounds.append((acc, state))
        case = " ".join(f"WHEN r < {b:.4f} THEN '{s}'" for b, s in bounds)
        conn.execute(
            f"""
            INSERT INTO calculations (name, description, owner_id, cluster_id, logical_queue,
                code, configuration, analyses, state, approved, priority, processed,
                created_at, updated_at, submitted_at, finished_at)
            SELECT 'calc ' || g || ' ' || (ARRAY['water','benzene','gold chain','graphene',
                   'c60'])[1 + g %% 5],
                   '', %s, (ARRAY{cluster_ids})[1 + g %% {CLUSTERS}], 'default', 'siesta',
                   '{{"kind": "chain"}}', '["scf_convergence", "energy"]',
                   (CASE {case} ELSE 'completed' END)::calculation_state,
                   true, 0, true, ts, ts, ts + interval '1 minute', ts + interval '2 hours'
            FROM (SELECT g, random() AS r,
                         now() - (random() * interval '90 days') AS ts
                  FROM generate_series(1, %s) AS g) s
            """,
            (user_id, calculations),
        )
        conn.execute(
            """
            INSERT INTO steps (calculation_id, cluster_id, index, label, template, spec, state,
                job_name, attempt, unknown_ticks, cancel_pending, scheduler_job_id)
            SELECT c.id, c.cluster_id, i, 'V=' || i, 'siesta.j2', '{}', 'harvested',
                   'hpcg-' || c.id || '-' || i, 1, 0, false, (c.id * 10 + i)::text
            FROM calculations c, generate_series(0, 2) AS i
            """
        )
        # A week of heartbeats: cluster totals and per-node samples every 30 s.
        now = datetime.now(UTC)
        start = now - timedelta(days=7)
        conn.execute(
            """
            INSERT INTO heartbeat_samples (ts, cluster_id, scope, node, cpu_load, cpus_allocated,
                cpus_total, memory_free_mb, memory_total_mb, queue_depth, running_jobs)
            SELECT t, c, 'cluster', NULL, 200 + 100 * sin(extract(epoch FROM t) / 3600),
                   (300 + 200 * random())::int, 512, (1000000 * random())::bigint, 2000000,
                   (50 * random())::int, (40 * random())::int
            FROM generate_series(%s::timestamptz, %s::timestamptz, %s * interval '1 second') t,
                 unnest(%s::bigint[]) AS c
            """,
            (start, now, HEARTBEAT_S, cluster_ids),
        )
        conn.execute(
            """
            INSERT INTO heartbeat_samples (ts, cluster_id, scope, node, cpu_load, cpus_allocated,
                cpus_total, memory_free_mb, memory_total_mb)
            SELECT t, c, 'node', 'n' || n, 64 * random(), (64 * random())::int, 64,
                   (250000 * random())::bigint, 250000
            FROM generate_series(%s::timestamptz, %s::timestamptz, %s * interval '1 second') t,
                 unnest(%s::bigint[]) AS c, generate_series(1, %s) AS n
            """,
            (start, now, HEARTBEAT_S, cluster_ids, NODES),
        )
        conn.execute("ANALYZE")
        counts = {
            table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # type: ignore[index]
            for table in ("calculations", "steps", "heartbeat_samples")
        }
    print(
        f"seeded in {time.monotonic() - t0:.1f}s: "
        + ", ".join(f"{k} {v:,}" for k, v in counts.items())
    )
    return {"user_id": user_id, "cluster_ids": cluster_ids}


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, float]:
    for _ in range(min(5, repeat)):  # warm caches and connections
        fn()
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    p99 = samples[min(len(samples) - 1, round(0.99 * (len(samples) - 1)))]
    return statistics.median(samples), p99


LIST_SQL = """
SELECT c.* FROM calculations c {where} ORDER BY c.created_at DESC, c.id DESC LIMIT %s OFFSET %s
"""
COUNT_SQL = "SELECT count(*) FROM calculations c {where}"
SERIES_SQL = """
SELECT date_bin(make_interval(secs => %s), ts, %s) AS b, avg(cpu_load), avg(cpus_allocated),
       avg(cpus_total), avg(memory_free_mb), avg(memory_total_mb), avg(queue_depth),
       avg(running_jobs)
FROM heartbeat_samples WHERE cluster_id = %s AND scope = 'cluster' AND ts >= %s AND ts < %s
GROUP BY b ORDER BY b
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calculations", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = parser.parse_args()

    url = create_scratch_database("hpcgate_bench_dash")
    print(f"scratch database: {make_url(url).database}")
    try:
        migrate.upgrade(url)
        dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        info = seed(dsn, args.calculations)
        run(url, dsn, info, args.repeat)
    finally:
        if args.keep:
            print(f"kept {url}")
        else:
            drop_database(url)


def run(url: str, dsn: str, info: dict[str, Any], repeat: int) -> None:
    settings = Settings(
        env="test",
        database={"url": url},
        auth={"secret_key": "bench-secret-key-0123456789abcdef-0123", "cookie_secure": False},
        paths={"data_dir": tempfile.mkdtemp(prefix="bench-dash-")},
    )
    engine = create_engine(url, pool_size=5, max_overflow=5)
    app = create_app(settings, engine=engine)
    token = issue_access_token(info["user_id"], Role.ADMIN, settings).token
    cluster = info["cluster_ids"][0]
    now = datetime.now(UTC)

    def api_call(path: str, params: dict[str, Any]) -> Callable[[], Any]:
        def call() -> Any:
            r = client.get(path, params=params)
            r.raise_for_status()
            return r.content

        return call

    def sql_list(where: str, args: tuple[Any, ...], limit: int, offset: int) -> Callable[[], Any]:
        def call() -> Any:
            rows = conn.execute(LIST_SQL.format(where=where), (*args, limit, offset)).fetchall()
            conn.execute(COUNT_SQL.format(where=where), args).fetchone()
            return rows

        return call

    def sql_series(hours: float, points: int) -> Callable[[], Any]:
        since = now - timedelta(hours=hours)
        bucket = max(1, int(hours * 3600 // points) + (1 if hours * 3600 % points else 0))

        def call() -> Any:
            return conn.execute(SERIES_SQL, (bucket, since, cluster, since, now)).fetchall()

        return call

    week = (now - timedelta(days=7)).isoformat()
    day = (now - timedelta(hours=24)).isoformat()
    hour = (now - timedelta(hours=1)).isoformat()
    cases: list[tuple[str, Callable[[], Any], Callable[[], Any]]] = []
    with live_server(app) as base, psycopg.connect(dsn, autocommit=True) as conn:
        client = httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=60
        )
        cases = [
            (
                "list, first page (25)",
                api_call("/calculations", {"limit": 25}),
                sql_list("", (), 25, 0),
            ),
            (
                "list, page 2000 (offset 50k)",
                api_call("/calculations", {"limit": 25, "offset": 50_000}),
                sql_list("", (), 25, 50_000),
            ),
            (
                "list, state=running (10)",
                api_call("/calculations", {"state": "running", "limit": 10}),
                sql_list("WHERE c.state = %s", ("running",), 10, 0),
            ),
            (
                "list, state=failed (8)",
                api_call("/calculations", {"state": "failed", "limit": 8}),
                sql_list("WHERE c.state = %s", ("failed",), 8, 0),
            ),
            (
                "list, search 'gold' (25)",
                api_call("/calculations", {"q": "gold", "limit": 25}),
                sql_list(
                    "WHERE (c.name ILIKE %s OR c.description ILIKE %s)",
                    ("%gold%", "%gold%"),
                    25,
                    0,
                ),
            ),
            (
                "heartbeats, 1 h -> 120 points",
                api_call(
                    f"/clusters/{cluster}/heartbeats",
                    {"since": hour, "until": now.isoformat(), "points": 120},
                ),
                sql_series(1, 120),
            ),
            (
                "heartbeats, 24 h -> 300 points",
                api_call(
                    f"/clusters/{cluster}/heartbeats",
                    {"since": day, "until": now.isoformat(), "points": 300},
                ),
                sql_series(24, 300),
            ),
            (
                "heartbeats, 7 d -> 120 points",
                api_call(
                    f"/clusters/{cluster}/heartbeats",
                    {"since": week, "until": now.isoformat(), "points": 120},
                ),
                sql_series(24 * 7, 120),
            ),
        ]
        print(f"\n{repeat} requests each, after 5 warm-up requests (ms)")
        print(f"{'call':34} {'API p50':>9} {'API p99':>9} {'SQL p50':>9} {'SQL p99':>9}")
        for name, api_fn, sql_fn in cases:
            a50, a99 = timed(api_fn, repeat)
            s50, s99 = timed(sql_fn, repeat)
            print(f"{name:34} {a50:9.1f} {a99:9.1f} {s50:9.1f} {s99:9.1f}")

        # One dashboard refresh: what the page requests every poll, one after the other
        # (the browser runs them in parallel; this is the sequential upper bound).
        def dashboard() -> None:
            client.get("/clusters").raise_for_status()
            for state, limit in (
                ("running", 10),
                ("submitted", 1),
                ("failed", 8),
                ("pending_approval", 5),
            ):
                client.get("/calculations", params={"state": state, "limit": limit})
            for cid in info["cluster_ids"]:
                client.get(
                    f"/clusters/{cid}/heartbeats",
                    params={"since": hour, "until": now.isoformat(), "points": 120},
                ).raise_for_status()

        d50, d99 = timed(dashboard, max(20, repeat // 5))
        print(
            f"\ndashboard refresh ({5 + CLUSTERS} calls, sequential): p50 {d50:.1f} ms, "
            f"p99 {d99:.1f} ms"
        )
        client.close()
    engine.dispose()


if __name__ == "__main__":
    main()
