"""The demo's real TranSIESTA bias ladder: a 1-D Au chain, seeded when SIESTA + TBtrans are there.

Why: the lab this is built for runs TranSIESTA ladders, so a newcomer should see one run and
an I-V curve come out of it, not only read about it. The system is the smallest that
TranSIESTA accepts and that still carries a current: a 2-atom Au electrode (used left and
right) and an 8-atom device, minimal basis. The ladder is electrode, 0 V, +0.1, +0.2 and
-0.1 V, one TBtrans job per point: a few seconds of CPU in all on the local executor.

The fdf inputs ship as package data (``hpcgate/demo_data/au_chain/``), so an installed
hpcgate needs no ``tests/`` directory; the tests run the same files. ``Au.psf`` comes from
the SIESTA installation (``scripts/services/siesta.sh`` puts it beside the binaries).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from hpcgate.settings import Settings

DEMO_LADDER = "Demo: Au chain I-V (real TranSIESTA ladder)"
AU_CHAIN_DIR = Path(__file__).resolve().parent / "demo_data" / "au_chain"
DEVICE_FDF = "device.fdf"
ELECTRODE_FDF = "elec.fdf"
BIASES_V = (0.0, 0.1, 0.2, -0.1)
SPECIES = "Au"


def find_transiesta() -> Path | None:
    """The pseudopotential directory when ``siesta``, ``tbtrans`` and ``Au.psf`` are all
    installed, else None (the demo then shows how to install them)."""
    from hpcgate.demo_siesta import pseudos_dir

    siesta = shutil.which("siesta")
    if siesta is None or shutil.which("tbtrans") is None:
        return None
    pseudos = pseudos_dir(Path(siesta))
    return pseudos if (pseudos / f"{SPECIES}.psf").is_file() else None


def ladder_inputs(pseudos: Path) -> dict[str, str]:
    """The device and electrode fdfs of the package plus the installed ``Au.psf``."""
    files = {
        name: (AU_CHAIN_DIR / name).read_text(encoding="utf-8")
        for name in (DEVICE_FDF, ELECTRODE_FDF)
    }
    files[f"{SPECIES}.psf"] = (pseudos / f"{SPECIES}.psf").read_text(encoding="utf-8")
    return files


def seed_transiesta_calculation(
    factory: sessionmaker[Session], settings: Settings, *, owner_email: str, cluster_name: str
) -> int | None:
    """The demo's Au chain ladder, created once; None when SIESTA or TBtrans is missing."""
    from hpcgate.db.models import Calculation, Cluster
    from hpcgate.db.session import session_scope
    from hpcgate.services.calculations import NewCalculation, create_calculation
    from hpcgate.services.users import get_user_by_email

    with session_scope(factory) as session:
        existing = session.scalar(select(Calculation.id).where(Calculation.name == DEMO_LADDER))
        if existing is not None:
            return int(existing)
        pseudos = find_transiesta()
        if pseudos is None:
            return None
        owner = get_user_by_email(session, owner_email)
        cluster = session.scalar(select(Cluster).where(Cluster.name == cluster_name))
        if owner is None or cluster is None:
            raise RuntimeError("demo seed incomplete")
        calc = create_calculation(
            session,
            owner,
            NewCalculation(
                name=DEMO_LADDER,
                description="A TranSIESTA bias ladder on a 1-D gold chain with the real "
                "SIESTA 4.1: the electrode once, 0 V, then +0.1/+0.2 V and -0.1 V each from "
                "the nearest converged point's density (.TSDE), and TBtrans per point. "
                "Its I-V curve is the transiesta_iv analysis.",
                cluster_id=cluster.id,
                logical_queue="default",
                code="siesta",
                analyses=[],
                configuration={
                    "kind": "transiesta",
                    "inputs": ladder_inputs(pseudos),
                    "device": DEVICE_FDF,
                    "electrodes": {"Left": ELECTRODE_FDF, "Right": ELECTRODE_FDF},
                    "biases_v": list(BIASES_V),
                    "tbtrans": True,
                },
            ),
            settings,
        )
        return calc.id


def siesta_banner(base: str, h2o_calc: int | None, ladder_calc: int | None) -> str:
    """The banner's SIESTA lines: where the real runs are, or how to get them."""
    from hpcgate.demo_siesta import INSTALL_HINT

    if h2o_calc is None and ladder_calc is None:
        return (
            "    siesta:   not installed (the demo runs without it); run "
            "scripts/services/siesta.sh\n"
            "              (installs SIESTA + TBtrans from ../shared/tools/siesta), then restart\n"
            "              the demo: it seeds a real H2O chain and a TranSIESTA bias ladder\n"
            "              (Au chain, TBtrans per point) with its I-V curve\n"
        )
    lines = []
    if h2o_calc is not None:
        lines.append(f"    siesta:   {base}/calculations/{h2o_calc} (H2O with the real SIESTA)\n")
    if ladder_calc is not None:
        lines.append(
            f"    ladder:   {base}/calculations/{ladder_calc} (TranSIESTA bias ladder, Au chain;"
            f" its I-V: GET /calculations/{ladder_calc}/results)\n"
        )
    else:
        lines.append(
            "    ladder:   not seeded: the TranSIESTA demo needs tbtrans on PATH and Au.psf "
            f"with the pseudopotentials; run {INSTALL_HINT}\n"
        )
    return "".join(lines)
