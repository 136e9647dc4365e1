"""SIESTA / TranSIESTA / TBtrans stdout markers (4.1, MaX-1.0, 5.x), declared once.

Used by the validator (:mod:`hpcgate.codes.siesta.validate`, over raw bytes) and by the
analyses' parser (:mod:`analyses.siesta.stdout`, over decoded lines). What each marker
means for a verdict is written in the validator's docstring.
"""

from __future__ import annotations

import re

from hpcgate.codes.markers import Marker, MarkerTable

__all__ = ["MARKERS", "TBTRANS_MARKERS", "banner_at", "is_main_program"]

# Geometry steps and SCF cycles.
BEGIN = Marker("begin", r"Begin [^=\n]*+=", indented=True)
ISCF_HEADER = Marker("iscf", r"iscf +Eharris", indented=True)
SCF = Marker("scf", r"scf: *+(?=\d)", indented=True)
MAX_FORCE = Marker("maxf", r"Max +(?=[-+\d.])", indented=True)
TS_SCF = Marker("tsscf", r"ts-scf: *+(?=\d)")
# Options echoed in the head.
MAX_SCF = Marker("maxscf", r"redata: Max\. number of SCF Iter")
MUST_CONVERGE = Marker("mustconv", r"redata: SCF convergence failure will abort job")
DYNAMICS = Marker("dynamics", r"redata: Dynamics option")
METHOD = Marker("method", r"redata: Method of Calculation")
REDATA = Marker("redata", r"redata:")
TS_VOLTAGE = Marker("voltage", r"ts: Voltage\s")
# Termination and convergence.
SCF_CONVERGED = Marker("scfconv", r"SCF cycle converged")
SCF_CONVERGENCE_BY = Marker("scfconvby", r"SCF Convergence by")  # SIESTA 5 (analyses)
SCF_NOT_CONV = Marker("scfnotconv", r"SCF_NOT_CONV")
STOPPING = Marker("stopping", r"Stopping Program from Node")
GEOM_NOT_CONV = Marker("geomnotconv", r"GEOM_NOT_CONV")
RELAXED = Marker("relaxed", r"outcoor: Relaxed")
UNRELAXED = Marker("unrelaxed", r"outcoor: Final \(unrelaxed\)")
OUTCOOR = Marker("outcoor", r"outcoor:")
FINAL_ENERGY = Marker("final", r"siesta: Final energy")
FINAL_TOTAL = Marker("total", r"siesta: ++Total +=")
FINAL_FERMI = Marker("fermi", r"siesta: ++Fermi +=")
JOB_COMPLETED = Marker("completed", r"Job completed")
ABNORMAL = Marker("abnormal", r"ABNORMAL_TERMINATION")
OUT_OF_TIME = Marker("oot", r"OUT_OF_TIME")
# TBtrans.
TBT_VOLTAGE = Marker("voltage", r"tbt: Voltage\s")
END_OF_RUN = Marker("endrun", r">> End of run")
CURRENT = Marker("current", r"[^\s,]++ -> [^\s,]++, V \[V\] / I \[A\]")
# Banner (the first lines).
VERSION = Marker("version", r"(?:(?P<prog>Siesta|TBtrans) +)?Version\s*:\s*(?P<v>\S+)")

#: What the SIESTA validator feeds on, in the order its pattern tries them.
MARKERS = MarkerTable(
    BEGIN,
    ISCF_HEADER,
    SCF,
    MAX_FORCE,
    TS_SCF,
    MAX_SCF,
    MUST_CONVERGE,
    DYNAMICS,
    METHOD,
    TS_VOLTAGE,
    SCF_CONVERGED,
    SCF_NOT_CONV,
    STOPPING,
    GEOM_NOT_CONV,
    RELAXED,
    UNRELAXED,
    FINAL_ENERGY,
    FINAL_TOTAL,
    FINAL_FERMI,
    JOB_COMPLETED,
    ABNORMAL,
    OUT_OF_TIME,
)
#: What the validator feeds on in a TBtrans stdout: bias, current, end of run.
TBTRANS_MARKERS = MarkerTable(TBT_VOLTAGE, END_OF_RUN, ABNORMAL, STOPPING, CURRENT)

#: Lines that tell how a run crashed; searched only in the last bytes of a run that
#: did not complete (a crash is the last thing printed), to keep the main scan fast.
CRASH = re.compile(
    rb"\n(?:(?:[A-Za-z_][\w.-]*+: +)?(?:\*+ *)?(?:ERROR|FATAL)\b"
    rb"|.{0,40}?(?:Program received signal|forrtl: severe|MPI_ABORT was invoked"
    rb"|Segmentation fault|BAD TERMINATION|Killed))[^\n]*+"
)
#: An SCF iteration line (SIESTA or TranSIESTA): a crash line before one is not fatal.
SCF_LINE = re.compile(rb"\n(?:   |ts-)scf: *+\d")
#: The current line of TBtrans: ``Left -> Right, V [V] / I [A]: 0.1 V / 1e-6 A``.
CURRENT_VALUES = re.compile(rb"(\S+ -> \S+), V \[V\] / I \[A\]:\s*(\S+)\s*V\s*/\s*(\S+)\s*A")

#: Banner literals, searched with ``bytes.find`` (a regex alternation would try every
#: position of the 64 KiB head: ~3 ms, more than a sampled 1 GB scan).
BANNERS = (b"WELCOME TO SIESTA", b"Siesta Version", b"WELCOME TO TBtrans", b"TBtrans Version")
TBTRANS_BANNERS = (b"WELCOME TO TBtrans", b"TBtrans Version")
EXECUTABLE = re.compile(rb"^Executable\s*:\s*(siesta|transiesta|tbtrans)\b", re.MULTILINE)
BANNER_VERSION = VERSION.head_search()
BANNER_EXE = re.compile(rb"^Executable\s*:\s*(?P<exe>\S+)", re.MULTILINE)
BANNER_WELCOME = re.compile(rb"WELCOME TO (?P<w>SIESTA|TBtrans)")


def banner_at(head: bytes) -> int | None:
    """Where the first SIESTA/TBtrans banner starts in ``head``, or None."""
    found = [i for i in (head.find(b) for b in BANNERS) if i >= 0]
    exe = EXECUTABLE.search(head, 0, 4096)
    if exe is not None:
        found.append(exe.start())
    return min(found) if found else None


def is_main_program(head: bytes) -> bool:
    """A TBtrans stdout is a post-processing step; the SIESTA run is preferred."""
    if any(b in head for b in TBTRANS_BANNERS):
        return False
    exe = EXECUTABLE.search(head, 0, 4096)
    return exe is None or exe.group(1) != b"tbtrans"
