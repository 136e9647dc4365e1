"""Many separate calculations, end to end, against the raw Slurm floor (issue 16).

Prints figures; asserts nothing. Everything real and deployed as in production, one process
each: PostgreSQL, Slurm 22.05, ``hpcgate serve`` on loopback, ``hpcgate worker`` (the
NOTIFY-woken dispatcher, the end-spool watcher, the periodic harvest as safety net) for the
local cluster, and ``hpcgate agent`` (long-poll pull, end spool) for the agent cluster.

Workloads, each timed from the first request to the last calculation COMPLETED:
* ``N separate``: N ``kind: single`` calculations (``bash -c 'echo $((1+2))'``), POSTed by 8
  client threads, each keeping one HTTP client (connection) as a screening script would;
* ``N sweep``: one ``kind: sweep`` calculation of N points.
Baselines in the same run: N x ``sbatch`` then ``sacct`` polling every second, and one
``sbatch --array=0-(N-1)`` with the same polling. Also printed: the API's p99 over every
request made during the burst (the POSTs and a status probe every 200 ms), and a check that
Slurm knows each job name exactly once (no lost or duplicate jobs). The machine is shared,
so each run also prints the load average and the CPU seconds of ``serve``, ``worker``,
``agent`` (with their children: ``sbatch``, parse workers) and of this client: steadier than
wall time when other processes compete for the cores.

Usage: .venv/bin/python bench/bench_many_calcs.py [--n 100] [--modes local,agent]
       [--poll 10] [--skip-sweep]
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sqlalchemy import func, select  # noqa: E402

from hpcgate.db.models import Calculation, Step, User  # noqa: E402
from hpcgate.db.models.clusters import AccessMode  # noqa: E402
from hpcgate.db.session import session_scope  # noqa: E402
from hpcgate.domain.access import ApiKeyOwner, Role  # noqa: E402
from hpcgate.domain.states import FINAL_CALCULATION_STATES, CalculationState  # noqa: E402
from hpcgate.services.api_keys import create_api_key  # noqa: E402
from hpcgate.services.users import create_user  # noqa: E402
from tests.helpers.api import auth_headers  # noqa: E402
from tests.helpers.engine_env import EngineEnv, engine_env  # noqa: E402
from tests.helpers.live_api import free_port  # noqa: E402

POLL_RAW = 1.0
COMMAND = ["bash", "-c", "echo $((1+2))"]
_TCK = os.sysconf("SC_CLK_TCK")


# -- CPU seconds per process (the machine is shared: CPU time is steadier than wall time)
def _stat(pid: int) -> list[str]:
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().rsplit(")", 1)[1].split()


def tree_cpu(pid: int) -> float:
    """CPU seconds of ``pid``, its reaped children (``sbatch``, ...) and its live descendants
    (parse workers)."""
    total, parents = 0.0, {pid}
    for entry in sorted(os.listdir("/proc"), key=lambda e: (len(e), e)):
        if not entry.isdigit():
            continue
        try:
            st = _stat(int(entry))
        except OSError:
            continue
        if int(entry) == pid or int(st[1]) in parents:
            parents.add(int(entry))
            total += sum(int(x) for x in st[11:15]) / _TCK  # utime stime cutime cstime
    return total


class CpuMeter:
    """CPU seconds used by each named process (and this bench process) between two reads."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.start = self._read()

    def _read(self) -> dict[str, float]:
        out = {name: tree_cpu(pid) for name, pid in self.pids.items()}
        out["bench client"] = time.process_time()
        return out

    def used(self) -> dict[str, float]:
        now = self._read()
        return {name: now[name] - self.start[name] for name in now}


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load {one:.1f}/{five:.1f}/{fifteen:.1f}"


# -- raw Slurm baselines
def _wait_sacct(job_ids: set[str], since: str) -> None:
    while True:
        time.sleep(POLL_RAW)
        out = subprocess.run(
            ["sacct", "-X", "-n", "-P", "-S", since, "-o", "JobIDRaw,State"],
            capture_output=True, text=True, check=True,
        ).stdout.splitlines()
        done = {
            ln.split("|")[0].split("_")[0]
            for ln in out
            if ln.split("|")[1].split()[0] in ("COMPLETED", "FAILED")
        }
        pending = subprocess.run(
            ["squeue", "-h", "-o", "%i"], capture_output=True, text=True
        ).stdout.split()
        if job_ids <= done and not any(p.split("_")[0] in job_ids for p in pending):
            return


