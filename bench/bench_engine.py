"""Engine benchmarks on the real Slurm (prints figures; asserts nothing).

1. Orchestration overhead of a 500-point sweep through hpcgate (plan, stage, submit one
   array, harvest until COMPLETED) against raw ``sbatch --array`` + ``squeue``/``sacct``
   polling on the same Slurm, in the same run. Target: ratio <= 1.2.
2. Scheduler calls per harvest tick with 10, 100 and 1000 active jobs: must stay constant.

Usage: .venv/bin/python bench/bench_engine.py [--points 500] [--skip-sweep]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path, PurePosixPath

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hpcgate.db.models.clusters import AccessMode
from hpcgate.domain.states import CalculationState, StepState
from hpcgate.engine.observe import observe
from hpcgate.engine.work import ActiveStep
from hpcgate.services.cluster_ticks import harvest_tick
from hpcgate.services.connections import ClusterConnections
from hpcgate.services.dispatch import dispatch_tick
from scheduler_adapters.registry import get_adapter
from scheduler_adapters.runners.local import LocalRunner
from tests.helpers.engine_env import engine_env

POLL = 1.0


def raw_array(points: int, workdir: Path) -> float:
    script = workdir / "raw.sh"
    script.write_text("#!/bin/bash\ntrue\n")
    t0 = time.monotonic()
    out = subprocess.run(["sbatch", "--parsable", f"--array=0-{points - 1}", "-J", "bench-raw",
                          "-o", "/dev/null", "-D", str(workdir), str(script)],
                         capture_output=True, text=True, check=True).stdout.strip()
    job = out.split(";")[0]
    while True:
        time.sleep(POLL)
        q = subprocess.run(["squeue", "-h", "-r", "-j", job, "-o", "%i"], capture_output=True,
                           text=True).stdout.split()
        acct = subprocess.run(["sacct", "-X", "-n", "-P", "-j", job, "-o", "JobID,State"],
                              capture_output=True, text=True).stdout.splitlines()
        done = sum(1 for ln in acct if ln.split("|")[1].split()[0] in ("COMPLETED", "FAILED"))
        if not q and done >= points:
            return time.monotonic() - t0


def hpcgate_sweep(points: int, tmp: Path) -> float:
    with engine_env(tmp, "hpcgate_bench") as env:
        cid = env.add_cluster("bench", scheduler="slurm", access_mode=AccessMode.LOCAL,
                              scratch_root=str(tmp / "scratch"))
        conns = ClusterConnections()
        t0 = time.monotonic()
        calc_id = env.create(
            name="bench sweep", cluster_id=cid, logical_queue="default", code="generic",
            configuration={"kind": "sweep", "command": ["true"],
                           "variants": [{"label": f"p{i}", "parameters": {"i": i}}
                                        for i in range(points)]},
        )

        def tick() -> None:
            dispatch_tick(env.engine, env.factory, conns, env.settings, claimed_by="bench")
            harvest_tick(env.engine, env.factory, conns, env.settings)

        calc = env.run_until_settled(calc_id, tick, timeout=1800, every=POLL)
        elapsed = time.monotonic() - t0
        conns.close()
        if calc.state is not CalculationState.COMPLETED:
            print(f"  warning: sweep ended {calc.state.value}: {calc.state_reason}")
        return elapsed


class CountingRunner(LocalRunner):
    def __init__(self, root: str) -> None:
        super().__init__(root)
        self.calls: list[str] = []

    def run(self, argv, **kw):  # type: ignore[no-untyped-def,override]
        self.calls.append(argv[0])
        return super().run(argv, **kw)


def calls_per_tick(counts: list[int], tmp: Path) -> None:
    runner = CountingRunner(str(tmp))
    adapter = get_adapter("slurm", runner)
    script = tmp / "held.sh"
    script.write_text("#!/bin/bash\ntrue\n")
    for n in counts:
        ids = []
        for _ in range(n):
            out = subprocess.run(["sbatch", "--parsable", "--hold", "-J", "bench-held", "-o",
                                  "/dev/null", str(script)], capture_output=True, text=True,
                                 check=True).stdout.strip()
            ids.append(out.split(";")[0])
        steps = [ActiveStep(step_id=i, calculation_id=1, scheduler_job_id=j,
                            workdir=str(PurePosixPath(tmp) / "w"), state=StepState.QUEUED)
                 for i, j in enumerate(ids)]
        runner.calls.clear()
        t0 = time.monotonic()
        obs = observe(adapter, steps)
        dt = time.monotonic() - t0
        print(f"  {n:5d} active jobs: {len(runner.calls)} scheduler call(s) "
              f"{sorted(set(runner.calls))}, {dt * 1000:.0f} ms, {len(obs)} observations")
        for chunk in range(0, len(ids), 500):
            subprocess.run(["scancel", *ids[chunk:chunk + 500]], check=False)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", type=int, default=500)
    ap.add_argument("--skip-sweep", action="store_true")
    ap.add_argument("--counts", default="10,100,1000")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="hpcgate-bench-") as d:
        tmp = Path(d)
        print("scheduler calls per harvest tick (must be constant):")
        calls_per_tick([int(c) for c in args.counts.split(",")], tmp)
        if not args.skip_sweep:
            print(f"\n{args.points}-point sweep, poll interval {POLL:.0f} s for both:")
            raw = raw_array(args.points, tmp)
            print(f"  raw sbatch --array + squeue/sacct : {raw:7.1f} s")
            ours = hpcgate_sweep(args.points, tmp)
            print(f"  hpcgate (plan+stage+submit+harvest): {ours:7.1f} s")
            print(f"  ratio hpcgate / raw               : {ours / raw:7.2f}  (target <= 1.2)")


if __name__ == "__main__":
    main()
