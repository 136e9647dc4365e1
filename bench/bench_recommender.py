"""The walltime/memory recommender against always asking the queue's default, on held-out history.

    .venv/bin/python bench/bench_recommender.py [-n 400] [--queue-max 14400] [--seed 7]

History: SYNTHETIC but physically shaped SIESTA runs (``tests/helpers/recommender_history.py``):
real fdf inputs read by the real feature extraction, elapsed times from SIESTA's cost
(k-points x orbitals^3 + grid), calibrated to REAL timings: the shared fixtures' SIESTA runs
(``>> Start/End of run``) and the runs measured with ``../shared/tools/siesta``. The anchors
are printed first. Time-ordered split: the model learns from the first 80 % and is scored
on the last 20 %, as ``services/recommender`` scores itself.

Printed per method (recommender, queue default): walltime asked vs the actual elapsed time,
i.e. mean absolute error (how much is over- or under-asked), coverage (share of runs that
would not have been killed: elapsed <= asked) and core-hours held but unused; then the
ratio. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hpcgate.codes.features import feature_names, step_features
from hpcgate.services.recommender.history import Run
from hpcgate.services.recommender.model import predict, train
from hpcgate.services.recommender.service import (
    proposed_memory_mb,
    proposed_walltime_s,
)
from tests.helpers.fixtures_path import siesta_fixtures_dir
from tests.helpers.recommender_history import anchors, calibrate, synthetic_runs

#: A partition's default memory when a job asks none (an assumption: Slurm DefMemPerNode).
ASSUMED_DEFAULT_MEMORY_MB = 4096


def _history(n: int, seed: int, scale: float) -> list[Run]:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    out = []
    for i, r in enumerate(synthetic_runs(n, seed=seed, scale=scale)):
        spec = {"files": {"input.fdf": r.fdf}, "context": {"input": "input.fdf"},
                "resources": r.resources}  # fmt: skip
        features = step_features("siesta", spec, {"kind": "single"})
        finished = start + timedelta(hours=i)
        out.append(Run(i, finished, 1, r.partition, "single", features, r.elapsed_s, r.max_rss_mb))
    return out


def _print_anchors() -> float:
    found = anchors(siesta_fixtures_dir() if siesta_fixtures_dir().is_dir() else None)
    scale = calibrate(found)
    print("REAL timing anchors (features read from the fdf; seconds measured):")
    for name, f, seconds in found:
        shape = ", ".join(f"{k}={f.get(k, 0):g}" for k in ("atoms", "kpoints", "mesh_cutoff_ry"))
        print(f"  {name:32s} {shape:42s} {seconds:8.1f} s")
    print(f"cost model scale fitted to them: {scale:.3f}\n")
    return scale


def _score(asked: list[float], actual: list[float], cpus: list[float]) -> dict[str, float]:
    return {
        "mae_s": statistics.fmean(abs(a - b) for a, b in zip(asked, actual, strict=True)),
        "coverage": statistics.fmean(
            1.0 if b <= a else 0.0 for a, b in zip(asked, actual, strict=True)
        ),
        "idle_core_h": sum(max(0.0, a - b) * c for a, b, c in zip(asked, actual, cpus, strict=True))
        / 3600,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=400, help="runs in the history")
    parser.add_argument("--queue-max", type=int, default=14_400, help="queue walltime limit (s)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    scale = _print_anchors()
    runs = _history(args.n, args.seed, scale)
    cut = int(len(runs) * 0.8)
    t0 = time.perf_counter()
    model = train(runs[:cut], feature_names("siesta"))
    took = time.perf_counter() - t0
    assert model is not None
    test = runs[cut:]
    preds = [predict(model, r.features, r.kind, (r.cluster_id, r.partition)) for r in test]
    actual = [r.elapsed_s for r in test]
    cpus = [r.features["cpus"] for r in test]
    rec = _score([proposed_walltime_s(p.p90_s, args.queue_max)[0] for p in preds], actual, cpus)
    queue = _score([float(args.queue_max)] * len(test), actual, cpus)
    p50_mae = statistics.fmean(abs(p.p50_s - a) for p, a in zip(preds, actual, strict=True))
    p90_cov = statistics.fmean(
        1.0 if a <= p.p90_s else 0.0 for p, a in zip(preds, actual, strict=True)
    )
    print(f"SYNTHETIC history: {len(runs)} SIESTA runs, trained on {cut}, held out {len(test)} "
          f"(latest); training took {took:.1f} s; queue limit {args.queue_max} s")  # fmt: skip
    print(f"  held-out elapsed: median {statistics.median(actual):.0f} s, max {max(actual):.0f} s")
    print(f"  model p50 MAE {p50_mae:.1f} s; p90 coverage {p90_cov:.0%}")
    for name, s in (("recommender", rec), ("queue default", queue)):
        print(f"  {name:14s} walltime MAE {s['mae_s']:9.1f} s   coverage {s['coverage']:5.0%}   "
              f"idle core-hours held {s['idle_core_h']:9.1f}")  # fmt: skip
    print(f"  ratio queue-default MAE / recommender MAE: {queue['mae_s'] / rec['mae_s']:.1f}x")
    rss = [r.max_rss_mb or 0.0 for r in test]
    asked_mem = [proposed_memory_mb(p.p90_mb or 0.0, {"cpus": 1.0}) for p in preds]
    mem_cov = statistics.fmean(1.0 if m <= a else 0.0 for m, a in zip(rss, asked_mem, strict=True))
    mem_mae = statistics.fmean(abs(a - m) for m, a in zip(rss, asked_mem, strict=True))
    default_mae = statistics.fmean(abs(ASSUMED_DEFAULT_MEMORY_MB - m) for m in rss)
    print(f"  memory (per task): recommender MAE {mem_mae:.0f} MB, coverage {mem_cov:.0%}; "
          f"assumed default {ASSUMED_DEFAULT_MEMORY_MB} MB MAE {default_mae:.0f} MB "
          f"({default_mae / mem_mae:.1f}x)")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
