"""One pass over a pw.x (Quantum ESPRESSO) stdout: SCF cycles, energies, Fermi/HOMO.

Plain regexes, because ASE 3.29's reader raises ``AssertionError`` on a non-converged
output, which is exactly the output a user most needs to inspect. The lines used have
been stable across QE 6.x/7.x::

    iteration #  1     ecut=    25.00 Ry     beta= 0.70
    total energy              =      -2.23107066 Ry
    estimated scf accuracy    <       0.11605026 Ry
    !    total energy              =      -2.24022862 Ry
    convergence has been achieved in   6 iterations
    convergence NOT achieved after   2 iterations: stopping
    the Fermi energy is    -3.9583 ev
    highest occupied level (ev):   -10.0627
    highest occupied, lowest unoccupied level (ev):    -6.5   -1.2
    Final energy   =      -2.2426805130 Ry          (relax/vc-relax)
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from hpcgate.codes.qe import markers

__all__ = ["RY_EV", "PwCycle", "PwStdout", "parse_pw_stdout", "read_pw_stdout"]

#: Rydberg in eV (CODATA 2018), the unit pw.x prints energies in.
RY_EV = 13.605693122994

_FLOAT = r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[EeDd][-+]?\d+)?"
# Marker lines come from the one table the validator uses too (hpcgate.codes.qe.markers);
# the regexes here only add what is captured after a marker. Leading blanks are matched
# possessively (``^\s*+``), so a line of spaces is scanned once (issue 15).
_ITERATION = markers.ITERATION.then(r"(\d+)")
_TOTAL_FINAL = markers.TOTAL_ENERGY_FINAL.then(rf"\s*({_FLOAT})\s*Ry")
_TOTAL = re.compile(rf"^\s*+total energy\s*=\s*({_FLOAT})\s*Ry")
_ACCURACY = markers.ACCURACY.then(rf"\s*({_FLOAT})\s*Ry")
_CONVERGED = markers.CONVERGED.then(r"\s*(\d+)")
_FERMI = markers.FERMI.then(rf"y is\s*({_FLOAT})\s*ev", re.I)
_FERMI_SPIN = re.compile(rf"^\s*+the spin up/dw Fermi energies are\s*({_FLOAT})\s+({_FLOAT})", re.I)
_HOMO = markers.HOMO.then(rf" level \(ev\):\s*({_FLOAT})", re.I)
_HOMO_LUMO = markers.HOMO.then(
    rf", lowest unoccupied level \(ev\):\s*({_FLOAT})\s+({_FLOAT})", re.I
)
_FINAL = markers.FINAL.then(rf"\s*({_FLOAT})\s*Ry")
_VERSION = re.compile(markers.VERSION_SOURCE)
_THRESHOLD = markers.THRESHOLD.then(rf"\s*({_FLOAT})")


def _f(token: str) -> float:
    return float(token.replace("D", "E").replace("d", "e"))


@dataclass(slots=True)
class PwCycle:
    """One SCF cycle; energies in Ry as printed."""

    energies_Ry: list[float | None] = field(default_factory=list)
    accuracy_Ry: list[float | None] = field(default_factory=list)
    converged: bool = False
    final_energy_Ry: float | None = None

    @property
    def iterations(self) -> int:
        return len(self.energies_Ry)


@dataclass(slots=True)
class PwStdout:
    version: str | None = None
    cycles: list[PwCycle] = field(default_factory=list)
    fermi_eV: float | None = None
    fermi_spin_eV: tuple[float, float] | None = None
    homo_eV: float | None = None
    lumo_eV: float | None = None
    final_relax_Ry: float | None = None
    threshold_Ry: float | None = None
    not_converged: bool = False
    bfgs_converged: bool = False
    job_done: bool = False

    @property
    def total_energy_Ry(self) -> float | None:
        """The relaxation's final energy, else the last converged ``!`` energy."""
        if self.final_relax_Ry is not None:
            return self.final_relax_Ry
        for cycle in reversed(self.cycles):
            if cycle.final_energy_Ry is not None:
                return cycle.final_energy_Ry
        return None


def parse_pw_stdout(lines: Iterable[str]) -> PwStdout:
    """Scan the lines once; unknown content is ignored, never raises on text."""
    out = PwStdout()
    cycle: PwCycle | None = None
    last_iteration = 0
    for raw in lines:
        line = raw.rstrip("\r\n")
        if (m := _ITERATION.match(line)) is not None:
            n = int(m.group(1))
            if cycle is None or n <= last_iteration or cycle.converged:
                cycle = PwCycle()
                out.cycles.append(cycle)
            last_iteration = n
            cycle.energies_Ry.append(None)
            cycle.accuracy_Ry.append(None)
        elif (m := _TOTAL_FINAL.match(line) or _TOTAL.match(line)) is not None:
            if cycle is None:
                continue
            value = _f(m.group(1))
            if m.re is _TOTAL_FINAL:
                cycle.final_energy_Ry = value
            if cycle.energies_Ry:
                cycle.energies_Ry[-1] = value
        elif (m := _ACCURACY.match(line)) is not None:
            if cycle is not None and cycle.accuracy_Ry:
                cycle.accuracy_Ry[-1] = _f(m.group(1))
        elif _CONVERGED.match(line):
            if cycle is not None:
                cycle.converged = True
        elif markers.NOT_CONVERGED.match(line):
            out.not_converged = True
        elif (m := _FERMI.match(line)) is not None:
            out.fermi_eV = _f(m.group(1))
        elif (m := _FERMI_SPIN.match(line)) is not None:
            out.fermi_spin_eV = (_f(m.group(1)), _f(m.group(2)))
        elif (m := _HOMO_LUMO.match(line)) is not None:
            out.homo_eV, out.lumo_eV = _f(m.group(1)), _f(m.group(2))
        elif (m := _HOMO.match(line)) is not None:
            out.homo_eV, out.lumo_eV = _f(m.group(1)), None
        elif (m := _FINAL.match(line)) is not None:
            out.final_relax_Ry = _f(m.group(1))
        elif markers.BFGS_CONVERGED.match(line):
            out.bfgs_converged = True
        elif markers.JOB_DONE.match(line):
            out.job_done = True
        elif out.version is None and (m := _VERSION.search(line)) is not None:
            out.version = m.group(1)
        elif out.threshold_Ry is None and (m := _THRESHOLD.match(line)) is not None:
            out.threshold_Ry = _f(m.group(1))
    return out


def read_pw_stdout(path: Path) -> PwStdout:
    with open(path, encoding="utf-8", errors="replace") as fh:
        return parse_pw_stdout(fh)
