"""Benchmark ``validate_path`` on a ~1 GB SIESTA stdout against ``tail | grep``.

The big file is built at run time in a temp dir from the real 4 MiB graphite
relaxation fixture: its head (banner, options, first CG move), then the body (CG moves
1..98) repeated, then its tail (last move, relaxed coordinates, final energy, "Job
completed"). Nothing large is committed.

Prints, for the sampled (default) and the full scan:
* median wall time of ``validate_path`` in-process, and of the baseline pipeline
  ``tail -c 4M FILE | grep -a -E '<markers>'``; the ratio (target <= 2x);
* peak RSS of a fresh interpreter that imports the validator and validates the file
  (VmHWM, and ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` as an upper bound, see
  ``peak_rss_mb``; target < 100 MB).
No assertion on timing: figures depend on the machine and the page cache.

Usage: .venv/bin/python bench/bench_validate.py [--size-mb 1024] [--repeat 7] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hpcgate.codes.validation import validate_path  # noqa: E402

GRAPHITE = "graphite_relax_large_siesta41/graphite_c6_full.out"
MARKERS = (
    "SCF_NOT_CONV|GEOM_NOT_CONV|ABNORMAL_TERMINATION|Job completed|"
    "outcoor: Relaxed|siesta: +(Total|Fermi) ="
)
BAR = b"                     ====================================\n"


def siesta_fixtures_dir() -> Path:
    """Same rule as tests/helpers/fixtures_path.py, without importing pytest here."""
    env = os.environ.get("HPCGATE_SIESTA_FIXTURES")
    return Path(env) if env else REPO.parent / "shared" / "fixtures" / "siesta"


def build_big_file(src: Path, dst: Path, size_mb: int) -> int:
    """Write head + body * n + tail of the graphite relax; return the repeat count."""
    data = src.read_bytes()
    first = data.index(BAR + b"                        Begin CG opt. move =      1")
    last = data.rindex(BAR + b"                        Begin CG opt. move =     99")
    head, body, tail = data[:first], data[first:last], data[last:]
    repeats = max(1, (size_mb << 20) // len(body))
    with dst.open("wb") as fh:
        fh.write(head)
        for _ in range(repeats):
            fh.write(body)
        fh.write(tail)
    return repeats


def time_validate(path: Path, repeat: int, *, full_scan: bool) -> tuple[float, str]:
    times = []
    status = ""
    for _ in range(repeat):
        t0 = time.perf_counter()
        report = validate_path(path, full_scan=full_scan)
        times.append(time.perf_counter() - t0)
        status = report.status.value
    return statistics.median(times), status


def time_tail_grep(path: Path, repeat: int) -> float:
    cmd = f"tail -c 4M {path} | grep -a -E '{MARKERS}'"
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run(cmd, shell=True, stdout=subprocess.DEVNULL, check=False)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def peak_rss_mb(path: Path, *, full_scan: bool) -> tuple[float, float, float]:
    """Peak RSS in MB of a fresh interpreter that imports the validator and runs it.

    Returns ``(VmHWM after import, VmHWM at the end, getrusage ru_maxrss at the end)``.
    VmHWM (/proc/self/status) is the child's own high-water mark. ``ru_maxrss`` is
    what ``resource.getrusage`` reports; on Linux it also keeps the high-water mark
    of the process that spawned the child (inherited through fork+exec), so it is
    only an upper bound here.
    """
    code = (
        "import resource, sys, json\n"
        f"sys.path.insert(0, {str(REPO)!r})\n"
        "def hwm():\n"
        "    for line in open('/proc/self/status'):\n"
        "        if line.startswith('VmHWM:'):\n"
        "            return int(line.split()[1])\n"
        "    return 0\n"
        "from hpcgate.codes.validation import validate_path\n"
        "base = hwm()\n"
        f"r = validate_path({str(path)!r}, full_scan={full_scan})\n"
        "ru = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print(json.dumps([base, hwm(), ru, r.status.value]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    base_kb, peak_kb, ru_kb, _ = json.loads(out)
    return base_kb / 1024, peak_kb / 1024, ru_kb / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="keep the big file")
    parser.add_argument("--no-full-scan", action="store_true", help="skip the slow full scan")
    args = parser.parse_args()

    src = siesta_fixtures_dir() / GRAPHITE
    if not src.exists():
        print(f"fixture missing: {src} (set HPCGATE_SIESTA_FIXTURES)", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="hpcgate-bench-"))
    big = tmp / "graphite_big.out"
    try:
        t0 = time.perf_counter()
        repeats = build_big_file(src, big, args.size_mb)
        size = big.stat().st_size
        built = time.perf_counter() - t0
        print(f"built {big} ({size / 2**20:.0f} MiB, body x{repeats}) in {built:.1f} s")

        validate_path(big)  # warm the page cache for the regions we read
        time_tail_grep(big, 1)
        t_val, status = time_validate(big, args.repeat, full_scan=False)
        t_grep = time_tail_grep(big, args.repeat)
        base_rss, peak_rss, ru_rss = peak_rss_mb(big, full_scan=False)
        rows = [
            ("verdict", status),
            ("validate_path (sampled), median", f"{t_val * 1000:.2f} ms"),
            ("tail -c 4M | grep -a -E, median", f"{t_grep * 1000:.2f} ms"),
            ("ratio validate / tail|grep", f"{t_val / t_grep:.2f} x (target <= 2x)"),
            ("peak RSS (VmHWM), sampled", f"{peak_rss:.1f} MB (after import {base_rss:.1f} MB)"),
            ("getrusage ru_maxrss, sampled", f"{ru_rss:.1f} MB (upper bound, see doc)"),
        ]
        if not args.no_full_scan:
            t_full, status_full = time_validate(big, 1, full_scan=True)
            base_full, peak_full, ru_full = peak_rss_mb(big, full_scan=True)
            speed = size / 2**20 / t_full
            rows += [
                ("validate_path --full-scan", f"{t_full:.2f} s ({speed:.0f} MiB/s, {status_full})"),
                ("peak RSS (VmHWM), full scan", f"{peak_full:.1f} MB (import {base_full:.1f} MB)"),
                ("getrusage ru_maxrss, full scan", f"{ru_full:.1f} MB (upper bound)"),
            ]
        for label, value in rows:
            print(f"{label:<34} {value}")
    finally:
        if args.keep:
            print(f"kept {big}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    raise SystemExit(main())
