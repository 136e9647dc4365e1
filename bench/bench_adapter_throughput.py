"""Submit-and-harvest throughput of the Slurm adapter against raw Slurm commands.

    .venv/bin/python bench/bench_adapter_throughput.py [-n 500] [--root /tmp/hpcgate-bench]

Three ways to run ``n`` trivial tasks until every one is final *in accounting*:

(a) one array job through ``SlurmAdapter`` (render, write, sbatch, poll ``status``,
    then ``accounting``),
(b) ``n`` single jobs through ``SlurmAdapter`` (``n`` sbatch calls; polling is still
    one squeue call per tick for all of them),
(c) raw ``sbatch --array --wrap true`` + ``squeue`` + ``sacct`` (the floor).

Prints wall times and the ratio of (a) and (b) to (c). Nothing is asserted: numbers
depend on the cluster (here: one node advertising 8 CPUs, batch_sched_delay=0, so
execution, not submission, dominates).
"""

from __future__ import annotations

import argparse
import subprocess
import time
from collections.abc import Callable
from pathlib import PurePosixPath

from scheduler_adapters.runners.local import LocalRunner
from scheduler_adapters.slurm.adapter import SlurmAdapter
from scheduler_adapters.types import ArraySpec, JobId, JobSpec, Resources

POLL_S = 0.5


def spec(root: PurePosixPath, name: str, array: ArraySpec | None = None) -> JobSpec:
    return JobSpec(
        name=name,
        template="generic.j2",
        workdir=root / name,
        resources=Resources(walltime_s=300),
        array=array,
        context={"command": ["true"]},
    )


def harvest(adapter: SlurmAdapter, ids: list[JobId], n: int) -> tuple[float, float]:
    """Poll status until all n tasks are final, then accounting until all n records are."""
    t0 = time.monotonic()
    while True:
        st = adapter.status(ids)
        if len(st) >= n and all(s.state.is_final for s in st.values()):
            break
        time.sleep(POLL_S)
    t_status = time.monotonic() - t0
    while True:
        recs = adapter.accounting(ids)
        if len(recs) >= n and all(r.state.is_final for r in recs):
            break
        time.sleep(POLL_S)
    return t_status, time.monotonic() - t0


def bench_array(adapter: SlurmAdapter, root: PurePosixPath, n: int) -> dict[str, float]:
    t0 = time.monotonic()
    job_id = adapter.submit(spec(root, "bench-array", ArraySpec.of_size(n)))
    submitted = time.monotonic() - t0
    _, harvested = harvest(adapter, [job_id], n)
    return {"submit_s": submitted, "total_s": time.monotonic() - t0, "harvest_s": harvested}


def bench_singles(adapter: SlurmAdapter, root: PurePosixPath, n: int) -> dict[str, float]:
    t0 = time.monotonic()
    ids = [adapter.submit(spec(root, f"bench-single-{i}")) for i in range(n)]
    submitted = time.monotonic() - t0
    _, harvested = harvest(adapter, ids, n)
    return {"submit_s": submitted, "total_s": time.monotonic() - t0, "harvest_s": harvested}


def sh(argv: list[str]) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout


def bench_raw(root: PurePosixPath, n: int) -> dict[str, float]:
    t0 = time.monotonic()
    job = sh(
        [
            "sbatch",
            "--parsable",
            f"--array=0-{n - 1}",
            f"--chdir={root}",
            "--output=/dev/null",
            "--job-name=bench-raw",
            "--wrap",
            "true",
        ]
    ).strip()
    submitted = time.monotonic() - t0
    while sh(
        ["squeue", "-h", "-r", "-t", "pending,running,completing", "-j", f"{job},{job}", "-o", "%i"]
    ).strip():
        time.sleep(POLL_S)
    while True:
        rows = sh(["sacct", "-P", "-n", "-X", "-j", job, "--format=JobID,State,ExitCode"])
        lines = [ln for ln in rows.splitlines() if ln.strip()]
        if len(lines) >= n and all(ln.split("|")[1] == "COMPLETED" for ln in lines):
            break
        time.sleep(POLL_S)
    total = time.monotonic() - t0
    return {"submit_s": submitted, "total_s": total, "harvest_s": total - submitted}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=500)
    parser.add_argument("--root", default="/tmp/hpcgate-bench")
    args = parser.parse_args()
    root = PurePosixPath(args.root)
    subprocess.run(["mkdir", "-p", str(root)], check=True)
    adapter = SlurmAdapter(LocalRunner(root))

    runs: list[tuple[str, Callable[[], dict[str, float]]]] = [
        ("(c) raw sbatch --array + squeue + sacct", lambda: bench_raw(root, args.n)),
        ("(a) adapter, one array", lambda: bench_array(adapter, root, args.n)),
        ("(b) adapter, single jobs", lambda: bench_singles(adapter, root, args.n)),
    ]
    results: dict[str, dict[str, float]] = {}
    for label, fn in runs:
        print(f"running {label} with n={args.n} ...", flush=True)
        results[label] = fn()
    base = results[runs[0][0]]["total_s"]
    print(f"\n{'case':42} {'submit s':>9} {'total s':>9} {'tasks/s':>8} {'vs (c)':>7}")
    for label, r in results.items():
        print(
            f"{label:42} {r['submit_s']:9.2f} {r['total_s']:9.2f} "
            f"{args.n / r['total_s']:8.1f} {r['total_s'] / base:7.2f}"
        )


if __name__ == "__main__":
    main()
