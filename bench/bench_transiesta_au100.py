"""Science benchmark: SIESTA's own ``ts_au_100`` TranSIESTA case through hpcgate on the real Slurm.

Opt-in, NOT part of ``make test``: this SIESTA build is serial (no MPI), and the case is
large (36-atom SZP electrode with k 2x2x10; 112-atom scattering region). Serially it takes
hours, not minutes, on a 2-core machine. Measured here on 2026-12-07 through hpcgate on the
one-node Slurm, with the machine also running a test suite: the electrode step took 5 min
19 s; the 0 V device spent about 25 min on its initial SIESTA SCF and the electrodes'
Green's functions, then about 25 min per TranSIESTA SCF iteration, and was stopped after
81 min (2 TranSIESTA iterations). Run it on an idle machine with ``--timeout-min`` of a few
hundred minutes, or on a cluster partition.

What it does, with the real ``siesta``/``tbtrans`` (``scripts/services/siesta.sh``) and the
one-node Slurm (``scripts/services/slurm.sh``):

1. reads the inputs of the SIESTA test suite's ``ts_au_100`` case from the shared fixtures
   (``$HPCGATE_SIESTA_FIXTURES/ts_au_100_bias_siesta41``: the 0.25 V device fdf, the
   electrode fdf and ``Au.psf``);
2. submits them as ONE hpcgate TranSIESTA ladder (``configuration.kind = "transiesta"``:
   electrode, 0 V, 0.25 V, TBtrans per point) to a local-access Slurm cluster, and lets
   the worker's own dispatch and harvest ticks drive it to the end;
3. prints the wall time of every step (from the scheduler's start and end, as harvested)
   and the I-V point at 0.25 V beside the reference current that SIESTA's own test suite
   recorded (``0.25V/tbt_au_100.out``: ``Left -> Right, V [V] / I [A]: ... A``, read from
   the file, 7.69618e-6 A), with the relative difference.

Usage: .venv/bin/python bench/bench_transiesta_au100.py [--timeout-min 600] [--partition long]
       [--keep]
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hpcgate.db.models.clusters import AccessMode
from hpcgate.services.cluster_ticks import harvest_tick
from hpcgate.services.connections import ClusterConnections
from hpcgate.services.dispatch import dispatch_tick
from tests.helpers.engine_env import engine_env
from tests.helpers.fixtures_path import siesta_fixtures_dir

CASE = "ts_au_100_bias_siesta41"
CURRENT_RE = re.compile(r"Left -> Right, V \[V\] / I \[A\]:\s*(\S+)\s*V\s*/\s*(\S+)\s*A")
CLUSTER_HPCGATE_ENV = Path("/var/lib/hpcgate-test/cluster-python/env")


def _need(program: str, hint: str) -> None:
    if shutil.which(program) is None:
        sys.exit(f"{program} not found on PATH: run {hint}")


def reference_current(case: Path) -> tuple[float, float]:
    """(bias V, current A) that SIESTA's own test suite printed for the 0.25 V point."""
    found = CURRENT_RE.search((case / "0.25V" / "tbt_au_100.out").read_text(errors="replace"))
    if found is None:
        sys.exit(f"no 'V [V] / I [A]' line in {case / '0.25V' / 'tbt_au_100.out'}")
    return float(found.group(1)), float(found.group(2))


def hpcgate_command() -> list[str]:
    """The hpcgate that jobs call for in-job validation (the cluster-side venv if present)."""
    if CLUSTER_HPCGATE_ENV.is_file():
        return [CLUSTER_HPCGATE_ENV.read_text().strip().split("=", 1)[1]]
    return [sys.executable, "-m", "hpcgate.cli"]


