"""Each SIESTA analysis on the real fixtures; expected values are read by the test itself."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from analyses.base import MAX_POINTS
from tests.helpers.analyses_env import case, extract, grep_floats
from tests.helpers.ci import require_module

F = r"([-+]?\d+\.\d+(?:[Ee][-+]?\d+)?)"


# ---------------------------------------------------------------- scf_convergence


def test_scf_history_of_a_transiesta_run_keeps_every_iteration(fx: Path) -> None:
    run = case(fx, "ts_au_100_bias_siesta41/0.25V")
    text = (run / "au_100.out").read_text(errors="replace")
    scf_lines = re.findall(r"^\s*scf:\s+\d+.*$", text, re.M)
    ts_lines = re.findall(r"^\s*ts-scf:\s+\d+.*$", text, re.M)
    data = extract(run, "scf_convergence")["scf_convergence"]
    kinds = [(c["kind"], c["iterations"], c["converged"]) for c in data["cycles"]]
    assert kinds == [("scf", len(scf_lines), True), ("ts-scf", len(ts_lines), True)]
    assert len(scf_lines) == 36  # sisl 0.20's read_scf returns 35 rows here
    last = scf_lines[-1].split()  # scf: 36 Eharris E_KS FreeEng dDmax Ef dHmax
    assert data["cycles"][0]["final"]["dDmax"] == float(last[5])
    assert data["cycles"][0]["final"]["dHmax"] == float(last[7])
    assert data["cycles"][0]["final"]["Etot"] == float(last[3])
    assert data["all_converged"] is True
    assert data["dm_tolerance"] == 1e-4


def test_glued_fortran_fields_are_split(fx: Path) -> None:
    run = case(fx, "ts_au_100_bias_siesta41/0.25V")
    line = next(
        row for row in (run / "au_100.out").read_text(errors="replace").splitlines()
        if re.match(r"^\s*scf:\s+2\s", row)
    )  # fmt: skip
    assert line.endswith("-0.887920170.113695")  # Ef and dHmax run together
    history = extract(run, "scf_convergence")["scf_convergence"]["cycles"][0]["history"]
    assert history["Ef"][1] == -0.88792
    assert history["dHmax"][1] == 170.113695


def test_relaxation_has_one_cycle_per_geometry_step(fx: Path) -> None:
    run = case(fx, "graphite_relax_large_siesta41")
    text = (run / "graphite_c6_full.out").read_text(errors="replace")
    moves = re.findall(r"Begin CG opt\. move =\s+(\d+)", text)
    rows = re.findall(r"^\s*scf:\s+\d+", text, re.M)
    data = extract(run, "scf_convergence")["scf_convergence"]
    assert data["n_cycles"] == len(moves) == 100
    assert data["total_iterations"] == len(rows)
    assert [c["geom_step"] for c in data["cycles"]] == [int(m) for m in moves]


def test_aborted_scf_is_reported_not_converged(fx: Path) -> None:
    run = case(fx, "si_scf_not_converged_abort_max1")
    rows = re.findall(r"^\s*scf:\s+\d+", (run / "aiida.out").read_text(), re.M)
    data = extract(run, "scf_convergence")["scf_convergence"]
    assert data["all_converged"] is False
    assert data["scf_not_converged_marker"] is True
    assert data["total_iterations"] == len(rows) == 3


def test_non_utf8_stdout_is_read(fx: Path) -> None:
    run = case(fx, "h2o_scf_siesta5")
    raw = (run / "RUN.out").read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")  # the fixture really has garbage bytes
    total = grep_floats(run / "RUN.out", rf"^siesta:\s+Total =\s+{F}")[-1][0]
    data = extract(run, "energy")
    assert data["energy"]["total_eV"] == total == -950.957882


# ---------------------------------------------------------------- energy


def test_transiesta_energy_is_the_siesta_total_not_the_ts_one(fx: Path) -> None:
    run = case(fx, "ts_au_100_bias_siesta41/0.25V")
    out = run / "au_100.out"
    total = grep_floats(out, rf"^siesta:\s+Total =\s+{F}")[-1][0]
    ts_total = grep_floats(out, rf"^ts:\s+Total =\s+{F}")[-1][0]
    fermi = grep_floats(out, rf"^siesta:\s+Fermi =\s+{F}")[-1][0]
    free = grep_floats(out, rf"^siesta: FreeEng =\s+{F}")[-1][0]
    data = extract(run, "energy")["energy"]
    assert data["total_eV"] == total
    assert data["transiesta_eV"]["total"] == ts_total
    assert data["total_eV"] != ts_total
    assert data["fermi_eV"] == fermi
    assert data["free_eV"] == free
    assert data["scf_converged"] is True


def test_energy_is_refused_without_a_final_block(fx: Path) -> None:
    from analyses.base import ExtractContext
    from analyses.pipeline import extract_run

    run = case(fx, "si_scf_not_converged_abort_max1")
    doc = extract_run(run, ExtractContext(code="siesta"), ["scf_convergence", "energy"])
    assert "no final energy block" in doc["errors"]["energy"]
    assert doc["analyses"]["scf_convergence"]["all_converged"] is False


# ---------------------------------------------------------------- forces


def test_forces_from_the_fa_file(fx: Path) -> None:
    run = case(fx, "h2o_scf_siesta5")
    fa = np.loadtxt(run / "h2o_dipole.FA", skiprows=1)[:, 1:4]
    norms = np.linalg.norm(fa, axis=1)
    data = extract(run, "forces")["forces"]
    assert data["source"] == "h2o_dipole.FA"
    assert data["n_atoms"] == 6
    assert data["max_norm_atom"] == int(np.argmax(norms)) + 1
    assert data["max_norm_eV_Ang"] == pytest.approx(float(norms.max()), rel=1e-12)
    assert data["forces_eV_Ang"][0] == pytest.approx(fa[0].tolist(), abs=1e-6)


def test_forces_from_the_last_stdout_block(fx: Path) -> None:
    run = case(fx, "ts_au_100_bias_siesta41/0.25V")
    text = (run / "au_100.out").read_text(errors="replace")
    block = text[text.rindex("siesta: Atomic forces (eV/Ang):") :]
    rows = re.findall(rf"^siesta:\s+(\d+)\s+{F}\s+{F}\s+{F}\s*$", block, re.M)
    forces = np.array([[float(r[1]), float(r[2]), float(r[3])] for r in rows])
    data = extract(run, "forces")["forces"]
    assert data["n_atoms"] == len(rows) == 112
    assert data["max_component_eV_Ang"] == pytest.approx(float(np.abs(forces).max()))
    assert data["max_norm_eV_Ang"] == pytest.approx(float(np.linalg.norm(forces, axis=1).max()))


def test_max_force_per_relaxation_step(fx: Path) -> None:
    run = case(fx, "graphite_relax_large_siesta41")
    maxima = grep_floats(run / "graphite_c6_full.out", rf"^\s+Max\s+{F}\s+constrained")
    data = extract(run, "forces")["forces"]
    history = data["max_per_geometry_step"]
    assert len(history) == len(maxima) == 100
    assert [h[1] for h in history] == [m[0] for m in maxima]


# ---------------------------------------------------------------- geometry


def test_relaxed_geometry_from_the_stdout(fx: Path) -> None:
    run = case(fx, "graphite_relax_large_siesta41")
    text = (run / "graphite_c6_full.out").read_text(errors="replace")
    tail = text[text.index("outcoor: Relaxed atomic coordinates (fractional)") :]
    frac = np.array(re.findall(rf"^\s*{F}\s+{F}\s+{F}\s+\d+\s+\d+\s+\S+", tail, re.M)[:4],
                    dtype=float)  # fmt: skip
    cell_txt = text[text.rindex("outcell: Unit cell vectors (Ang):") :].splitlines()[1:4]
    cell = np.array([line.split() for line in cell_txt], dtype=float)
    data = extract(run, "relaxed_geometry")["relaxed_geometry"]
    assert data["relaxed"] is True
    assert data["formula"] == "C4"
    assert np.allclose(data["positions_Ang"], frac @ cell, atol=1e-6)
    assert np.allclose(data["cell_Ang"], cell)
    assert data["max_displacement_Ang"] > 0.0


def test_geometry_prefers_struct_out(fx: Path) -> None:
    run = case(fx, "h2o_scf_siesta5")
    lines = (run / "h2o_dipole.STRUCT_OUT").read_text().split("\n")
    na = int(lines[3].split()[0])
    data = extract(run, "relaxed_geometry")["relaxed_geometry"]
    assert data["source"] == "h2o_dipole.STRUCT_OUT"
    assert data["n_atoms"] == na == 6
    assert sorted(set(data["symbols"])) == ["H", "O"]


# ---------------------------------------------------------------- eigenvalues / bands


def _read_eig(path: Path) -> tuple[float, np.ndarray]:
    tokens = path.read_text().split()
    fermi = float(tokens[0])
    nb, nspin, nk = (int(t) for t in tokens[1:4])
    values = np.array(tokens[4:], dtype=float).reshape(nk, 1 + nb * nspin)[:, 1:]
    return fermi, values.reshape(nk, nspin, nb)


def test_eigenvalues_band_edges(fx: Path) -> None:
    run = case(fx, "h2o_scf_siesta5")
    fermi, eig = _read_eig(run / "h2o_dipole.EIG")
    homo, lumo = eig[eig <= fermi].max(), eig[eig > fermi].min()
    data = extract(run, "eigenvalues")["eigenvalues"]
    assert data["fermi_eV"] == fermi
    assert data["homo_eV"] == pytest.approx(homo)
    assert data["lumo_eV"] == pytest.approx(lumo)
    assert data["gap_eV"] == pytest.approx(lumo - homo)
    assert data["metallic"] is False


def test_spin_polarised_metal(fx: Path) -> None:
    run = case(fx, "fe_bands_siesta5")
    _, eig = _read_eig(run / "fe.EIG")
    data = extract(run, "eigenvalues")["eigenvalues"]
    assert (data["nspin"], data["nk"], data["nbands"]) == (eig.shape[1], eig.shape[0], 19)
    assert data["metallic"] is True
    assert data["gap_eV"] == 0.0


def test_band_structure_keeps_ticks_and_stays_small(fx: Path) -> None:
    run = case(fx, "srtio3_large_siesta5")
    lines = (run / "SrTiO3.bands").read_text().splitlines()
    fermi = float(lines[0].split()[0])
    nb, nspin, nk = (int(t) for t in lines[3].split())
    n_ticks = int(next(x for x in reversed(lines) if re.fullmatch(r"\s*\d+\s*", x)))
    data = extract(run, "band_structure")["band_structure"]
    assert data["fermi_eV"] == pytest.approx(fermi)
    assert (data["nbands_total"], data["nk"]) == (nb, nk)
    assert len(data["ticks"]) == len(data["tick_labels"]) == n_ticks
    assert len(data["k"]) <= MAX_POINTS
    for band in data["energies_eV"][0]:
        assert len(band) == len(data["k"])
    # first k-point, energies as written in the file (absolute eV, after the k value)
    first = [float(v) for v in " ".join(lines[4:40]).split()[1 : nb * nspin + 1]]
    for band_no, band in zip(data["bands"], data["energies_eV"][0], strict=True):
        assert band[0] == pytest.approx(first[band_no - 1], abs=1e-4)
    # the gap on the full path, from the file: SrTiO3 is an insulator
    tokens = " ".join(lines[4:]).split()[: nk * (1 + nb * nspin)]
    values = np.array(tokens, dtype=float).reshape(nk, 1 + nb * nspin)[:, 1:]
    gap = values[values > fermi].min() - values[values <= fermi].max()
    assert data["metallic"] is False
    assert data["gap_eV"] == pytest.approx(gap, abs=1e-6)


# ---------------------------------------------------------------- DOS / PDOS


def test_dos_from_the_dos_file(fx: Path) -> None:
    run = case(fx, "srtio3_large_siesta5")
    table = np.loadtxt(run / "SrTiO3.DOS")
    pdos_head = (run / "SrTiO3.PDOS").read_text()[:2000]
    fermi = float(re.search(r"<fermi_energy[^>]*>\s*([^<\s]+)\s*<", pdos_head).group(1))
    data = extract(run, "dos")["dos"]
    assert data["n_energies"] == table.shape[0] == 3000
    assert len(data["energies_eV"]) == MAX_POINTS
    assert data["fermi_eV"] == fermi
    assert data["dos_at_fermi"] == pytest.approx(np.interp(fermi, table[:, 0], table[:, 1]))
    # bin averaging keeps the integral of the spectrum
    full = np.trapezoid(table[:, 1], table[:, 0])
    small = np.trapezoid(data["dos"][0], data["energies_eV"])
    assert small == pytest.approx(full, rel=2e-3)


def test_pdos_grouped_by_species_and_l(fx: Path) -> None:
    run = case(fx, "srtio3_large_siesta5")
    root = ET.parse(run / "SrTiO3.PDOS").getroot()
    energies = np.array(root.find("energy_values").text.split(), dtype=float)
    fermi = float(root.find("fermi_energy").text)
    sums: dict[tuple[str, int], np.ndarray] = {}
    orbitals = root.findall("orbital")
    for orb in orbitals:
        key = (orb.get("species").strip(), int(orb.get("l")))
        values = np.array(orb.find("data").text.split(), dtype=float)
        sums[key] = sums.get(key, 0) + values
    data = extract(run, "pdos")["pdos"]
    assert data["n_orbitals"] == len(orbitals) == 72
    got = {(g["species"], g["l"]): g for g in data["groups"]}
    assert set(got) == set(sums)
    below = energies <= fermi
    for key, values in sums.items():
        expected = np.trapezoid(values[below], energies[below])
        assert got[key]["integral_below_fermi"] == pytest.approx(expected, rel=1e-9, abs=1e-12)
        assert len(got[key]["values"][0]) == MAX_POINTS
    assert got[("Ti", 2)]["label"] == "Ti d"


# ---------------------------------------------------------------- transport


def _k_averaged(path: Path) -> tuple[np.ndarray, np.ndarray]:
    blocks: list[tuple[float, list[list[float]]]] = []
    for line in path.read_text().splitlines():
        if "w=" in line:
            blocks.append((float(line.split("w=")[1]), []))
        elif line.strip() and not line.startswith("#"):
            blocks[-1][1].append([float(v) for v in line.split()[:2]])
    e = np.array(blocks[0][1])[:, 0]
    t = sum(w * np.array(rows)[:, 1] for w, rows in blocks)
    return e, t / sum(w for w, _ in blocks)


def test_transmission_from_k_resolved_text(fx: Path) -> None:
    run = case(fx, "ts_au_100_bias_siesta41/0.25V")
    e, t = _k_averaged(run / "au_100.TBT.TRANS_Left-Right")
    pair = extract(run, "transmission")["transmission"]["pairs"][0]
    assert (pair["from"], pair["to"]) == ("Left", "Right")
    assert pair["k_points_averaged"] == 4
    assert pair["T_at_0"] == pytest.approx(float(np.interp(0.0, e, t)), rel=1e-9)
    assert pair["T"] == pytest.approx(t.tolist(), rel=1e-5)


def test_transmission_from_netcdf_matches_the_text_average(fx: Path) -> None:
    require_module("netCDF4", install_hint="scripts/bootstrap.sh dev installs netCDF4")
    run = case(fx, "c60_tbtrans_projection")
    table = np.loadtxt(run / "projection.TBT.AVTRANS_Left-Right")
    pair = extract(run, "transmission")["transmission"]["pairs"][0]
    assert pair["origin"] == "projection.TBT.nc"
    assert pair["n_energies"] == table.shape[0]
    assert pair["T"] == pytest.approx(table[:, 1].tolist(), rel=1e-4)


@pytest.mark.parametrize(("bias_dir", "bias"), [("0.25V", 0.25), ("0.00V", 0.0)])
def test_current_from_the_tbtrans_stdout(fx: Path, bias_dir: str, bias: float) -> None:
    run = case(fx, f"ts_au_100_bias_siesta41/{bias_dir}")
    v, i = grep_floats(
        run / "tbt_au_100.out", rf"Left -> Right, V \[V\] / I \[A\]:\s*{F}\s*V\s*/\s*{F}\s*A"
    )[0]
    data = extract(run, "current", variant={"TS.Voltage": f"{bias} eV"})["current"]
    assert (data["bias_V"], data["current_A"]) == (v, i)
    assert data["bias_V"] == bias
    assert data["variant_bias_V"] == bias
    assert data["bias_mismatch"] is False
    assert data["source"] == "tbt_au_100.out"


def test_current_flags_a_bias_that_differs_from_the_variant(fx: Path) -> None:
    run = case(fx, "ts_au_100_bias_siesta41/0.25V")
    data = extract(run, "current", variant={"TS.Voltage": 0.5})["current"]
    assert data["bias_mismatch"] is True


def test_main_stdout_is_the_device_not_the_electrode(fx: Path) -> None:
    run = case(fx, "ts_au_100_bias_siesta41/0.25V")
    data = extract(run, "scf_convergence")["scf_convergence"]
    assert data["stdout"] == "au_100.out"


def test_every_extract_is_small_json(fx: Path) -> None:
    import json

    run = case(fx, "srtio3_large_siesta5")
    data = extract(run, "dos", "pdos", "band_structure", "eigenvalues")
    for name, value in data.items():
        size = len(json.dumps(value, allow_nan=False))
        assert size < 512 * 1024, (name, size)
    assert not any(
        isinstance(v, float) and not math.isfinite(v) for v in data["eigenvalues"].values()
    )
