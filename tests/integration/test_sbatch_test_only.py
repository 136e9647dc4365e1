"""Every Slurm golden script, checked by the real slurmctld with ``sbatch --test-only``.

``--test-only`` parses the directives and asks the scheduler whether (and when) the job
could run, without queueing it. It catches directives sbatch rejects (e.g. qtoolkit's
``--requeue=...``) and requests no node can satisfy. It does not check the working
directory or partition time limits; the contract suite runs real jobs for that.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.helpers.ci import missing, require_tool

GOLDEN_DIR = Path(__file__).resolve().parents[1] / "golden" / "sbatch"
SLURM_GOLDENS = sorted(p for p in GOLDEN_DIR.glob("*.sh") if "\n#SBATCH " in p.read_text())

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slurm,
    pytest.mark.usefixtures("_slurm_installed"),
]


@pytest.fixture
def _slurm_installed() -> None:
    require_tool("sbatch", install_hint="scripts/services/slurm.sh")


def test_there_are_slurm_goldens() -> None:
    assert len(SLURM_GOLDENS) >= 6


@pytest.mark.parametrize("path", SLURM_GOLDENS, ids=lambda p: p.stem)
def test_sbatch_test_only_accepts_golden(path: Path) -> None:
    proc = subprocess.run(["sbatch", "--test-only", str(path)], capture_output=True, text=True,
                          timeout=30, check=False)
    if "Unable to contact slurm controller" in proc.stderr:
        missing(f"slurmctld not running: {proc.stderr.strip()}")
    assert (proc.returncode, "to start at" in proc.stderr) == (0, True), proc.stderr


def test_sbatch_test_only_rejects_a_bad_directive(tmp_path: Path) -> None:
    """The check is real: a directive sbatch does not accept fails."""
    bad = tmp_path / "bad.sh"
    bad.write_text("#!/bin/bash\n#SBATCH --requeue=yes\ntrue\n")
    proc = subprocess.run(["sbatch", "--test-only", str(bad)], capture_output=True, text=True,
                          timeout=30, check=False)
    assert proc.returncode != 0
