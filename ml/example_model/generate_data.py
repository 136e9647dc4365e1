#!/usr/bin/env python3
"""Build the example model's training data by running Quantum ESPRESSO for real.

For each of a set of small systems (molecules in a box, insulators, metals, magnetic
metals) it draws SCF settings at random - mixing, electron_maxstep, conv_thr, cutoffs,
k-points, smearing, lattice strain, box size - writes the pw.x input, runs ``pw.x``
(Debian's quantum-espresso, one MPI-less process per run, ``OMP_NUM_THREADS=1``) and
reads the outcome with hpcgate's own validator (``hpcgate.codes.validation``), exactly
as a job on a cluster is judged. One CSV row per run: the descriptors of
``features.describe`` plus the verdict, the SCF iterations and the total energy.

    .venv/bin/python ml/example_model/generate_data.py --runs-per-system 45 --jobs 2

Deterministic for a given ``--seed`` (the draws; pw.x timings differ run to run).
Takes ~10-15 minutes on 2 cores for the committed data set.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent.parent))

from features import DESCRIPTORS, describe  # noqa: E402

from hpcgate.codes.validation import validate_path  # noqa: E402

PSEUDO_DIR = Path(os.environ.get("HPCGATE_QE_PSEUDO_DIR", "/usr/share/espresso/pseudo"))
OUTCOMES = ("system", "seed", "status", "converged", "scf_iterations", "energy_total_ev", "wall_s")


@dataclass(frozen=True)
class System:
    name: str
    kind: str  # molecule | insulator | metal | magnetic (a spin molecule: molecule + nspin)
    species: str  # ATOMIC_SPECIES body
    positions: str  # ATOMIC_POSITIONS card (header included)
    ibrav: int
    alat: float  # bohr
    nat: int
    ntyp: int
    ecut: float  # base ecutwfc (Ry)
    dual: float  # ecutrho / ecutwfc
    extra_system: str = ""  # e.g. starting_magnetization


def _molecule(name: str, species: str, positions: str, nat: int, ntyp: int, **kw: Any) -> System:
    return System(name, "molecule", species, positions, 1, 12.0, nat, ntyp, **kw)


SYSTEMS: list[System] = [
    _molecule(
        "H2",
        "H 1.008 H.pz-vbc.UPF",
        "ATOMIC_POSITIONS bohr\nH 0 0 0\nH 1.4 0 0",
        2,
        1,
        ecut=25.0,
        dual=4.0,
    ),
    _molecule(
        "H2O",
        "H 1.008 H.pz-vbc.UPF\nO 15.999 O.pz-rrkjus.UPF",
        "ATOMIC_POSITIONS bohr\nO 0 0 0\nH 1.43 1.11 0\nH -1.43 1.11 0",
        3,
        2,
        ecut=25.0,
        dual=8.0,
    ),
    _molecule(
        "CO",
        "C 12.011 C.pz-rrkjus.UPF\nO 15.999 O.pz-rrkjus.UPF",
        "ATOMIC_POSITIONS bohr\nC 0 0 0\nO 2.13 0 0",
        2,
        2,
        ecut=25.0,
        dual=8.0,
    ),
    _molecule(
        "CH4",
        "C 12.011 C.pz-rrkjus.UPF\nH 1.008 H.pz-vbc.UPF",
        "ATOMIC_POSITIONS bohr\nC 0 0 0\nH 1.19 1.19 1.19\nH -1.19 -1.19 1.19\n"
        "H -1.19 1.19 -1.19\nH 1.19 -1.19 -1.19",
        5,
        2,
        ecut=25.0,
        dual=8.0,
    ),
    _molecule(
        "N2",
        "N 14.007 N.pbe-n-rrkjus_psl.1.0.0.UPF",
        "ATOMIC_POSITIONS bohr\nN 0 0 0\nN 2.07 0 0",
        2,
        1,
        ecut=25.0,
        dual=8.0,
    ),
    _molecule(
        "O2",
        "O 15.999 O.pz-rrkjus.UPF",
        "ATOMIC_POSITIONS bohr\nO 0 0 0\nO 2.28 0 0",
        2,
        1,
        ecut=25.0,
        dual=8.0,
        extra_system="nspin=2, starting_magnetization(1)=0.5",
    ),
    System(
        "Si",
        "insulator",
        "Si 28.086 Si.pz-vbc.UPF",
        "ATOMIC_POSITIONS alat\nSi 0 0 0\nSi 0.25 0.25 0.25",
        2,
        10.26,
        2,
        1,
        18.0,
        4.0,
    ),
    System(
        "Si8",
        "insulator",
        "Si 28.086 Si.pz-vbc.UPF",
        "ATOMIC_POSITIONS crystal\nSi 0 0 0\nSi 0 0.5 0.5\nSi 0.5 0 0.5\nSi 0.5 0.5 0\n"
        "Si 0.25 0.25 0.25\nSi 0.25 0.75 0.75\nSi 0.75 0.25 0.75\nSi 0.75 0.75 0.25",
        1,
        10.26,
        8,
        1,
        15.0,
        4.0,
    ),
    System(
        "C",
        "insulator",
        "C 12.011 C.pz-rrkjus.UPF",
        "ATOMIC_POSITIONS alat\nC 0 0 0\nC 0.25 0.25 0.25",
        2,
        6.74,
        2,
        1,
        25.0,
        8.0,
    ),
    System(
        "Al",
        "metal",
        "Al 26.98 Al.pz-vbc.UPF",
        "ATOMIC_POSITIONS alat\nAl 0 0 0",
        2,
        7.50,
        1,
        1,
        15.0,
        4.0,
    ),
    System(
        "Al4",
        "metal",
        "Al 26.98 Al.pz-vbc.UPF",
        "ATOMIC_POSITIONS crystal\nAl 0 0 0\nAl 0 0.5 0.5\nAl 0.5 0 0.5\nAl 0.5 0.5 0",
        1,
        7.50,
        4,
        1,
        15.0,
        4.0,
    ),
    System(
        "Li",
        "metal",
        "Li 6.94 Li.pbesol-s-rrkjus_psl.0.2.1.UPF",
        "ATOMIC_POSITIONS alat\nLi 0 0 0",
        3,
        6.48,
        1,
        1,
        25.0,
        8.0,
    ),
    System(
        "Cu",
        "metal",
        "Cu 63.546 Cu.pz-d-rrkjus.UPF",
        "ATOMIC_POSITIONS alat\nCu 0 0 0",
        2,
        6.73,
        1,
        1,
        25.0,
        8.0,
    ),
    System(
        "Fe",
        "magnetic",
        "Fe 55.845 Fe.pz-nd-rrkjus.UPF",
        "ATOMIC_POSITIONS alat\nFe 0 0 0",
        3,
        5.217,
        1,
        1,
        25.0,
        8.0,
        "nspin=2, starting_magnetization(1)=0.6",
    ),
    System(
        "Ni",
        "magnetic",
        "Ni 58.693 Ni.pz-nd-rrkjus.UPF",
        "ATOMIC_POSITIONS alat\nNi 0 0 0",
        2,
        6.48,
        1,
        1,
        25.0,
        8.0,
        "nspin=2, starting_magnetization(1)=0.5",
    ),
]


def draw_input(system: System, rng: random.Random) -> str:
    """One pw.x SCF input with randomly drawn numerical settings."""
    beta = rng.choice([0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])
    maxstep = rng.choice([3, 4, 5, 6, 8, 10, 12, 15, 20, 30, 50])
    thr = rng.choice([1e-5, 1e-6, 1e-7, 1e-8, 1e-9, 1e-10])
    ecut = round(system.ecut * rng.choice([0.8, 1.0, 1.2]), 1)
    mode = rng.choices(["plain", "local-TF"], weights=[3, 1])[0]
    occ = ""
    if system.kind in ("metal", "magnetic"):
        degauss = rng.choice([0.002, 0.005, 0.01, 0.02, 0.04])
        occ = f", occupations='smearing', smearing='mv', degauss={degauss}"
    elif system.kind == "molecule" and (system.extra_system or rng.random() < 0.3):
        occ = f", occupations='smearing', degauss={rng.choice([0.005, 0.01, 0.02])}"
    if system.kind == "molecule":
        alat = rng.choice([8.0, 9.0, 10.0, 11.0, 12.0])
        kpoints = "K_POINTS gamma"
    else:
        alat = round(system.alat * rng.uniform(0.97, 1.03), 4)
        nk = rng.choice([2, 3, 4, 6, 8]) if system.nat <= 2 else rng.choice([1, 2, 3, 4])
        kpoints = f"K_POINTS automatic\n{nk} {nk} {nk} 0 0 0"
    extra = f", {system.extra_system}" if system.extra_system else ""
    return (
        f"&control calculation='scf', prefix='run', pseudo_dir='{PSEUDO_DIR}', outdir='./tmp',"
        " disk_io='none' /\n"
        f"&system ibrav={system.ibrav}, celldm(1)={alat}, nat={system.nat}, ntyp={system.ntyp},"
        f" ecutwfc={ecut}, ecutrho={ecut * system.dual}{occ}{extra} /\n"
        f"&electrons conv_thr={thr:.0e}, mixing_beta={beta}, mixing_mode='{mode}',"
        f" electron_maxstep={maxstep} /\n"
        f"ATOMIC_SPECIES\n{system.species}\n{system.positions}\n{kpoints}\n"
    )


def run_one(pw: str, text: str, timeout: float) -> tuple[dict[str, Any], float]:
    """Run pw.x on ``text`` in a scratch directory; the validator's verdict and wall time."""
    with tempfile.TemporaryDirectory(prefix="hpcgate-qe-") as tmp:
        run = Path(tmp)
        (run / "pw.in").write_text(text)
        t0 = time.monotonic()
        # a timeout leaves an unfinished output: the validator calls it incomplete
        with open(run / "pw.out", "wb") as out, contextlib.suppress(subprocess.TimeoutExpired):
            subprocess.run(
                [pw, "-in", "pw.in"],
                cwd=run,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "OMP_NUM_THREADS": "1"},
                timeout=timeout,
                check=False,
            )
        wall = time.monotonic() - t0
        return validate_path(run / "pw.out", "qe").to_dict(), wall


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs-per-system", type=int, default=45)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--seed", type=int, default=20261130)
    ap.add_argument("--timeout", type=float, default=120.0)
    ap.add_argument("--systems", default="", help="comma-separated subset of system names")
    ap.add_argument("--out", type=Path, default=HERE / "data" / "qe_scf_runs.csv")
    args = ap.parse_args(argv)
    pw = shutil.which("pw.x")
    if pw is None:
        print("pw.x not found (apt-get install quantum-espresso)", file=sys.stderr)
        return 2
    wanted = {s for s in args.systems.split(",") if s}
    systems = [s for s in SYSTEMS if not wanted or s.name in wanted]
    jobs: list[tuple[System, int, str]] = []
    for system in systems:
        for i in range(args.runs_per_system):
            seed = args.seed * 1000 + SYSTEMS.index(system) * 100 + i
            jobs.append((system, seed, draw_input(system, random.Random(seed))))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    done = 0
    t0 = time.monotonic()

    def work(job: tuple[System, int, str]) -> dict[str, Any]:
        system, seed, text = job
        report, wall = run_one(pw, text, args.timeout)
        numbers = report["numbers"]
        row: dict[str, Any] = dict(describe(text))
        row.update(
            system=system.name,
            seed=seed,
            status=report["status"],
            converged=int(bool(report["converged"])),
            scf_iterations=numbers.get("scf_iterations_last"),
            energy_total_ev=numbers.get("energy_total_ev"),
            wall_s=round(wall, 3),
        )
        return row

    with open(args.out, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=[*OUTCOMES, *DESCRIPTORS])
        writer.writeheader()

        def progress(row: dict[str, Any]) -> None:
            nonlocal done
            done += 1
            writer.writerow(row)
            if done % 25 == 0 or done == len(jobs):
                fh.flush()
                print(f"{done}/{len(jobs)} runs, {time.monotonic() - t0:.0f} s", flush=True)

        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            for row in pool.map(work, jobs):
                progress(row)
    print(f"wrote {args.out} ({done} runs)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
