"""The SIESTA analyses on outputs the real SIESTA 4.1 writes now (H2O SCF and relaxation).

The recorded fixtures cover other SIESTA versions and failure shapes; these runs prove the
analyses read what today's binary produces. Expected values come from sisl or the raw
output text, read independently in each test.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import sisl.io.siesta as sio

from tests.helpers.analyses_env import extract
from tests.helpers.siesta_env import final_energy_ev, require_siesta, run_siesta, siesta_case

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def scf_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tools = require_siesta()
    run = tmp_path_factory.mktemp("siesta-h2o")
    run_siesta(run, siesta_case("h2o", tools), "h2o.fdf")
    return run


@pytest.fixture(scope="module")
def relax_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tools = require_siesta()
    run = tmp_path_factory.mktemp("siesta-h2o-relax")
    run_siesta(run, siesta_case("h2o_relax", tools), "h2o_relax.fdf")
    return run


def test_energy_and_scf_history(scf_run: Path) -> None:
    out = scf_run / "h2o.out"
    text = out.read_text(errors="replace")
    rows = re.findall(r"^\s*scf:\s+\d+\s+(\S+)\s+(\S+)", text, re.M)
    data = extract(scf_run, "energy", "scf_convergence")
    energy, scf = data["energy"], data["scf_convergence"]
    assert energy["total_eV"] == pytest.approx(final_energy_ev(out), abs=1e-6)
    assert energy["scf_converged"] is True
    assert scf["version"].startswith("v4.1")
    assert scf["total_iterations"] == len(rows) > 1
    assert scf["all_converged"] is True
    assert scf["cycles"][0]["history"]["Etot"][-1] == pytest.approx(float(rows[-1][1]))


def test_eigenvalues_match_the_eig_file(scf_run: Path) -> None:
    # The .EIG text: Fermi level; "nbands nspin nk"; then "ik e1 e2 ..." (one k, Gamma).
    lines = (scf_run / "h2o.EIG").read_text().split("\n")
    fermi = float(lines[0])
    nbands = int(lines[1].split()[0])
    bands = np.sort(np.array(" ".join(lines[2:]).split()[1:], dtype=float))
    data = extract(scf_run, "eigenvalues")["eigenvalues"]
    assert data["nbands"] == nbands == len(bands) == 6  # SZ: O 2s + 3x2p, two H 1s
    assert data["homo_eV"] == pytest.approx(bands[bands <= fermi].max())
    assert data["lumo_eV"] == pytest.approx(bands[bands > fermi].min())
    assert data["metallic"] is False


def test_relaxation_geometry_and_forces(relax_run: Path) -> None:
    with (relax_run / "h2o_relax.out").open(encoding="utf-8", errors="replace") as fh:
        relaxed = sio.stdoutSileSiesta(fh).read_geometry()
    forces = sio.faSileSiesta(str(relax_run / "h2o_relax.FA")).read_force()
    data = extract(relax_run, "relaxed_geometry", "forces")
    geometry, force = data["relaxed_geometry"], data["forces"]
    assert geometry["relaxed"] is True
    assert geometry["geometry_not_converged"] is False
    assert geometry["symbols"] == ["O", "H", "H"]
    assert np.allclose(geometry["positions_Ang"], relaxed.xyz, atol=1e-5)
    assert geometry["max_displacement_Ang"] > 0.01
    assert np.allclose(force["forces_eV_Ang"], forces, atol=1e-6)
    assert force["max_component_eV_Ang"] == pytest.approx(np.abs(forces).max())
    assert force["max_component_eV_Ang"] < 0.05
    steps = force["max_per_geometry_step"]
    assert len(steps) > 1
    assert steps[0][1] > 0.05  # the start was not relaxed
