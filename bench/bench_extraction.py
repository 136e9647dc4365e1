"""Extraction time and peak memory on the largest SIESTA fixtures, beside sisl's plain read.

Each measurement runs in a fresh interpreter (so imports, caches and the allocator start
clean) and reports: the operation's wall time (after imports), the process' peak RSS
(``ru_maxrss``) and the RSS right after the imports, so "peak - imports" is what the
operation itself cost. Medians over ``--repeat`` runs. No assertions: this prints figures.

    .venv/bin/python bench/bench_extraction.py [--repeat 3]

Cases:
* PDOS (srtio3_large_siesta5/SrTiO3.PDOS, 3.8 MiB): our streaming ``pdos`` extraction vs
  ``pdosSileSiesta.read_data()`` (and its ``as_dataarray=True`` form);
* stdout (graphite_relax_large_siesta41, 4 MiB, 100 CG moves): our ``scf_convergence`` +
  ``energy`` + ``forces`` (one shared scan) vs sisl's ``read_scf[:](iscf=None)``,
  ``read_energy()`` and ``read_force[:]()``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

_PRELUDE = """
import json, resource, sys, time, warnings
warnings.simplefilter("ignore")
sys.path.insert(0, {repo!r})
{imports}
rss_imports = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
{op}
dt = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"seconds": dt, "peak_kib": peak, "imports_kib": rss_imports}}))
"""

_SISL = "import sisl, sisl.io.siesta as S"
_OURS = (
    "import sisl, sisl.io.siesta as S\n"  # same import cost as the baseline: fair comparison
    "from pathlib import Path\n"
    "from analyses.base import ExtractContext\n"
    "from analyses.pipeline import extract_run"
)


def cases(fixtures: Path) -> list[tuple[str, str, str, str]]:
    """(group, label, imports, operation)."""
    pdos = fixtures / "srtio3_large_siesta5" / "SrTiO3.PDOS"
    out = fixtures / "graphite_relax_large_siesta41" / "graphite_c6_full.out"
    return [
        ("PDOS 3.8 MiB", "sisl pdosSileSiesta.read_data()", _SISL,
         f"S.pdosSileSiesta({str(pdos)!r}).read_data()"),
        ("PDOS 3.8 MiB", "sisl read_data(as_dataarray=True)", _SISL,
         f"S.pdosSileSiesta({str(pdos)!r}).read_data(as_dataarray=True)"),
        ("PDOS 3.8 MiB", "hpcgate extract pdos", _OURS,
         f"extract_run(Path({str(pdos.parent)!r}), ExtractContext(code='siesta'), ['pdos'])"),
        ("stdout 4 MiB", "sisl read_scf[:] + read_energy + read_force[:]", _SISL,
         f"f = {str(out)!r}\n"
         "S.stdoutSileSiesta(open(f, errors='replace')).read_scf[:](iscf=None)\n"
         "S.stdoutSileSiesta(open(f, errors='replace')).read_energy()\n"
         "S.stdoutSileSiesta(open(f, errors='replace')).read_force[:]()"),
        ("stdout 4 MiB", "sisl read_scf[:](iscf=None) only", _SISL,
         f"S.stdoutSileSiesta(open({str(out)!r}, errors='replace')).read_scf[:](iscf=None)"),
        ("stdout 4 MiB", "hpcgate extract scf_convergence,energy,forces", _OURS,
         f"extract_run(Path({str(out.parent)!r}), ExtractContext(code='siesta'), "
         "['scf_convergence', 'energy', 'forces'])"),
    ]  # fmt: skip


def measure(imports: str, op: str) -> dict[str, float]:
    code = _PRELUDE.format(repo=str(REPO), imports=imports, op=op)
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip().splitlines()[-1] if done.stderr else "failed")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--fixtures", type=Path, default=None)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from tests.helpers.fixtures_path import siesta_fixtures_dir

    fixtures = args.fixtures or siesta_fixtures_dir()
    if not fixtures.is_dir():
        print(f"SIESTA fixtures not found at {fixtures}", file=sys.stderr)
        return 2
    rows: list[tuple[str, str, float, float, float]] = []
    for group, label, imports, op in cases(fixtures):
        runs = [measure(imports, op) for _ in range(args.repeat)]
        seconds = statistics.median(r["seconds"] for r in runs)
        peak = statistics.median(r["peak_kib"] for r in runs) / 1024
        base = statistics.median(r["imports_kib"] for r in runs) / 1024
        rows.append((group, label, seconds, peak, peak - base))
    print(f"{'case':14} {'operation':48} {'time':>9} {'peak RSS':>10} {'over imports':>13}")
    for group, label, seconds, peak, extra in rows:
        print(f"{group:14} {label:48} {seconds * 1000:7.0f}ms {peak:8.0f}MiB {extra:11.1f}MiB")
    print()
    for group in dict.fromkeys(r[0] for r in rows):
        ours = next(r for r in rows if r[0] == group and r[1].startswith("hpcgate"))
        for r in rows:
            if r[0] == group and r is not ours:
                print(f"{group}: hpcgate vs {r[1]}: time x{ours[2] / r[2]:.2f}, "
                      f"peak RSS x{ours[3] / r[3]:.2f}, over-imports "
                      f"{ours[4]:.1f} vs {r[4]:.1f} MiB")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