def raw_loop(n: int, workdir: Path) -> float:
    script = workdir / "raw.sh"
    script.write_text("#!/bin/bash\necho $((1+2))\n")
    since = time.strftime("%Y-%m-%dT%H:%M:%S")
    t0 = time.monotonic()
    ids = set()
    for i in range(n):
        out = subprocess.run(
            ["sbatch", "--parsable", "-J", f"bench-raw-{i}", "-o", "/dev/null",
             "-D", str(workdir), str(script)],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
        ids.add(out.split(";")[0])
    _wait_sacct(ids, since)
    return time.monotonic() - t0


def raw_array(n: int, workdir: Path) -> float:
    script = workdir / "raw.sh"
    script.write_text("#!/bin/bash\necho $((1+2))\n")
    since = time.strftime("%Y-%m-%dT%H:%M:%S")
    t0 = time.monotonic()
    out = subprocess.run(
        ["sbatch", "--parsable", f"--array=0-{n - 1}", "-J", "bench-raw-array",
         "-o", "/dev/null", "-D", str(workdir), str(script)],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    _wait_sacct({out.split(";")[0]}, since)
    return time.monotonic() - t0


# -- hpcgate
class Latencies:
    def __init__(self) -> None:
        self.values: list[float] = []
        self.by_method: dict[str, list[float]] = {}
        self.errors = 0
        self._lock = threading.Lock()

    def call(self, client: httpx.Client, method: str, url: str, **kw: Any) -> httpx.Response:
        t0 = time.perf_counter()
        r = client.request(method, url, **kw)
        with self._lock:
            self.values.append(time.perf_counter() - t0)
            self.by_method.setdefault(method, []).append(time.perf_counter() - t0)
            if r.status_code >= 400:
                self.errors += 1
        return r

    def summary(self) -> str:
        parts = []
        for method, values in sorted(self.by_method.items()):
            if len(values) >= 2:
                q = statistics.quantiles(values, n=100)
                parts.append(f"{method} n={len(values)} p50 {q[49] * 1000:.0f} ms"
                             f" p99 {q[98] * 1000:.0f} ms")
        return "; ".join(parts)

    def p99_ms(self) -> float:
        if len(self.values) < 2:
            return float("nan")
        return statistics.quantiles(self.values, n=100)[98] * 1000


def _settled(env: EngineEnv, since_id: int) -> tuple[int, int, int]:
    """(calculations final, completed, steps still without a scheduler job id)."""
    with session_scope(env.factory) as s:
        unsubmitted = int(s.scalar(
            select(func.count()).select_from(Step).where(
                Step.calculation_id > since_id, Step.scheduler_job_id.is_(None)
            )
        ) or 0)
        rows = s.execute(
            select(Calculation.state, func.count())
            .where(Calculation.id > since_id)
            .group_by(Calculation.state)
        ).all()
    final = sum(c for st, c in rows if st in FINAL_CALCULATION_STATES)
    completed = sum(c for st, c in rows if st is CalculationState.COMPLETED)
    return final, completed, unsubmitted


def _slurm_duplicates(env: EngineEnv, since_id: int, since: str) -> tuple[int, int, int]:
    """(steps, job names Slurm knows exactly once, names known more than once or never).

    slurmdbd records finished jobs asynchronously: names not in accounting yet are asked
    again for up to 30 s before they count as lost."""
    with session_scope(env.factory) as s:
        names = set(s.scalars(select(Step.job_name).where(Step.calculation_id > since_id)))
    deadline = time.monotonic() + 30
    while True:
        out = subprocess.run(
            ["sacct", "-X", "-n", "-P", "-S", since, "-o", "JobID,JobName%200"],
            capture_output=True, text=True, check=True,
        ).stdout.splitlines()
        ids: dict[str, set[str]] = {}
        for ln in out:
            jid, _, name = ln.partition("|")
            if name in names:
                ids.setdefault(name, set()).add(jid.split("_")[0])
        counts = Counter({n: len(ids.get(n, ())) for n in names})
        if all(counts.values()) or time.monotonic() > deadline:
            break
        time.sleep(1)
    once = sum(1 for c in counts.values() if c == 1)
    for name, c in sorted(counts.items()):
        if c != 1:
            print(f"  job name {name}: {c} job(s) in sacct {sorted(ids.get(name, ()))}")
    return len(names), once, len(names) - once


def run_hpcgate(
    env: EngineEnv,
    base: str,
    headers: dict[str, str],
    cluster_id: int,
    n: int,
    sweep: bool,
    pids: dict[str, int],
) -> tuple[float, float, int, tuple[int, int, int]]:
    with session_scope(env.factory) as s:
        since_id = int(s.scalar(select(func.coalesce(func.max(Calculation.id), 0))) or 0)
    since = time.strftime("%Y-%m-%dT%H:%M:%S")
    lat = Latencies()
    expected = 1 if sweep else n
    stop = threading.Event()

    def probe() -> None:
        with httpx.Client(base_url=base, headers=headers, timeout=60) as c:
            while not stop.wait(0.2):
                lat.call(c, "GET", "/calculations", params={"limit": 20})

    # One client per thread, kept for every POST it makes, as a screening script keeps its
    # session: an httpx.Client is an SSL context (20-60 ms of CPU to build here) and a new
    # connection, which earlier runs paid per POST on the same 2 cores as the server.
    local = threading.local()
    clients: list[httpx.Client] = []

    def client() -> httpx.Client:
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=base, headers=headers, timeout=120)
            clients.append(local.client)
        c: httpx.Client = local.client
        return c

    def post(i: int) -> None:
        config: dict[str, Any] = {"kind": "single", "command": COMMAND}
        if sweep:
            config = {"kind": "sweep", "command": COMMAND,
                      "variants": [{"label": f"p{j}", "parameters": {"j": j}} for j in range(n)]}
        r = lat.call(client(), "POST", "/calculations", json={
            "name": f"bench-{i}", "cluster_id": cluster_id, "logical_queue": "default",
            "code": "generic", "configuration": config,
        })
        if r.status_code != 201:
            print("  POST failed:", r.status_code, r.text[:300])

    prober = threading.Thread(target=probe, daemon=True)
    print(f"  {load()} at the start")
    cpu = CpuMeter(pids)
    t0 = time.monotonic()
    prober.start()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(post, range(expected)))
    posted = time.monotonic() - t0
    posted_cpu = cpu.used()
    for c in clients:
        c.close()
    submitted = None
    while True:
        final, completed, unsubmitted = _settled(env, since_id)
        if submitted is None and unsubmitted == 0:
            submitted = time.monotonic() - t0
        if final >= expected:
            break
        time.sleep(0.1)
    elapsed = time.monotonic() - t0
    stop.set()
    prober.join()
    if completed != expected:
        print(f"  warning: {expected - completed} calculation(s) did not complete")
    print(f"  {expected} POST(s) done at {posted:.1f} s, all submitted at {submitted or 0:.1f} s,"
          f" all settled at {elapsed:.1f} s")
    print(f"  API during the burst: {lat.summary()}")
    used = cpu.used()
    print("  CPU s while POSTing: " + ", ".join(f"{k} {v:.2f}" for k, v in posted_cpu.items())
          + (f" (API {posted_cpu['api'] / expected * 1000:.1f} ms per POST)" if expected else ""))
    print("  CPU s until settled: " + ", ".join(f"{k} {v:.2f}" for k, v in used.items()))
    print(f"  {load()} at the end")
    return elapsed, lat.p99_ms(), lat.errors, _slurm_duplicates(env, since_id, since)


