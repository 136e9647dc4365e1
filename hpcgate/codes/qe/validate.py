"""Quantum ESPRESSO ``pw.x`` stdout validation (checked on QE 6.7 from Debian).

Markers:

* ``convergence has been achieved in N iterations`` ends a converged SCF cycle;
  ``convergence NOT achieved after N iterations: stopping`` a failed one (pw.x then
  writes its data, prints ``JOB DONE.`` and exits 2) -> ``scf_not_converged``.
* With ``scf_must_converge=.false.`` QE 6.7 prints "convergence has been achieved"
  even when it stopped at ``electron_maxstep``; the only trace is an ``estimated scf
  accuracy`` above the ``scf convergence threshold`` (or the last ``new conv_thr``).
  We compare the two and call such a run ``scf_not_converged`` too.
* ``bfgs converged in N scf cycles and M bfgs steps``: relaxation converged;
  ``The maximum number of steps has been reached.``, ``history already reset at
  previous step: stopping`` or an ``End of BFGS Geometry Optimization`` without
  "bfgs converged" -> ``geometry_not_converged`` (pw.x exits 3).
* ``Maximum CPU time exceeded`` (``max_seconds``): pw.x stopped itself -> ``incomplete``.
* ``Error in routine NAME (N):`` + message -> ``aborted``; no ``JOB DONE.`` and no
  other marker -> ``incomplete`` (killed, still running, or cut).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from hpcgate.codes.qe import markers
from hpcgate.codes.qe.markers import MARKERS
from hpcgate.codes.report import ScanInfo, ValidationReport, Verdict, clean_text, describe_line
from hpcgate.codes.scan import (
    CRASH_WINDOW_BYTES,
    Analyzer,
    last_indented_line,
    parse_float,
    read_tail_window,
    tail_failures,
)

__all__ = ["RY_BOHR_TO_EV_ANG", "RY_TO_EV", "QeAnalyzer", "validate_qe"]

#: QE's own constants (CODATA 2018, Modules/constants.f90 since 6.6).
RY_TO_EV = 13.605693122994
BOHR_TO_ANG = 0.529177210903
RY_BOHR_TO_EV_ANG = RY_TO_EV / BOHR_TO_ANG
_INTS = re.compile(rb"\d+")


def _int_after(line: bytes, sep: bytes) -> int | None:
    m = _INTS.search(line, line.find(sep) + len(sep) if sep in line else 0)
    return int(m.group(0)) if m else None


class QeAnalyzer(Analyzer):
    """State machine over the pw.x lines selected by :data:`markers.MARKERS`."""

    code = "qe"

    def __init__(self, source: Path) -> None:
        super().__init__(source)
        self.pattern = MARKERS.pattern
        self.version: str | None = None
        self.input_file: str | None = None
        self.threshold: float | None = None
        self.multi_step = False
        self.scf_started = False
        self.scf_cycles = 0
        self.iter_lines = 0
        self.last_iter: int | None = None
        self.last_cycle_iters: int | None = None
        self.last_acc: float | None = None
        self._last_acc_line: tuple[int, bytes] | None = None
        self.energy_ry: float | None = None
        self.final_ry: float | None = None
        self.fermi: float | None = None
        self.homo: float | None = None
        self.lumo: float | None = None
        self._in_forces = False
        self._cur_max: float | None = None
        self.max_force_ry: float | None = None
        self.total_force: float | None = None
        self.bfgs = False
        self.bfgs_converged = False
        self.bfgs_end = False
        self.max_steps = False
        self.hist_reset = False
        self.md = False
        self.nscf_cycles: int | None = None
        self.nbfgs: int | None = None
        self.not_converged = False
        self.tolerated = 0
        self.cpu_exceeded = False
        self.error = False
        self._error_line: tuple[int, bytes] | None = None
        self.crash = False
        self.killed: str | None = None
        self.job_done = False
        self.sampled = False
        self._handlers = {m.name: getattr(self, "_on_" + m.name) for m in MARKERS}

    # ------------------------------------------------------------------ feeding
    def feed(self, line_no: int, kind: str, line: bytes) -> None:
        if self._in_forces and kind != "force":
            self._end_forces()
        handler = self._handlers.get(kind)
        if handler is not None:
            handler(line_no, line)

    def _on_program(self, n: int, line: bytes) -> None:
        if self.version is None:
            m = markers.VERSION.search(line)
            self.version = clean_text(m.group(1)) if m else None
            self.evidence.last("version", n, line.strip())

    def _on_readin(self, n: int, line: bytes) -> None:
        self.input_file = clean_text(line.partition(b"Reading input from")[2].strip())

    def _on_thr(self, n: int, line: bytes) -> None:
        self.threshold = parse_float(line.rpartition(b"=")[2])

    _on_newthr = _on_thr

    def _on_nstep(self, n: int, line: bytes) -> None:
        value = parse_float(line.rpartition(b"=")[2])
        self.multi_step = value is not None and value > 1

    def _on_scfstart(self, n: int, line: bytes) -> None:
        self.scf_started = True
        self.scf_cycles += 1
        self.last_acc = None

    def _on_iter(self, n: int, line: bytes) -> None:
        self.scf_started = True
        self.iter_lines += 1
        self.last_iter = _int_after(line, b"#")

    def _on_acc(self, n: int, line: bytes) -> None:
        self.last_acc = parse_float(line.rpartition(b"<")[2])
        self._last_acc_line = (n, line)

    def _on_conv(self, n: int, line: bytes) -> None:
        self.last_cycle_iters = _int_after(line, b"achieved in")
        self.evidence.last("conv", n, line.strip())
        # scf_must_converge=.false.: QE says "achieved" after electron_maxstep anyway.
        if (
            self.last_acc is not None
            and self.threshold is not None
            and self.last_acc > self.threshold
        ):
            self.tolerated += 1
            self.evidence.drop("conv")
            if self._last_acc_line is not None:
                acc_n, acc_line = self._last_acc_line
                self.evidence.first("tolerated_acc", acc_n, acc_line.strip(), limit=2)
            self.evidence.first(
                "tolerated",
                n,
                f"{clean_text(line.strip())} (but scf accuracy {self.last_acc:g} Ry > "
                f"threshold {self.threshold:g} Ry)",
                limit=2,
            )

    def _on_notconv(self, n: int, line: bytes) -> None:
        self.last_cycle_iters = _int_after(line, b"after")
        self.not_converged = True
        self.evidence.first("notconv", n, line.strip())

    def _on_bang(self, n: int, line: bytes) -> None:
        self.energy_ry = parse_float(line.rpartition(b"=")[2])
        self.evidence.last("bang", n, line)

    def _on_fermi(self, n: int, line: bytes) -> None:
        # "the Fermi energy is X ev"; spin-polarised: "the Fermi energies are X, Y ev"
        self.fermi = parse_float(line.rpartition(b" are" if b" are " in line else b" is")[2])
        self.evidence.last("fermi", n, line.strip())

    def _on_homo(self, n: int, line: bytes) -> None:
        values = [parse_float(v) for v in line.rpartition(b":")[2].split()]
        self.homo = values[0] if values else None
        self.lumo = values[1] if len(values) > 1 else None
        self.evidence.last("homo", n, line.strip())

    def _on_forcehdr(self, n: int, line: bytes) -> None:
        self._in_forces = True
        self._cur_max = None

    def _on_force(self, n: int, line: bytes) -> None:
        if not self._in_forces:
            return
        comps = [parse_float(v) for v in line.rpartition(b"=")[2].split()[:3]]
        for c in comps:
            if c is not None and (self._cur_max is None or abs(c) > self._cur_max):
                self._cur_max = abs(c)

    def _end_forces(self) -> None:
        self._in_forces = False
        if self._cur_max is not None:
            self.max_force_ry = self._cur_max

    def _on_maxsteps(self, n: int, line: bytes) -> None:
        self.max_steps = True
        self.evidence.first("geom", n, line.strip())

    def _on_the(self, n: int, line: bytes) -> None:
        """Other "The ..." lines only end a force block (see ``feed``)."""

    def _on_totforce(self, n: int, line: bytes) -> None:
        self.total_force = parse_float(line.partition(b"=")[2])
        self.evidence.last("totforce", n, line.strip())

    def _on_bfgs(self, n: int, line: bytes) -> None:
        self.bfgs = True
        self.multi_step = True

    def _on_bfgsconv(self, n: int, line: bytes) -> None:
        self.bfgs_converged = True
        nums = [int(x) for x in _INTS.findall(line)]
        if nums:
            self.nscf_cycles = nums[0]
        if len(nums) > 1:
            self.nbfgs = nums[1]
        self.evidence.last("bfgsconv", n, line.strip())

    def _on_bfgsend(self, n: int, line: bytes) -> None:
        self.bfgs_end = True
        self.evidence.last("bfgsend", n, line.strip())

    def _on_nscf(self, n: int, line: bytes) -> None:
        self.nscf_cycles = _int_after(line, b"=")

    def _on_nbfgs(self, n: int, line: bytes) -> None:
        self.nbfgs = _int_after(line, b"=")

    def _on_histreset(self, n: int, line: bytes) -> None:
        self.hist_reset = True
        self.evidence.first("geom", n, line.strip())

    def _on_md(self, n: int, line: bytes) -> None:
        self.md = True
        self.multi_step = True

    def _on_final(self, n: int, line: bytes) -> None:
        self.final_ry = parse_float(line.rpartition(b"=")[2])
        self.evidence.last("final", n, line.strip())

    def _on_cpu(self, n: int, line: bytes) -> None:
        self.cpu_exceeded = True
        self.evidence.first("cpu", n, line.strip())

    def _on_error(self, n: int, line: bytes) -> None:
        self.error = True
        self._error_line = (n, line.strip())
        self.evidence.first("error", n, line.strip())

    def _on_jobdone(self, n: int, line: bytes) -> None:
        self.job_done = True
        self.evidence.last("jobdone", n, line.strip())

    # ------------------------------------------------------------------ scanning hooks
    def head_complete(self) -> bool:
        return self.scf_started

    def tail_anchor(self, window: bytes, pos: int) -> int | None:
        """Feed the tail from the start of the last SCF cycle on."""
        return last_indented_line(window, pos, b"Self-consistent Calculation")

    def needs_full_scan(self) -> bool:
        """Only a multi-step run whose input allows non-converged SCF needs the middle.

        Without ``scf_must_converge=.false.`` a failed SCF stops pw.x, so its marker is
        in the tail. The input file named in "Reading input from" is read (it is
        small); when it cannot be read we cannot rule the option out.
        """
        if not self.multi_step:
            return False
        text = self._read_input()
        return text is None or markers.MUST_CONVERGE_FALSE.search(text) is not None

    def _read_input(self) -> bytes | None:
        if not self.input_file or self.input_file.lower() == "standard input":
            return None
        candidate = Path(self.input_file)
        if not candidate.is_absolute():
            candidate = self.source.parent / candidate
        try:
            with candidate.open("rb") as fh:
                return fh.read(1 << 20)
        except OSError:
            return None

    def begin_tail(self) -> None:
        self.sampled = True
        self._in_forces = False
        self._cur_max = None

    # ------------------------------------------------------------------ verdict
    def _error_message(self, scan: ScanInfo) -> None:
        """Add the message line that follows "Error in routine" (pw.x stops right after,
        so the block is in the last bytes; a chunk boundary may have split it)."""
        if self._error_line is None:
            return
        window, _ = read_tail_window(self.source, scan.size, CRASH_WINDOW_BYTES)
        m = markers.ERROR_BLOCK.search(window)
        if m is None:
            return
        n, routine = self._error_line
        self.evidence.drop("error")
        self.evidence.first(
            "error", n, f"{clean_text(routine.rstrip(b':'))}: {clean_text(m.group(1).strip())}"
        )

    def _scan_crash(self, scan: ScanInfo) -> None:
        if self.job_done or scan.size == 0:
            return
        crashes, kills = tail_failures(self.source, scan, markers.CRASH, markers.ITERATION_LINE)
        for n, line in crashes:
            self.crash = True
            self.evidence.first("crash", n, line)
        for n, kind, line in kills:
            self.killed = self.killed if self.killed == "walltime" else kind
            self.evidence.first("killed", n, line)

    def _geometry_failed(self) -> bool:
        return self.max_steps or self.hist_reset or (self.bfgs_end and not self.bfgs_converged)

    def _verdict(self) -> tuple[Verdict, tuple[str, ...], str]:
        """Verdict, evidence slots holding its decisive line, fallback reason."""
        v = Verdict
        if self.cpu_exceeded or (self.killed == "walltime" and not self.job_done):
            return v.INCOMPLETE, ("cpu", "killed"), "stopped at the time limit"
        if self.not_converged:
            return v.SCF_NOT_CONVERGED, ("notconv",), "convergence NOT achieved"
        if self.error or ((self.crash or self.killed) and not self.job_done):
            return v.ABORTED, ("error", "crash", "killed"), "pw.x stopped on an error"
        if self.job_done:
            if self.tolerated:
                return v.SCF_NOT_CONVERGED, ("tolerated",), "SCF accuracy above threshold"
            if self._geometry_failed():
                return v.GEOMETRY_NOT_CONVERGED, ("geom", "bfgsend"), "relaxation unconverged"
            return v.CONVERGED, ("jobdone",), "JOB DONE."
        if self._geometry_failed():
            return v.GEOMETRY_NOT_CONVERGED, ("geom", "bfgsend"), "relaxation unconverged"
        return v.INCOMPLETE, (), "no 'JOB DONE.': output cut off (walltime kill?) or running"

    def report(self, scan: ScanInfo) -> ValidationReport:
        if self._in_forces:
            self._end_forces()
        self._scan_crash(scan)
        self._error_message(scan)
        status, slots, fallback = self._verdict()
        lead = self.evidence.pick(slots)
        full = not scan.sampled
        # One SCF cycle per geometry (vc-relax adds a final one at the relaxed cell).
        geometry_steps = self.scf_cycles if full else self.nscf_cycles
        numbers: dict[str, Any] = {
            "program": "pw.x",
            "version": self.version,
            "energy_total_ev": None if self.energy_ry is None else self.energy_ry * RY_TO_EV,
            "energy_total_ry": self.energy_ry,
            "final_energy_ry": self.final_ry,
            "fermi_ev": self.fermi,
            "highest_occupied_ev": self.homo,
            "lowest_unoccupied_ev": self.lumo,
            "scf_iterations_last": (
                self.last_cycle_iters if self.last_cycle_iters is not None else self.last_iter
            ),
            "scf_iterations_total": self.iter_lines if full else None,
            "scf_cycles": self.scf_cycles if full else None,
            "scf_threshold_ry": self.threshold,
            "scf_tolerated_not_converged": self.tolerated if full else None,
            "max_force_ev_ang": (
                None if self.max_force_ry is None else self.max_force_ry * RY_BOHR_TO_EV_ANG
            ),
            "max_force_ry_bohr": self.max_force_ry,
            "total_force_ry_bohr": self.total_force,
            "geometry_steps": geometry_steps,
            "bfgs_steps": self.nbfgs,
            "scan": scan.mode,
            "file_size": scan.size,
            "bytes_read": scan.bytes_read,
        }
        notes: list[str] = []
        notes += scan.notes()
        if self.version is None:
            notes.append("no 'Program PWSCF' banner found")
        return ValidationReport(
            status=status,
            code=self.code,
            evidence=self.evidence.items(lead),
            numbers=numbers,
            source=scan.path,
            notes=notes,
            reason=describe_line(lead, fallback),
        )


def validate_qe(path: str | Path, *, full_scan: bool = False) -> ValidationReport:
    """Validate a pw.x stdout file or run directory."""
    from hpcgate.codes.validation import validate_path  # it dispatches to this module

    return validate_path(path, "qe", full_scan=full_scan)
