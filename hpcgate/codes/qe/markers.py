"""Quantum ESPRESSO ``pw.x`` stdout markers (QE 6.x/7.x), declared once.

Used by the validator (:mod:`hpcgate.codes.qe.validate`, over raw bytes) and by the
analyses' parser (:mod:`analyses.qe.stdout`, over decoded lines). What each marker means
for a verdict is written in the validator's docstring.
"""

from __future__ import annotations

import re

from hpcgate.codes.markers import Marker, MarkerTable

__all__ = ["MARKERS", "banner_at"]

TOTAL_ENERGY_FINAL = Marker("bang", r"! ++total energy +=")
PROGRAM = Marker("program", r"Program PWSCF", indented=True)
READING_INPUT = Marker("readin", r"Reading input from", indented=True)
THRESHOLD = Marker("thr", r"scf convergence threshold +=", indented=True)
NEW_THRESHOLD = Marker("newthr", r"new conv_thr +=", indented=True)
NSTEP = Marker("nstep", r"nstep +=", indented=True)
SCF_START = Marker("scfstart", r"Self-consistent Calculation", indented=True)
ITERATION = Marker("iter", r"iteration # *+(?=\d)", indented=True)
ACCURACY = Marker("acc", r"estimated scf accuracy +<", indented=True)
CONVERGED = Marker("conv", r"convergence has been achieved in", indented=True)
NOT_CONVERGED = Marker("notconv", r"convergence NOT achieved after", indented=True)
FERMI = Marker("fermi", r"the Fermi energ", indented=True)
HOMO = Marker("homo", r"highest occupied", indented=True)
FORCES_HEADER = Marker("forcehdr", r"Forces acting on atoms", indented=True)
FORCE = Marker("force", r"atom +\d++ +type +\d++ +force +=", indented=True)
MAX_STEPS = Marker("maxsteps", r"The maximum number of steps has been reached", indented=True)
THE = Marker("the", r"The ", indented=True)  # any other "The ..." line ends a force block
TOTAL_FORCE = Marker("totforce", r"Total force +=", indented=True)
BFGS = Marker("bfgs", r"BFGS Geometry Optimization", indented=True)
BFGS_CONVERGED = Marker("bfgsconv", r"bfgs converged in", indented=True)
BFGS_END = Marker("bfgsend", r"End of BFGS Geometry Optimization", indented=True)
SCF_CYCLES = Marker("nscf", r"number of scf cycles +=", indented=True)
BFGS_STEPS = Marker("nbfgs", r"number of bfgs steps +=", indented=True)
HISTORY_RESET = Marker("histreset", r"history already reset", indented=True)
DYNAMICS = Marker("md", r"Molecular Dynamics Calculation|Entering Dynamics", indented=True)
FINAL = Marker("final", r"Final (?:energy|enthalpy) +=", indented=True)
CPU_TIME = Marker("cpu", r"Maximum CPU time exceeded", indented=True)
ERROR = Marker("error", r"Error in routine", indented=True)
JOB_DONE = Marker("jobdone", r"JOB DONE\.", indented=True)

#: What the pw.x validator feeds on, in the order its pattern tries them.
MARKERS = MarkerTable(
    TOTAL_ENERGY_FINAL,
    PROGRAM,
    READING_INPUT,
    THRESHOLD,
    NEW_THRESHOLD,
    NSTEP,
    SCF_START,
    ITERATION,
    ACCURACY,
    CONVERGED,
    NOT_CONVERGED,
    FERMI,
    HOMO,
    FORCES_HEADER,
    FORCE,
    MAX_STEPS,
    THE,
    TOTAL_FORCE,
    BFGS,
    BFGS_CONVERGED,
    BFGS_END,
    SCF_CYCLES,
    BFGS_STEPS,
    HISTORY_RESET,
    DYNAMICS,
    FINAL,
    CPU_TIME,
    ERROR,
    JOB_DONE,
)

#: The version after the banner marker (``Program PWSCF v.6.7MaX starts on ...``).
VERSION_SOURCE = PROGRAM.text + r"\s+v\.?\s*(\S+)"
VERSION = re.compile(VERSION_SOURCE.encode("ascii"))
#: Crash lines, searched only in the last bytes of a run without ``JOB DONE.``.
CRASH = re.compile(
    rb"\n.{0,40}?(?:MPI_ABORT was invoked|Program received signal|forrtl: severe"
    rb"|Segmentation fault|BAD TERMINATION|Killed)[^\n]*+"
)
ITERATION_LINE = re.compile(rb"\n +iteration #")
ERROR_BLOCK = re.compile(rb"Error in routine[^\n]*+\n([^\n]*+)")
MUST_CONVERGE_FALSE = re.compile(rb"scf_must_converge\s*=\s*\.?f", re.IGNORECASE)

#: Banner literals, searched with ``bytes.find``.
BANNERS = (b"Program PWSCF", b"PWSCF v.")


def banner_at(head: bytes) -> int | None:
    """Where the first pw.x banner starts in ``head``, or None."""
    found = [i for i in (head.find(b) for b in BANNERS) if i >= 0]
    return min(found) if found else None
