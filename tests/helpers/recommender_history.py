"""A SYNTHETIC but physically shaped SIESTA run history for the recommender's tests and bench.

Each run is a real fdf (atoms, k-grid, MeshCutoff, basis size, relaxation steps) whose
elapsed time follows SIESTA's cost: diagonalisation ~ k-points x orbitals^3, the real-space
grid ~ atoms x MeshCutoff^1.5, a start-up cost, MPI speed-up ~ cpus^0.8, a slower second
partition, log-normal noise and a few slow-node outliers. Peak memory (MaxRSS) ~ a base
plus orbitals^2 x k-points stored. :func:`calibrate` fits the one free scale factor to
real timing facts: the fixtures' own SIESTA runs (``>> Start of run`` / ``>> End of
run`` in ``../shared/fixtures/siesta``) and the measured runs of the SIESTA build
(``../shared/tools/siesta/README.md``). The rows are labelled synthetic wherever shown.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from hpcgate.codes.siesta.features import siesta_features
from hpcgate.db.models import Calculation, Step
from hpcgate.db.models.telemetry import HeartbeatSample
from hpcgate.domain.states import CalculationState, StepState

#: Orbitals per atom for each PAO.BasisSize ordinal (SZ .. TZDP), a typical mix of species.
ORBITALS = {1: 4.0, 2: 9.0, 3: 13.0, 4: 18.0, 5: 22.0}
_BASIS_NAMES = {1: "SZ", 2: "SZP", 3: "DZP", 4: "TZP", 5: "TZDP"}
#: Partition speed (the second partition's nodes are older).
PARTITIONS = {"batch": 1.0, "old": 0.7}

#: Measured SIESTA 4.1 runs on this machine (tools/siesta/README.md): features and seconds.
MEASURED = [
    ({"atoms": 3, "kpoints": 1, "mesh_cutoff_ry": 100, "basis_size": 1}, 1.5),
    ({"atoms": 2, "kpoints": 12, "mesh_cutoff_ry": 80, "basis_size": 1}, 0.5),
    ({"atoms": 36, "kpoints": 40, "mesh_cutoff_ry": 100, "basis_size": 2}, 172.0),
]


def cost_s(f: dict[str, float], scale: float) -> float:
    """Noise-free elapsed seconds of one serial run (before partition and cpus)."""
    orbitals = f.get("atoms", 1) * ORBITALS.get(int(f.get("basis_size", 3)), 13.0)
    diag = f.get("kpoints", 1) * orbitals**3 * 1.3e-7
    grid = f.get("atoms", 1) * f.get("mesh_cutoff_ry", 100) ** 1.5 * 2e-4
    relax = 1 + 0.5 * f.get("md_steps", 0)
    return scale * (1.0 + (diag + grid) * relax)


def peak_mb(f: dict[str, float]) -> float:
    orbitals = f.get("atoms", 1) * ORBITALS.get(int(f.get("basis_size", 3)), 13.0)
    stored_k = min(f.get("kpoints", 1), 8)
    grid = f.get("atoms", 1) * f.get("mesh_cutoff_ry", 100) * 0.02
    return 60.0 + orbitals**2 * stored_k * 8 * 3 / 2**20 + grid


def _run_seconds(out: Path) -> float | None:
    stamps = []
    for line in out.read_text(errors="replace").splitlines():
        if line.startswith((">> Start of run:", ">> End of run:")):
            stamp = " ".join(line.split(":", 1)[1].split())
            stamps.append(datetime.strptime(stamp, "%d-%b-%Y %H:%M:%S"))
    return (stamps[-1] - stamps[0]).total_seconds() if len(stamps) >= 2 else None


def anchors(fixtures: Path | None) -> list[tuple[str, dict[str, float], float]]:
    """Real (features, seconds) pairs: the fixtures' SIESTA runs and the measured ones."""
    found = [(f"measured #{i}", dict(f), s) for i, (f, s) in enumerate(MEASURED)]
    for out in sorted(fixtures.glob("*/RUN.out")) if fixtures else []:
        fdfs = {p.name: p.read_text(errors="replace") for p in out.parent.glob("*.fdf")}
        seconds = _run_seconds(out)
        if len(fdfs) == 1 and seconds:
            (main,) = fdfs
            found.append((out.parent.name, siesta_features(fdfs, main), seconds))
    return found


