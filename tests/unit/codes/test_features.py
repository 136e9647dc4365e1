"""Input features for the resource recommender: real fdfs, QE inputs and hostile text."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hpcgate.codes.features import calculation_features, feature_names, step_features
from hpcgate.codes.qe import features as qe
from hpcgate.codes.siesta import features as siesta
from hpcgate.errors import InvalidInput
from tests.helpers.fixtures_path import require_siesta_fixtures

FDF = """SystemLabel si
NumberOfSpecies 1
%block ChemicalSpeciesLabel
 1 14 Si
%endblock ChemicalSpeciesLabel
PAO.BasisSize SZP
MeshCutoff 3401.4 eV   # = 250 Ry
Spin polarized
%block kgrid_Monkhorst_Pack
 4 0 0 0.0
 0 4 0 0.0
 0 0 2 0.0
%endblock kgrid_Monkhorst_Pack
%include coords.fdf
MD.TypeOfRun CG
MD.NumCGsteps 40
"""
COORDS = """%block AtomicCoordinatesAndAtomicSpecies
 0.0 0.0 0.0 1
 1.3 1.3 1.3 1
 2.6 2.6 2.6 1
%endblock AtomicCoordinatesAndAtomicSpecies
"""
PW = """&control
  calculation = 'vc-relax'
/
&system
  ibrav = 2, celldm(1) = 10.2, nat = 2, ntyp = 1,
  ecutwfc = 30.0, nspin = 2
/
&electrons
/
ATOMIC_SPECIES
Si 28.086 Si.UPF
K_POINTS automatic
 6 6 6 0 0 0
ATOMIC_POSITIONS alat
Si 0.0 0.0 0.0
"""


def test_siesta_features_follow_includes_units_and_blocks() -> None:
    f = siesta.siesta_features({"in.fdf": FDF, "coords.fdf": COORDS}, "in.fdf")
    assert f["atoms"] == 3
    assert f["species"] == 1
    assert f["kpoints"] == 32
    assert f["mesh_cutoff_ry"] == pytest.approx(250, rel=1e-3)
    assert f["basis_size"] == 2
    assert f["spin"] == 2
    assert f["md_steps"] == 40
    assert f["transiesta"] == 0


def test_siesta_parameters_win_over_the_fdf_like_prepared_inputs() -> None:
    f = siesta.siesta_features({"in.fdf": FDF}, "in.fdf", {"MeshCutoff": "400 Ry"})
    assert f["mesh_cutoff_ry"] == 400
    assert f["atoms"] == 0  # coords.fdf is not among the files: nothing read, no error


def test_real_transiesta_fixture_reads_atoms_kpoints_and_bias() -> None:
    root = require_siesta_fixtures() / "ts_au_100_bias_siesta41" / "0.25V"
    files = {p.name: p.read_text(errors="replace") for p in root.glob("*.fdf")}
    device = siesta.siesta_features(files, "au_100.fdf")
    electrode = siesta.siesta_features(files, "elec_au_100.fdf")
    assert (device["atoms"], device["transiesta"], device["bias_v"]) == (112, 1, 0.25)
    assert (electrode["atoms"], electrode["kpoints"]) == (36, 40)


def test_qe_features() -> None:
    f = qe.qe_features({"pw.in": PW}, "pw.in", {"system.ecutwfc": 40})
    assert f == {
        "atoms": 2,
        "species": 1,
        "kpoints": 216,
        "ecutwfc_ry": 40,
        "ecutrho_ry": 160,
        "spin": 2,
        "relax": 1,
    }


def test_calculation_features_take_the_largest_variant_and_resources() -> None:
    config = {
        "kind": "chain",
        "inputs": {"pw.in": PW},
        "variants": [{"label": f"e{c}", "parameters": {"ecutwfc": c}} for c in (20, 60, 40)],
        "resources": {"tasks": 4, "cpus_per_task": 2, "nodes": 1},
    }
    f = calculation_features("qe", config)
    assert f["ecutwfc_ry"] == 60
    assert (f["cpus"], f["nodes"], f["bias_points"]) == (8, 1, 0)
    assert set(f) == set(feature_names("qe"))


def test_step_features_read_the_inputs_the_step_ran_with() -> None:
    spec = {"files": {"pw.in": PW}, "context": {"input": "pw.in"}, "resources": {"tasks": 2}}
    f = step_features("qe", spec, {"kind": "single"})
    assert (f["atoms"], f["cpus"]) == (2, 2)
    assert step_features("generic", {}, {}) == {"cpus": 1, "nodes": 1, "bias_points": 0}


def test_bad_input_names_are_the_documented_error() -> None:
    with pytest.raises(InvalidInput):
        calculation_features("siesta", {"inputs": {"../etc/passwd": "x"}})
    with pytest.raises(InvalidInput):
        calculation_features("siesta", {"inputs": {"a.fdf": 3}})


_LINES = st.lists(
    st.one_of(
        st.text(max_size=40),
        st.sampled_from(
            [
                "%block kgrid_Monkhorst_Pack",
                "%endblock",
                "%include a.fdf",
                "%include in.fdf",
                "AtomicCoordinatesAndAtomicSpecies < a.fdf",
                "%block ChemicalSpeciesLabel < in.fdf",
                "MeshCutoff nan Ry",
                "MeshCutoff 1e400 eV",
                "NumberOfAtoms -3",
                "Spin",
                "TS.Voltage inf V",
                "MD.TypeOfRun CG",
                "MD.NumCGsteps 1e999",
                "K_POINTS automatic",
                "K_POINTS",
                "nat = 1d5000, ecutwfc=",
                "&system",
                "/",
                " 4 4 x 0 0 0",
            ]
        ),
    ),
    max_size=60,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(main=_LINES, other=_LINES)
def test_hostile_text_never_raises_and_stays_finite(main: list[str], other: list[str]) -> None:
    files = {"in.fdf": "\n".join(main), "a.fdf": "\n".join(other)}
    for values in (
        siesta.siesta_features(files, "in.fdf"),
        qe.qe_features(files, "in.fdf"),
        calculation_features("siesta", {"inputs": files, "main_input": "in.fdf"}),
    ):
        assert all(v >= 0 and v < float("inf") for v in values.values()), values


def test_reading_is_bounded_by_max_lines() -> None:
    many = "%include in.fdf\n" + "%block AtomicCoordinatesAndAtomicSpecies\n" + "0 0 0 1\n" * (
        siesta.MAX_LINES + 5000
    )
    f = siesta.siesta_features({"in.fdf": many}, "in.fdf")
    assert f["atoms"] <= siesta.MAX_LINES
