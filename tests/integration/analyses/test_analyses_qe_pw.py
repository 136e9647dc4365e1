"""QE analyses on real pw.x outputs produced in a tmp dir (H2, LDA, under a second)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from analyses.base import ExtractContext
from analyses.pipeline import compute_all, extract_run
from tests.helpers.ci import missing

PSEUDO_DIR = Path("/usr/share/espresso/pseudo")
RY_EV = 13.605693122994

H2 = """&control calculation='scf', prefix='h2', pseudo_dir='{pseudo}', outdir='./tmp' /
&system ibrav=1, celldm(1)=12.0, nat=2, ntyp=1, ecutwfc=25.0 {extra} /
&electrons conv_thr={thr}, mixing_beta=0.7 {electrons} /
ATOMIC_SPECIES
  H 1.008 H.pz-vbc.UPF
ATOMIC_POSITIONS bohr
  H 0.0 0.0 0.0
  H 1.4 0.0 0.0
K_POINTS gamma
"""


def _run_pw(tmp: Path, *, extra: str = "", thr: str = "1.0d-8", electrons: str = "") -> Path:
    pw = shutil.which("pw.x")
    if pw is None:
        missing("pw.x not installed (apt quantum-espresso; see scripts/services/qe.sh)")
    if not (PSEUDO_DIR / "H.pz-vbc.UPF").is_file():
        missing(f"H.pz-vbc.UPF not found in {PSEUDO_DIR} (apt quantum-espresso-data)")
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "h2.in").write_text(H2.format(pseudo=PSEUDO_DIR, extra=extra, thr=thr,
                                         electrons=electrons))  # fmt: skip
    with open(tmp / "h2.out", "w") as out:
        subprocess.run(
            [pw, "-in", "h2.in"],
            cwd=tmp,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
            timeout=120,
            check=False,
        )
    return tmp


def test_converged_scf(tmp_path: Path) -> None:
    run = _run_pw(tmp_path / "scf")
    text = (run / "h2.out").read_text()
    total_ry = float(re.findall(r"^!\s+total energy\s+=\s+(\S+) Ry", text, re.M)[-1])
    homo = float(re.search(r"highest occupied level \(ev\):\s+(\S+)", text).group(1))
    n_iter = int(re.search(r"convergence has been achieved in\s+(\d+)", text).group(1))
    accuracies = re.findall(r"estimated scf accuracy\s+<\s+(\S+) Ry", text)
    doc = extract_run(run, ExtractContext(code="qe"), ["qe_scf_convergence", "qe_energy"])
    assert doc["errors"] == {}
    energy = doc["analyses"]["qe_energy"]
    assert energy["total_Ry"] == total_ry
    assert energy["total_eV"] == pytest.approx(total_ry * RY_EV)
    assert energy["homo_eV"] == homo
    assert energy["scf_converged"] is True
    scf = doc["analyses"]["qe_scf_convergence"]
    assert scf["all_converged"] is True
    assert scf["cycles"][0]["iterations"] == n_iter
    assert scf["cycles"][0]["accuracy_Ry"] == pytest.approx([float(a) for a in accuracies])
    out = compute_all(["qe_scf_convergence", "qe_energy"],
                      [{"index": 0, "label": "H2", "data": doc}], code="qe")  # fmt: skip
    assert out["qe_energy"]["summary"]["total_eV"] == pytest.approx(total_ry * RY_EV)
    assert out["qe_scf_convergence"]["series"][0]["y_scale"] == "log"


def test_smearing_reports_the_fermi_energy(tmp_path: Path) -> None:
    run = _run_pw(tmp_path / "smear", extra=", occupations='smearing', degauss=0.02")
    text = (run / "h2.out").read_text()
    fermi = float(re.search(r"the Fermi energy is\s+(\S+) ev", text).group(1))
    doc = extract_run(run, ExtractContext(code="qe"), ["qe_scf_convergence", "qe_energy"])
    assert doc["analyses"]["qe_energy"]["fermi_eV"] == fermi


def test_non_converged_scf(tmp_path: Path) -> None:
    run = _run_pw(tmp_path / "nc", thr="1.0d-12", electrons=", electron_maxstep=2")
    text = (run / "h2.out").read_text()
    assert "convergence NOT achieved" in text
    doc = extract_run(run, ExtractContext(code="qe"), ["qe_scf_convergence", "qe_energy"])
    scf = doc["analyses"]["qe_scf_convergence"]
    assert scf["all_converged"] is False
    assert scf["not_converged_marker"] is True
    assert scf["total_iterations"] == len(re.findall(r"iteration #", text)) == 2
    assert "no converged total energy" in doc["errors"]["qe_energy"]