def start_processes(
    config: Path, port: int
) -> tuple[subprocess.Popen[bytes], subprocess.Popen[bytes]]:
    env = {**os.environ, "HPCGATE_CONFIG_FILE": str(config)}
    api_log = config.parent / "serve.log"
    with open(api_log, "wb") as out, open(config.parent / "worker.log", "wb") as wout:
        api = subprocess.Popen(
            [sys.executable, "-m", "hpcgate.cli", "serve", "--host", "127.0.0.1",
             "--port", str(port)],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
        )
        worker = subprocess.Popen(
            [sys.executable, "-m", "hpcgate.cli", "worker"], cwd=REPO, env=env,
            stdout=wout, stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 180  # a loaded machine takes its time importing
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=15).status_code == 200:
                return api, worker
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or api.poll() is not None:
            worker.terminate()
            api.terminate()
            tail = api_log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"hpcgate serve did not start:\n{tail}")
        time.sleep(0.2)


def start_agent(
    base: str, key: str, name: str, scratch: Path, state: Path
) -> subprocess.Popen[bytes]:
    cfg = state.parent / f"{name}.yaml"
    cfg.write_text(yaml.safe_dump({
        "api_url": base, "api_key": key, "cluster": name, "name": "bench",
        "scheduler": "slurm", "scratch_root": str(scratch), "state_dir": str(state),
    }))
    return subprocess.Popen(
        [sys.executable, "-m", "hpcgate.cli", "agent", "--config", str(cfg)],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, nargs="+", default=[100])
    ap.add_argument("--modes", default="local,agent")
    ap.add_argument("--poll", type=float, default=10.0, help="worker poll interval (default 10)")
    ap.add_argument("--skip-sweep", action="store_true")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    rows: list[tuple[str, float, float, float, int, tuple[int, int, int]]] = []
    with tempfile.TemporaryDirectory(prefix="bench-many-") as tmpdir:
        tmp = Path(tmpdir)
        os.chmod(tmp, 0o755)
        with engine_env(tmp / "data", "hpcgate_bench_many") as env:
            settings = env.settings.model_copy(update={
                "scheduler": env.settings.scheduler.model_copy(
                    update={"poll_interval_s": args.poll}
                ),
                "local": env.settings.local.model_copy(update={"job_user": None}),
            })
            with session_scope(env.factory) as s:
                admin = create_user(s, email="bench@example.org", password="a-good-password",
                                    role=Role.ADMIN)
                s.flush()
                admin_row = s.get(User, admin.id)
                assert admin_row is not None
                s.expunge(admin_row)
            headers = auth_headers(admin_row, settings)
            local_id = env.add_cluster("bench-local", scheduler="slurm",
                                       access_mode=AccessMode.LOCAL,
                                       scratch_root=str(tmp / "scratch-local"))
            agent_id = env.add_cluster("bench-agent", scheduler="slurm",
                                       access_mode=AccessMode.AGENT,
                                       scratch_root=str(tmp / "scratch-agent"))
            with session_scope(env.factory) as s:
                _, key = create_api_key(s, owner_kind=ApiKeyOwner.CLUSTER, name="bench",
                                        cluster_id=agent_id)
            config = tmp / "hpcgate.yaml"
            config.write_text(yaml.safe_dump({
                "env": "test",
                "database": {"url": env.url},
                "auth": {"secret_key": settings.auth.secret_key, "cookie_secure": False},
                "paths": {"data_dir": str(tmp / "data")},
                "scheduler": {"poll_interval_s": args.poll},
                "local": {"job_user": ""},
            }))
            port = free_port()
            api, worker = start_processes(config, port)
            base = f"http://127.0.0.1:{port}"
            (tmp / "state").mkdir()
            agent = None
            try:
                if "agent" in args.modes:
                    agent = start_agent(base, key, "bench-agent", tmp / "scratch-agent",
                                        tmp / "state")
                time.sleep(2)
                pids = {"api": api.pid, "worker": worker.pid}
                if agent is not None:
                    pids["agent"] = agent.pid
                for run, n in enumerate(args.n):  # an N may repeat (--n 100 100 100)
                    raw_dir = tmp / f"raw-{run}-{n}"
                    raw_dir.mkdir()
                    before = os.times()
                    floor = raw_loop(n, raw_dir)
                    after = os.times()
                    floor_array = raw_array(n, raw_dir) if not args.skip_sweep else 0.0
                    sbatch_cpu = (after.children_user + after.children_system
                                  - before.children_user - before.children_system)
                    print(f"raw: {n} x sbatch {floor:.1f} s (sbatch/sacct CPU {sbatch_cpu:.2f} s),"
                          f" --array {floor_array:.1f} s ({load()})")
                    for mode, cid in (("local", local_id), ("agent", agent_id)):
                        if mode not in args.modes:
                            continue
                        print(f"{n} separate, {mode}:")
                        el, p99, errors, dup = run_hpcgate(env, base, headers, cid, n, False,
                                                           pids)
                        rows.append((f"{n} separate, {mode}", el, floor, p99, errors, dup))
                        if not args.skip_sweep:
                            print(f"{n}-point sweep, {mode}:")
                            el, p99, errors, dup = run_hpcgate(
                                env, base, headers, cid, n, True, pids
                            )
                            rows.append((f"{n}-point sweep, {mode}", el, floor_array, p99,
                                         errors, dup))
            finally:
                for proc in (agent, worker, api):
                    if proc is not None:
                        proc.terminate()
                        proc.wait(60)
    print(f"\nworker poll interval {args.poll:g} s (safety net); raw baselines poll sacct "
          f"every {POLL_RAW:g} s")
    print(f"{'workload':28} {'hpcgate':>9} {'raw':>8} {'ratio':>6} {'API p99':>9} "
          f"{'errors':>6}  jobs once/lost-or-dup")
    for name, el, raw, p99, errors, (steps, once, bad) in rows:
        print(f"{name:28} {el:8.1f}s {raw:7.1f}s {el / raw:6.2f} {p99:7.1f}ms {errors:6d}  "
              f"{once}/{steps} ok, {bad} bad")


if __name__ == "__main__":
    main()
