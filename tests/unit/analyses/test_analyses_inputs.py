"""Variant inputs: a voltage chain and a rotation, re-read with sisl; clear input errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from hpcgate.codes.siesta.fdf import InputError
from hpcgate.codes.siesta.inputs import generate_inputs
from hpcgate.codes.siesta.rotation import parse_atom_selection
from tests.helpers.analyses_env import case
from tests.helpers.ci import require_module

sisl_io = require_module("sisl.io.siesta", install_hint="scripts/bootstrap.sh dev installs sisl")


@pytest.fixture
def au_base(fx: Path, tmp_path: Path) -> Path:
    src = case(fx, "ts_au_100_bias_siesta41")
    base = tmp_path / "base"
    base.mkdir()
    shutil.copyfile(src / "0.00V" / "au_100.fdf", base / "au_100.fdf")
    shutil.copyfile(src / "Au.psf", base / "Au.psf")
    return base / "au_100.fdf"


def test_voltage_chain(au_base: Path, tmp_path: Path) -> None:
    biases = [0.0, 0.25, "0.5 eV"]
    steps = generate_inputs(au_base, [{"TS.Voltage": b} for b in biases], tmp_path / "chain")
    assert [s.index for s in steps] == [0, 1, 2]
    for step, expected in zip(steps, [0.0, 0.25, 0.5], strict=True):
        fdf = sisl_io.fdfSileSiesta(str(step.fdf))
        assert fdf.get("TS.Voltage", unit="eV") == pytest.approx(expected)
        assert fdf.get("SystemLabel") == "au_100"
        assert fdf.get("TS.DE.Save") is True
        assert fdf.get("TS.HS.Save") is True
        # the rest of the input is untouched (sisl's set() glues lines with non-str values)
        assert fdf.get("MaxSCFIterations") == 300
        assert fdf.get("DM.MixingWeight") == pytest.approx(0.05)
        assert (step.directory / "Au.psf").is_file()
        assert step.external == ("./elec_au_100.TSHS",)
    assert steps[0].inherit == ()
    assert steps[1].inherit == ("au_100.DM", "au_100.TSDE")
    assert steps[1].settings["DM.UseSaveDM"] == "true"
    assert sisl_io.fdfSileSiesta(str(steps[2].fdf)).get("DM.UseSaveDM") is True
    text = steps[1].fdf.read_text()
    assert text.count("TS.Voltage") == 1  # replaced, not added above the old line


def test_a_differently_spelled_key_is_replaced(au_base: Path, tmp_path: Path) -> None:
    au_base.write_text(au_base.read_text().replace("TS.Voltage 0.0 eV", "ts_voltage 0.0 eV"))
    (step,) = generate_inputs(au_base, [{"TS.Voltage": 0.25}], tmp_path / "s")
    text = step.fdf.read_text().lower()
    assert "ts_voltage" not in text
    assert sisl_io.fdfSileSiesta(str(step.fdf)).get("TS.Voltage", unit="eV") == 0.25


def test_sweep_steps_are_independent(au_base: Path, tmp_path: Path) -> None:
    steps = generate_inputs(
        au_base, [{"MeshCutoff": 200}, {"MeshCutoff": "300 Ry"}], tmp_path / "sw", chain=False
    )
    assert [s.inherit for s in steps] == [(), ()]
    cutoffs = [sisl_io.fdfSileSiesta(str(s.fdf)).get("MeshCutoff", unit="Ry") for s in steps]
    assert cutoffs == [200.0, 300.0]


def test_rotation_of_a_molecule(fx: Path, tmp_path: Path) -> None:
    src = case(fx, "h2o_scf_siesta5") / "h2o_dipole.fdf"
    original = sisl_io.fdfSileSiesta(str(src)).read_geometry()
    variants = [{"rotation": {"angle": a, "axis": [0, 0, 1], "atoms": "1-3"}} for a in (0, 90)]
    steps = generate_inputs(src, variants, tmp_path / "rot")
    assert steps[1].inherit == ("h2o_dipole.DM",)  # a chain: rotations reuse the DM
    for step, angle in zip(steps, (0.0, 90.0), strict=True):
        fdf = sisl_io.fdfSileSiesta(str(step.fdf))
        geom = fdf.read_geometry()
        assert fdf.get("AtomicCoordinatesFormat") == "Ang"
        assert fdf.get("MD.UseSaveXV") is False
        # independent check: rotate by hand about the centroid of atoms 1-3
        xyz = original.xyz.copy()
        centre = xyz[:3].mean(axis=0)
        t = np.radians(angle)
        rot = np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]])
        xyz[:3] = (xyz[:3] - centre) @ rot.T + centre
        assert np.allclose(geom.xyz, xyz, atol=1e-6)
        assert [a.symbol for a in geom.atoms] == [a.symbol for a in original.atoms]
        # bond lengths of the rotated molecule are kept
        assert np.linalg.norm(geom.xyz[1] - geom.xyz[0]) == pytest.approx(
            np.linalg.norm(original.xyz[1] - original.xyz[0])
        )


def test_missing_pseudopotential_is_a_clear_error(au_base: Path, tmp_path: Path) -> None:
    (au_base.parent / "Au.psf").unlink()
    with pytest.raises(InputError) as info:
        generate_inputs(au_base, [{"TS.Voltage": 0.1}], tmp_path / "x")
    assert "no pseudopotential file for species Au (Au.psf or Au.psml)" in info.value.message
    assert info.value.status_code == 422


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace("%endblock ChemicalSpeciesLabel", ""), "%block inside the block"),
        (lambda t: t + "\n%block Foo\n 1 2 3\n", "is never closed"),
        (lambda t: t.replace("%endblock LatticeVectors", "%endblock Other"), "closes the block"),
        (lambda t: t + "\n%include missing.fdf\n", "missing.fdf: included by the input"),
        (lambda t: t + "\n%endblock Stray\n", "%endblock without an open %block"),
    ],
)
def test_fdf_syntax_errors(au_base: Path, tmp_path: Path, edit: object, message: str) -> None:
    au_base.write_text(edit(au_base.read_text()))  # type: ignore[operator]
    with pytest.raises(InputError, match=message):
        generate_inputs(au_base, [{"TS.Voltage": 0.1}], tmp_path / "x")


def test_bad_variants_are_refused(au_base: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not an fdf label"):
        generate_inputs(au_base, [{"bad key": 1}], tmp_path / "a")
    with pytest.raises(InputError, match="finite"):
        generate_inputs(au_base, [{"TS.Voltage": float("nan")}], tmp_path / "b")
    with pytest.raises(InputError, match="angle"):
        generate_inputs(au_base, [{"rotation": {"axis": [0, 0, 1]}}], tmp_path / "c")


def test_atom_selection() -> None:
    assert parse_atom_selection("1-3,5", 6) == [0, 1, 2, 4]
    assert parse_atom_selection([6, 1], 6) == [0, 5]
    assert parse_atom_selection(None, 3) == [0, 1, 2]
    with pytest.raises(InputError, match=r"numbered 1\.\.6"):
        parse_atom_selection("0-2", 6)