def ladder_body(case: Path, cluster_id: int) -> dict[str, Any]:
    inputs = {
        "au_100.fdf": (case / "0.25V" / "au_100.fdf").read_text(),
        "elec_au_100.fdf": (case / "0.25V" / "elec_au_100.fdf").read_text(),
        "Au.psf": (case / "Au.psf").read_text(),
    }
    return {
        "name": "ts_au_100 ladder (bench)",
        "cluster_id": cluster_id,
        "logical_queue": "default",
        "code": "siesta",
        "configuration": {
            "kind": "transiesta",
            "inputs": inputs,
            "device": "au_100.fdf",
            "electrodes": {"Left": "elec_au_100.fdf", "Right": "elec_au_100.fdf"},
            "biases_v": [0.0, 0.25],
            "resources": {"tasks": 1, "walltime_s": 4 * 3600},
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout-min", type=float, default=600.0)
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    parser.add_argument(
        "--partition", default="long", help="Slurm partition without a short time limit"
    )
    args = parser.parse_args()
    _need("siesta", "scripts/services/siesta.sh")
    _need("tbtrans", "scripts/services/siesta.sh")
    _need("sbatch", "scripts/services/slurm.sh")
    case = siesta_fixtures_dir() / CASE
    if not case.is_dir():
        sys.exit(f"fixture {case} not found (set HPCGATE_SIESTA_FIXTURES)")
    ref_bias, ref_current = reference_current(case)

    tmp = Path(tempfile.mkdtemp(prefix="bench-au100-", dir=os.environ.get("TMPDIR", "/var/tmp")))
    tmp.chmod(0o755)
    try:
        with engine_env(tmp, "hpcgate_bench_au100") as env:
            cid = env.add_cluster(
                "bench-au100",
                scheduler="slurm",
                access_mode=AccessMode.LOCAL,
                scratch_root=str(tmp / "scratch"),
                queues={"default": args.partition},
                options={"hpcgate_command": hpcgate_command()},
            )
            body = ladder_body(case, cid)
            calc_id = env.create(
                name=body["name"],
                cluster_id=cid,
                logical_queue="default",
                code="siesta",
                configuration=body["configuration"],
            )
            conns = ClusterConnections()
            t0 = time.monotonic()

            def tick() -> None:
                dispatch_tick(env.engine, env.factory, conns, env.settings, claimed_by="bench")
                harvest_tick(env.engine, env.factory, conns, env.settings)

            try:
                calc = env.run_until_settled(
                    calc_id, tick, timeout=args.timeout_min * 60, every=5.0
                )
            finally:
                conns.close()
            total = time.monotonic() - t0
            print(f"ladder {calc_id}: {calc.state.value} in {total / 60:.1f} min")
            print(f"{'step':28s} {'state':10s} {'wall s':>8s}")
            for step in env.steps(calc_id):
                wall = (
                    (step.finished_at - step.started_at).total_seconds()
                    if step.started_at and step.finished_at
                    else float("nan")
                )
                print(f"{step.label:28s} {step.state.value:10s} {wall:8.0f}")
            point = _point_at(env, calc_id, ref_bias)
            if point is None:
                print(f"no I-V point at {ref_bias} V (see the step reasons above)")
                return
            rel = abs(point - ref_current) / abs(ref_current)
            print(
                f"I({ref_bias:g} V): hpcgate {point:.6e} A, SIESTA test-suite reference "
                f"{ref_current:.6e} A, relative difference {rel:.2e}"
            )
    finally:
        if args.keep:
            print(f"scratch kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def _point_at(env: Any, calc_id: int, bias: float) -> float | None:
    """The I-V curve's current at ``bias``, as the service stored the transiesta_iv result."""
    from sqlalchemy import select

    from hpcgate.db.models import AnalysisResult

    with env.factory() as s:
        rows = s.scalars(
            select(AnalysisResult).where(
                AnalysisResult.calculation_id == calc_id,
                AnalysisResult.analysis == "transiesta_iv",
            )
        ).all()
        for row in rows:
            data = (row.data or {}).get("data", row.data or {})
            for p in data.get("points", []):
                if abs(float(p["bias_v"]) - bias) < 1e-9:
                    return float(p["current_a"])
    return None


if __name__ == "__main__":
    main()
