"""The real SIESTA for tests: where the binaries and pseudopotentials are, our small inputs.

``scripts/services/siesta.sh`` installs ``siesta``/``tbtrans`` into ``<prefix>/bin`` and the
pseudopotentials into ``<prefix>/share/siesta/pseudos`` (``HPCGATE_SIESTA_PSEUDOS``
overrides that directory). The inputs are our own, in ``tests/data/siesta/<case>/``, except
the Au chain ladder, which the demo seeds too and so ships as package data
(``hpcgate/demo_data/au_chain/``: one copy). The GPL test-suite pseudopotentials stay in
the installation and are read at test time.
A missing SIESTA skips outside CI and fails under ``CI=true`` (``tests/helpers/ci.py``).
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from hpcgate.demo_transiesta import AU_CHAIN_DIR
from tests.helpers.ci import missing, require_tool

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data" / "siesta"
# Cases the demo uses as well live in the package (installed without tests/).
PACKAGE_CASES = {"au_chain": AU_CHAIN_DIR}
INSTALL_HINT = "scripts/services/siesta.sh"
PSEUDOS_ENV = "HPCGATE_SIESTA_PSEUDOS"
# The line SIESTA 4.1 prints when a run starts from a saved density matrix (DM.UseSaveDM).
DM_READ_MARKER = "Attempting to read DM from file... Succeeded..."

_SPECIES_BLOCK = re.compile(
    r"(?ims)^\s*%block\s+ChemicalSpeciesLabel\s*$(.*?)^\s*%endblock\s+ChemicalSpeciesLabel"
)


@dataclass(frozen=True)
class SiestaTools:
    siesta: Path
    tbtrans: Path
    pseudos: Path


def siesta_pseudos_dir(siesta: Path | None = None) -> Path:
    """``$HPCGATE_SIESTA_PSEUDOS``, else ``<prefix>/share/siesta/pseudos`` beside the binary."""
    env = os.environ.get(PSEUDOS_ENV)
    if env:
        return Path(env).expanduser().resolve()
    prefix = (siesta.resolve().parent.parent) if siesta else Path("/usr/local")
    return prefix / "share" / "siesta" / "pseudos"


def require_siesta() -> SiestaTools:
    """The installed SIESTA, TBtrans and pseudopotentials, or skip/fail naming the installer."""
    siesta = Path(require_tool("siesta", install_hint=INSTALL_HINT))
    tbtrans = Path(require_tool("tbtrans", install_hint=INSTALL_HINT))
    pseudos = siesta_pseudos_dir(siesta)
    if not any(pseudos.glob("*.psf")):
        missing(
            f"no SIESTA pseudopotentials (*.psf) in {pseudos} "
            f"(run {INSTALL_HINT}, or set {PSEUDOS_ENV})"
        )
    return SiestaTools(siesta, tbtrans, pseudos)


def species_labels(fdf_text: str) -> list[str]:
    """The species labels of an fdf's ChemicalSpeciesLabel block, in order."""
    block = _SPECIES_BLOCK.search(fdf_text)
    if block is None:
        raise ValueError("the fdf has no ChemicalSpeciesLabel block")
    return [line.split()[2] for line in block.group(1).splitlines() if len(line.split()) >= 3]


def siesta_case(name: str, tools: SiestaTools | None = None) -> dict[str, str]:
    """Input files of ``tests/data/siesta/<name>/`` (or the package's copy for the cases
    the demo shares) plus the ``.psf`` of every species."""
    tools = tools or require_siesta()
    folder = PACKAGE_CASES.get(name, DATA / name)
    files = {p.name: p.read_text(encoding="utf-8") for p in sorted(folder.glob("*.fdf"))}
    if not files:
        raise FileNotFoundError(f"no .fdf in {folder}")
    for text in list(files.values()):
        for label in species_labels(text):
            psf = tools.pseudos / f"{label}.psf"
            if not psf.is_file():
                missing(f"pseudopotential {psf.name} not in {tools.pseudos} (run {INSTALL_HINT})")
            files[psf.name] = psf.read_text(encoding="utf-8")
    return files


def run_siesta(workdir: Path, files: dict[str, str], main: str, *, timeout: float = 120) -> Path:
    """Run the real ``siesta < main`` in ``workdir`` (the reference for cross-checks).

    Returns the stdout file ``<main stem>.out``; a non-zero exit fails loudly.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (workdir / name).write_text(text, encoding="utf-8")
    out = workdir / (Path(main).stem + ".out")
    with (workdir / main).open("rb") as stdin, out.open("wb") as stdout:
        proc = subprocess.run(
            ["siesta"],
            cwd=workdir,
            stdin=stdin,
            stdout=stdout,
            stderr=subprocess.PIPE,
            timeout=timeout,
            check=False,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
    if proc.returncode != 0:
        raise AssertionError(
            f"siesta failed in {workdir} (rc={proc.returncode}): {proc.stderr.decode()[-2000:]}"
        )
    return out


def final_energy_ev(stdout: Path) -> float:
    """The run's total energy as sisl reads it from the stdout (independent of hpcgate)."""
    import sisl.io.siesta as sio

    with stdout.open(encoding="utf-8", errors="replace") as fh:
        energy = sio.stdoutSileSiesta(fh).read_energy()
    return float(energy["total"])
