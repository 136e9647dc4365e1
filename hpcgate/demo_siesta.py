"""The demo's real SIESTA calculation: H2O, seeded only when SIESTA is installed.

Why: hpcgate is built for a SIESTA lab, so the demo shows a real SIESTA run next to the
Newton chain: a two-step MeshCutoff chain on a water molecule (about a second per step),
the second step starting from the first one's density matrix. Without ``siesta`` on PATH
(or without its pseudopotentials) the demo still starts and says how to install it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from hpcgate.settings import Settings

DEMO_SIESTA = "Demo: H2O with the real SIESTA (MeshCutoff chain)"
INSTALL_HINT = "scripts/services/siesta.sh (installs SIESTA + TBtrans from ../shared/tools/siesta)"
PSEUDOS_ENV = "HPCGATE_SIESTA_PSEUDOS"
SPECIES = ("O", "H")

# H2O, modelled on SIESTA's Tests/h2o with a single-zeta basis: tiny and fast.
H2O_FDF = """\
SystemName          Water molecule (hpcgate demo)
SystemLabel         h2o
NumberOfAtoms       3
NumberOfSpecies     2

PAO.BasisSize       SZ
MeshCutoff          50 Ry
MaxSCFIterations    50
DM.MixingWeight     0.3
DM.NumberPulay      3
DM.Tolerance        1.d-4

LatticeConstant     1.0 Ang
%block LatticeVectors
  8.0  0.0  0.0
  0.0  8.0  0.0
  0.0  0.0  8.0
%endblock LatticeVectors

%block ChemicalSpeciesLabel
 1  8  O
 2  1  H
%endblock ChemicalSpeciesLabel

AtomicCoordinatesFormat  Ang
%block AtomicCoordinatesAndAtomicSpecies
 0.000  0.000  0.000  1
 0.757  0.586  0.000  2
-0.757  0.586  0.000  2
%endblock AtomicCoordinatesAndAtomicSpecies
"""


def find_siesta() -> tuple[Path, Path] | None:
    """(siesta binary, pseudopotential directory) when both are installed, else None.

    The pseudopotentials are ``$HPCGATE_SIESTA_PSEUDOS`` or ``<prefix>/share/siesta/pseudos``
    beside ``<prefix>/bin/siesta`` (where ``scripts/services/siesta.sh`` puts them).
    """
    found = shutil.which("siesta")
    if found is None:
        return None
    siesta = Path(found)
    pseudos = pseudos_dir(siesta)
    if not all((pseudos / f"{s}.psf").is_file() for s in SPECIES):
        return None
    return siesta, pseudos


def pseudos_dir(siesta: Path) -> Path:
    """``$HPCGATE_SIESTA_PSEUDOS``, else ``<prefix>/share/siesta/pseudos`` beside the binary."""
    env = os.environ.get(PSEUDOS_ENV)
    return Path(env) if env else siesta.resolve().parent.parent / "share" / "siesta" / "pseudos"


def seed_siesta_calculation(
    factory: sessionmaker[Session], settings: Settings, *, owner_email: str, cluster_name: str
) -> int | None:
    """The demo's H2O chain, created once; None when SIESTA is not installed."""
    from hpcgate.db.models import Calculation, Cluster
    from hpcgate.db.session import session_scope
    from hpcgate.services.calculations import NewCalculation, create_calculation
    from hpcgate.services.users import get_user_by_email

    with session_scope(factory) as session:
        existing = session.scalar(select(Calculation.id).where(Calculation.name == DEMO_SIESTA))
        if existing is not None:
            return int(existing)
        found = find_siesta()
        if found is None:
            return None
        _, pseudos = found
        owner = get_user_by_email(session, owner_email)
        cluster = session.scalar(select(Cluster).where(Cluster.name == cluster_name))
        if owner is None or cluster is None:
            raise RuntimeError("demo seed incomplete")
        inputs = {"h2o.fdf": H2O_FDF}
        for species in SPECIES:
            inputs[f"{species}.psf"] = (pseudos / f"{species}.psf").read_text(encoding="utf-8")
        calc = create_calculation(
            session,
            owner,
            NewCalculation(
                name=DEMO_SIESTA,
                description="A water molecule with the real SIESTA 4.1 at two mesh cutoffs; "
                "the second step starts from the first step's density matrix (h2o.DM).",
                cluster_id=cluster.id,
                logical_queue="default",
                code="siesta",
                analyses=["scf_convergence", "energy"],
                configuration={
                    "kind": "chain",
                    "main_input": "h2o.fdf",
                    "inputs": inputs,
                    "variants": [
                        {"label": f"MeshCutoff {c} Ry", "parameters": {"MeshCutoff": f"{c} Ry"}}
                        for c in (40, 60)
                    ],
                },
            ),
            settings,
        )
        return calc.id