def calibrate(points: list[tuple[str, dict[str, float], float]]) -> float:
    """The scale factor that best fits the real timings (least squares in log space)."""
    logs = [math.log(max(s, 0.5) / cost_s(f, 1.0)) for _, f, s in points]
    return math.exp(sum(logs) / len(logs)) if logs else 1.0


def fdf_text(atoms: int, kgrid: tuple[int, int, int], mesh: int, basis: int, md: int) -> str:
    coords = "\n".join(f" {i * 1.1:.2f} {i * 0.7:.2f} 0.0 1" for i in range(atoms))
    rows = [" ".join(str(kgrid[i] if j == i else 0) for j in range(3)) for i in range(3)]
    k = "\n".join(f"{row} 0.0" for row in rows)
    relax = f"MD.TypeOfRun CG\nMD.NumCGsteps {md}\n" if md else ""
    return (
        f"SystemLabel run\nNumberOfSpecies 1\n%block ChemicalSpeciesLabel\n 1 6 C\n"
        f"%endblock ChemicalSpeciesLabel\nPAO.BasisSize {_BASIS_NAMES[basis]}\n"
        f"MeshCutoff {mesh} Ry\n%block kgrid_Monkhorst_Pack\n{k}\n%endblock kgrid_Monkhorst_Pack\n"
        f"%block AtomicCoordinatesAndAtomicSpecies\n{coords}\n"
        f"%endblock AtomicCoordinatesAndAtomicSpecies\n{relax}"
    )


@dataclass(frozen=True)
class SyntheticRun:
    fdf: str
    resources: dict[str, int]
    partition: str
    elapsed_s: float
    max_rss_mb: float
    features: dict[str, float] = field(default_factory=dict)


def synthetic_runs(
    n: int, seed: int = 7, scale: float = 1.0, atoms: int | None = None
) -> list[SyntheticRun]:
    """``n`` runs of varied size (``atoms`` fixes the size), oldest first."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        size = atoms or rng.choice([2, 4, 8, 12, 16, 24, 32, 48, 64])
        k = rng.choice([1, 2, 4])
        grid = (k, k, rng.choice([1, 2, 4]))
        mesh, basis = rng.choice([100, 150, 200, 300]), rng.choice([1, 2, 3, 4])
        md = rng.choice([0, 0, 0, 10])
        cpus, partition = rng.choice([1, 2, 4, 8]), rng.choice(list(PARTITIONS))
        text = fdf_text(size, grid, mesh, basis, md)
        f = siesta_features({"input.fdf": text}, "input.fdf")
        noise = math.exp(rng.gauss(0, 0.2)) * (1.8 if rng.random() < 0.05 else 1.0)
        elapsed = cost_s(f, scale) / PARTITIONS[partition] / cpus**0.8 * noise
        rss = peak_mb(f) * math.exp(rng.gauss(0, 0.1))
        out.append(SyntheticRun(text, {"tasks": cpus}, partition, elapsed, rss, f))
    return out


def store_history(
    session: Session, owner_id: int, cluster_id: int, runs: list[SyntheticRun], **spec: Any
) -> list[Step]:
    """Each run as a finished single-step SIESTA calculation with a MaxRSS sample."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    steps = []
    for i, run in enumerate(runs):
        began = start + timedelta(hours=i)
        calc = Calculation(
            name=f"synthetic {i}", owner_id=owner_id, cluster_id=cluster_id,
            logical_queue=run.partition, code="siesta", state=CalculationState.COMPLETED,
            configuration={"kind": "single", "inputs": {"input.fdf": run.fdf}},
        )  # fmt: skip
        session.add(calc)
        session.flush()
        step = Step(
            calculation_id=calc.id, cluster_id=cluster_id, index=0, template="siesta.j2",
            state=StepState.FINISHED, job_name=f"hpcgate-synthetic-{calc.id}",
            started_at=began, finished_at=began + timedelta(seconds=run.elapsed_s),
            spec={"files": {"input.fdf": run.fdf}, "context": {"input": "input.fdf"},
                  "resources": run.resources, "queue": run.partition, **spec},
        )  # fmt: skip
        session.add(step)
        session.flush()
        session.add(
            HeartbeatSample(
                ts=step.finished_at, cluster_id=cluster_id, step_id=step.id, scope="step",
                cpu_time_s=run.elapsed_s, max_rss_kb=int(run.max_rss_mb * 1024),
            )
        )  # fmt: skip
        steps.append(step)
    session.flush()
    return steps
