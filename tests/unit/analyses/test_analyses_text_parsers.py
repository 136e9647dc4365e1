"""Text parsers (SIESTA stdout, TBtrans, pw.x): table cases plus hypothesis properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analyses.qe.stdout import RY_EV, parse_pw_stdout
from analyses.siesta.stdout import parse_scf_values, parse_siesta_stdout
from analyses.siesta.tbtrans import parse_tbt_spectrum, parse_tbtrans_stdout

finite = st.floats(min_value=-1e5, max_value=1e5, allow_nan=False, allow_infinity=False)
text_lines = st.lists(st.text(max_size=120), max_size=60)


# ---------------------------------------------------------------- SIESTA stdout


@given(st.lists(finite, min_size=1, max_size=8), st.lists(st.booleans(), min_size=8, max_size=8))
def test_six_decimal_fields_split_even_when_glued(values: list[float], glue: list[bool]) -> None:
    """Fortran f-format fields with 6 decimals may touch; the parser must still split them."""
    text = ""
    for i, v in enumerate(values):
        sep = "" if (i > 0 and glue[i]) else " "
        text += f"{sep}{v:.6f}"
    assert parse_scf_values(text) == [float(f"{v:.6f}") for v in values]


def test_overflow_stars_become_nan() -> None:
    parsed = parse_scf_values("-1.000000 ******** 2.500000")
    assert parsed[0] == -1.0
    assert math.isnan(parsed[1])
    assert parsed[2] == 2.5


@given(text_lines)
@settings(max_examples=200)
def test_siesta_scanner_never_raises_on_arbitrary_text(lines: list[str]) -> None:
    out = parse_siesta_stdout(lines)
    assert out.lines == len(lines)


def test_scf_cycles_converged_markers_and_geometry_steps() -> None:
    lines = [
        "Siesta Version  : 4.1",
        "                        Begin CG opt. move =      0",
        "        iscf     Eharris(eV)        E_KS(eV)     FreeEng(eV)     dDmax    Ef(eV) "
        "dHmax(eV)",
        "   scf:    1     -10.000000     -11.000000     -11.100000  0.500000 -3.000000  1.000000",
        "   scf:    2     -10.500000     -10.900000     -11.000000  0.000100 -3.100000  0.000900",
        "SCF cycle converged after 2 iterations",
        "                        Begin CG opt. move =      1",
        "   scf:    1     -10.600000     -10.950000     -11.050000  0.010000 -3.050000  0.100000",
        "SCF_NOT_CONV: SCF did not converge in maximum number of steps.",
        "siesta: Final energy (eV):",
        "siesta:         Total =     -10.950000",
        "ts:             Total =     -99.000000",
        "siesta:         Fermi =      -3.050000",
        "",
        "Job completed",
    ]  # fmt: skip
    out = parse_siesta_stdout(lines)
    assert [(c.geom_step, c.iterations, c.converged) for c in out.cycles] == [
        (0, 2, True),
        (1, 1, False),
    ]
    assert out.cycles[0].column("dDmax") == [0.5, 0.0001]
    assert out.scf_not_converged is True
    assert out.final_energy == {"Total": -10.95, "ts Total": -99.0, "Fermi": -3.05}
    assert out.job_completed is True


def test_truncated_output_has_no_final_energy() -> None:
    lines = [
        "   scf:    1     -10.000000     -11.000000     -11.100000  0.500000 -3.000000  1.000000",
    ]
    out = parse_siesta_stdout(lines)
    assert out.final_energy == {}
    assert out.cycles[0].converged is False


# ---------------------------------------------------------------- TBtrans


@given(
    st.floats(min_value=-5, max_value=5, allow_nan=False),
    st.floats(min_value=-1e-2, max_value=1e-2, allow_nan=False),
)
def test_current_line_round_trips(bias: float, current: float) -> None:
    line = f"Left -> Right, V [V] / I [A]: {bias:10.6f}     V / {current:.6E} A"
    parsed, _ = parse_tbtrans_stdout(["tbt: Voltage  =    0.2500 Volts", line])
    assert len(parsed) == 1
    assert (parsed[0].source, parsed[0].target) == ("Left", "Right")
    assert parsed[0].bias_V == float(f"{bias:10.6f}")
    assert parsed[0].current_A == float(f"{current:.6E}")


@given(
    st.lists(st.floats(min_value=0.01, max_value=1.0), min_size=1, max_size=5),
    st.integers(min_value=1, max_value=20),
    st.data(),
)
def test_k_resolved_spectrum_is_the_weighted_average(
    weights: list[float], n_energies: int, data: st.DataObject
) -> None:
    energies = [round(-1 + 0.01 * i, 5) for i in range(n_energies)]
    blocks = [
        data.draw(st.lists(st.floats(0, 10), min_size=n_energies, max_size=n_energies))
        for _ in weights
    ]
    lines = ["# Transmission, k-resolved", "#   E [eV]   T", ""]
    for w, values in zip(weights, blocks, strict=True):
        lines.append(f"# kb=   0.0 0.0 0.0 w=  {w:.8E}")
        lines += [f"  {e:.5f}   {t:.8E}" for e, t in zip(energies, values, strict=True)]
        lines.append("")
    spectrum = parse_tbt_spectrum(lines)
    w = np.array([float(f"{x:.8E}") for x in weights])
    t = np.array([[float(f"{v:.8E}") for v in b] for b in blocks])
    expected = (w[:, None] * t).sum(axis=0) / w.sum()
    assert spectrum.n_k == len(weights)
    assert spectrum.energies == energies
    assert np.allclose(spectrum.values, expected, rtol=1e-12, atol=1e-300)


def test_averaged_spectrum_is_returned_as_is() -> None:
    spectrum = parse_tbt_spectrum(["# Transmission, k-averaged", "  -0.5  0.25", "  0.5  0.75"])
    assert (spectrum.energies, spectrum.values, spectrum.n_k) == ([-0.5, 0.5], [0.25, 0.75], 0)


def test_spectrum_with_mismatched_k_grids_is_refused() -> None:
    lines = ["# kb= 0 0 0 w= 0.5", "0.0 1.0", "# kb= 0.5 0 0 w= 0.5", "0.1 1.0"]
    with pytest.raises(ValueError, match="energy grids"):
        parse_tbt_spectrum(lines)


# ---------------------------------------------------------------- pw.x


@given(text_lines)
@settings(max_examples=200)
def test_pw_scanner_never_raises_on_arbitrary_text(lines: list[str]) -> None:
    parse_pw_stdout(lines)


@given(st.lists(st.floats(min_value=1e-12, max_value=1.0), min_size=1, max_size=15), finite)
def test_pw_scf_history_round_trips(accuracies: list[float], energy: float) -> None:
    lines = ["     Program PWSCF v.6.7MaX starts on 30Nov2026"]
    for i, acc in enumerate(accuracies, start=1):
        lines += [
            f"     iteration #{i:3d}     ecut=    25.00 Ry     beta= 0.70",
            f"     total energy              =   {energy - i:15.8f} Ry",
            f"     estimated scf accuracy    <   {acc:15.8E} Ry",
        ]
    lines += [
        f"!    total energy              =   {energy:15.8f} Ry",
        f"     convergence has been achieved in {len(accuracies):3d} iterations",
    ]
    out = parse_pw_stdout(lines)
    assert len(out.cycles) == 1
    cycle = out.cycles[0]
    assert cycle.converged is True
    assert cycle.accuracy_Ry == [float(f"{a:15.8E}") for a in accuracies]
    assert out.total_energy_Ry == float(f"{energy:15.8f}")
    assert out.version == "6.7MaX"


def test_pw_not_converged_and_fermi_lines() -> None:
    lines = [
        "     iteration #  1     ecut=    25.00 Ry     beta= 0.70",
        "     total energy              =      -2.23107066 Ry",
        "     estimated scf accuracy    <       0.11605026 Ry",
        "     the Fermi energy is    -3.9583 ev",
        "     convergence NOT achieved after   1 iterations: stopping",
    ]
    out = parse_pw_stdout(lines)
    assert out.not_converged is True
    assert out.cycles[0].converged is False
    assert out.fermi_eV == -3.9583
    assert out.total_energy_Ry is None
    assert pytest.approx(13.605693122994) == RY_EV
