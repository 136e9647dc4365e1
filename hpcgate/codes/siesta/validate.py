"""SIESTA / TranSIESTA / TBtrans stdout validation (4.1, MaX-1.0, 5.x).

Markers (checked on real 4.1-b4, MaX-1.0-3 and 5.1 outputs, see docs/validation.md):

* ``SCF_NOT_CONV: SCF did not converge in maximum number of steps (required).`` then
  ``ABNORMAL_TERMINATION``: SCF failed with ``SCF.MustConverge true`` (the default since
  4.1, announced in the head as ``redata: SCF convergence failure will abort job``).
* ``SCF_NOT_CONV: SCF did not converge  in maximum number of steps.`` (no "required"):
  ``SCF.MustConverge false``; the run goes on and may end with ``Job completed``. We
  still call it ``scf_not_converged``: its energies and forces come from a
  non-self-consistent density, so an ``afterok`` chain must not build on them.
* ``SCF_NOT_CONV: SCF did not converge before wall time exhaustion`` + ``OUT_OF_TIME``:
  SIESTA stopped itself at ``MaxWalltime`` -> ``incomplete`` (restartable).
* ``GEOM_NOT_CONV: Geometry relaxation not converged`` (``GeometryMustConverge``), or
  ``outcoor: Final (unrelaxed) atomic coordinates`` at the end of an optimisation that
  used all its moves -> ``geometry_not_converged``. MD runs also print "Final
  (unrelaxed)", so that line only counts for optimisations (CG/Broyden/FIRE).
* ``Job completed`` is the normal end of SIESTA; ``>> End of run`` that of TBtrans.
  A TBtrans run counts as converged only when it also printed a current
  (``Left -> Right, V [V] / I [A]: ...``): the I-V curve is what it runs for.
* Any other ``FATAL:`` line in ``MESSAGES`` of a run that did not complete is the stated
  reason of an ``aborted`` verdict. TranSIESTA writes its refusals there, e.g.
  ``FATAL: ts: You have to calculate the 0 V and re-use the TSDE from that calculation.``
  (a finite bias started without the 0 V density); its stdout only says
  ``Stopping Program from Node: 0``.

Why no sisl here: see :mod:`hpcgate.codes.validation`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from hpcgate.codes.validation import (
    Analyzer,
    ScanInfo,
    ValidationReport,
    Verdict,
    clean_text,
    describe_line,
    find_kill_lines,
    iter_lines_of,
    last_indented_line,
    last_match_start,
    parse_float,
    read_tail_window,
    validate_path,
)

__all__ = ["SiestaAnalyzer", "validate_siesta"]

#: Side files are trusted only when written within this many seconds of the stdout,
#: so a MESSAGES left by an earlier run in the same directory is not mixed in.
SIDE_FILE_MAX_SKEW_S = 300.0

#: Lines of a SIESTA stdout that matter. Possessive `` ++`` keeps failing lines cheap.
_SIESTA_PATTERN = re.compile(
    rb"\n(?:"
    rb" ++(?:(?P<begin>Begin [^=\n]*+=)|(?P<iscf>iscf +Eharris)|(?P<scf>scf: *+\d)"
    rb"|(?P<maxf>Max +[-+\d.]))"
    rb"|ts-(?P<tsscf>scf: *+\d)"
    rb"|redata: (?:(?P<maxscf>Max\. number of SCF Iter)"
    rb"|(?P<mustconv>SCF convergence failure will abort job)"
    rb"|(?P<dynamics>Dynamics option)|(?P<method>Method of Calculation))"
    rb"|ts: (?P<voltage>Voltage\s)"
    rb"|S(?:(?P<scfconv>CF cycle converged)|(?P<scfnotconv>CF_NOT_CONV)"
    rb"|(?P<stopping>topping Program from Node))"
    rb"|(?P<geomnotconv>GEOM_NOT_CONV)"
    rb"|outcoor: (?P<outcoor>Relaxed|Final \(unrelaxed\))"
    rb"|siesta: (?:(?P<final>Final energy)| ++(?:(?P<total>Total +=)|(?P<fermi>Fermi +=)))"
    rb"|(?P<completed>Job completed)"
    rb"|(?P<abnormal>ABNORMAL_TERMINATION)"
    rb"|(?P<oot>OUT_OF_TIME)"
    rb")[^\n]*+"
)

#: TBtrans stdout: bias, current, end of run.
_TBTRANS_PATTERN = re.compile(
    rb"\n(?:"
    rb"tbt: (?P<voltage>Voltage\s)"
    rb"|(?P<endrun>>> End of run)"
    rb"|(?P<abnormal>ABNORMAL_TERMINATION)"
    rb"|S(?P<stopping>topping Program from Node)"
    rb"|(?P<current>[^\s,]++ -> [^\s,]++, V \[V\] / I \[A\])"
    rb")[^\n]*+"
)

#: Lines that tell how a run crashed; searched only in the last bytes of a run that
#: did not complete (a crash is the last thing printed), to keep the main scan fast.
_CRASH = re.compile(
    rb"\n(?:(?:[A-Za-z_][\w.-]*+: +)?(?:\*+ *)?(?:ERROR|FATAL)\b"
    rb"|.{0,40}?(?:Program received signal|forrtl: severe|MPI_ABORT was invoked"
    rb"|Segmentation fault|BAD TERMINATION|Killed))[^\n]*+"
)
_SCF_LINE = re.compile(rb"\n(?:   |ts-)scf: *+\d")
CRASH_WINDOW_BYTES = 64 << 10

_BANNER_VERSION = re.compile(
    rb"^(?:(?P<prog>Siesta|TBtrans) +)?Version\s*:\s*(?P<v>\S+)", re.MULTILINE
)
_BANNER_EXE = re.compile(rb"^Executable\s*:\s*(?P<exe>\S+)", re.MULTILINE)
_BANNER_WELCOME = re.compile(rb"WELCOME TO (?P<w>SIESTA|TBtrans)")
_LAST_INT = re.compile(rb"(-?\d+)\s*$")
_CURRENT = re.compile(rb"(\S+ -> \S+), V \[V\] / I \[A\]:\s*(\S+)\s*V\s*/\s*(\S+)\s*A")


def _after(line: bytes, sep: bytes) -> str:
    """Text after the first ``sep``, stripped (``Version  : 5.1`` -> ``5.1``)."""
    _, _, rest = line.partition(sep)
    return clean_text(rest.strip())


class SiestaAnalyzer(Analyzer):
    """State machine over the SIESTA (or TBtrans) lines selected by the patterns."""

    code = "siesta"

    def __init__(self, source: Path) -> None:
        super().__init__(source)
        self.program: str | None = None
        self.version: str | None = None
        self._read_banner()
        self.pattern = _TBTRANS_PATTERN if self.program == "tbtrans" else _SIESTA_PATTERN
        self.transiesta = False
        self.bias_v: float | None = None
        self.currents: dict[str, float | None] = {}
        # options echoed in the head
        self.redata_seen = False
        self.must_converge: bool | None = None
        self.max_scf: int | None = None
        self.dynamics: str | None = None
        # geometry steps
        self.begin_count = 0
        self.first_begin: int | None = None
        self.last_begin: int | None = None
        self.optimization = False
        # SCF
        self.scf_started = False
        self.scf_cycles = 0
        self.scf_lines = 0
        self.last_iscf: int | None = None
        self.last_eks: float | None = None
        self.cycle_open = False
        self.last_cycle_end: str | None = None
        # results
        self.in_final = False
        self.energy_total: float | None = None
        self.fermi: float | None = None
        self.max_force: float | None = None
        self.max_force_unconstrained: float | None = None
        # termination markers
        self.scf_fatal = False
        self.scf_warn = 0
        self.out_of_time = False
        self.geom_fatal = False
        self.relaxed = False
        self.unrelaxed = False
        self.completed = False
        self.end_of_run = False
        self.abnormal = False
        self.error_pending = False
        self.killed: str | None = None
        self.messages_scf_warn = False  # from MESSAGES, kept apart from the stdout count
        self.fatal_item: tuple[int, str] | None = None  # first other FATAL line of MESSAGES
        self.messages_geom_warn = False
        self.sampled = False
        self.notes: list[str] = []
        self._handlers = {
            "maxscf": self._maxscf,
            "mustconv": self._mustconv,
            "dynamics": self._dynamics,
            "method": self._method,
            "voltage": self._voltage,
            "begin": self._begin,
            "iscf": self._iscf,
            "scf": self._scf,
            "tsscf": self._tsscf,
            "scfconv": self._scfconv,
            "scfnotconv": self._scfnotconv,
            "geomnotconv": self._geomnotconv,
            "outcoor": self._outcoor,
            "maxf": self._maxf,
            "final": self._final,
            "total": self._total,
            "fermi": self._fermi,
            "completed": self._completed,
            "endrun": self._endrun,
            "abnormal": self._abnormal,
            "stopping": self._abnormal,
            "oot": self._oot,
            "current": self._current,
        }

    # ------------------------------------------------------------------ feeding
    def feed(self, line_no: int, kind: str, line: bytes) -> None:
        handler = self._handlers.get(kind)
        if handler is not None:
            handler(line_no, line)

    def _read_banner(self) -> None:
        """Program and version from the first 64 KiB (they never appear later)."""
        try:
            with self.source.open("rb") as fh:
                head = fh.read(64 << 10)
        except OSError:
            return
        exe = _BANNER_EXE.search(head)
        if exe is not None:
            name = exe.group("exe").lower()
            if name.startswith(b"tbtrans"):
                self.program = "tbtrans"
            elif name.startswith((b"siesta", b"transiesta")):
                self.program = "siesta"
        if self.program is None:
            welcome = _BANNER_WELCOME.search(head)
            if welcome is not None:
                self.program = "tbtrans" if welcome.group("w") == b"TBtrans" else "siesta"
        ver = _BANNER_VERSION.search(head)
        if ver is not None:
            self.version = clean_text(ver.group("v"))
            if ver.group("prog") == b"TBtrans":
                self.program = "tbtrans"
            elif ver.group("prog") == b"Siesta" and self.program is None:
                self.program = "siesta"
            line_no = head.count(b"\n", 0, ver.start()) + 1
            end = head.find(b"\n", ver.start())
            self.evidence.last("version", line_no, head[ver.start() : end if end >= 0 else None])

    def _maxscf(self, n: int, line: bytes) -> None:
        self.redata_seen = True
        if self.must_converge is None:
            self.must_converge = False  # until the "will abort job" line that follows
        value = parse_float(line.rpartition(b"=")[2])
        self.max_scf = int(value) if value is not None else None

    def _mustconv(self, n: int, line: bytes) -> None:
        self.redata_seen = True
        self.must_converge = True

    def _dynamics(self, n: int, line: bytes) -> None:
        self.dynamics = _after(line, b"=")
        if "optimi" in self.dynamics.lower():
            self.optimization = True

    def _method(self, n: int, line: bytes) -> None:
        if b"transiesta" in line.lower():
            self.transiesta = True

    def _voltage(self, n: int, line: bytes) -> None:
        self.bias_v = parse_float(line.rpartition(b"=")[2])
        self.evidence.last("voltage", n, line)

    def _begin(self, n: int, line: bytes) -> None:
        m = _LAST_INT.search(line)
        idx = int(m.group(1)) if m else None
        if idx is not None:
            if self.first_begin is None:
                self.first_begin = idx
            self.last_begin = idx
        self.begin_count += 1
        if b"opt." in line or b"optim" in line.lower():
            self.optimization = True
        self.in_final = False
        self.error_pending = False
        self.evidence.last("begin", n, line.strip())

    def _iscf(self, n: int, line: bytes) -> None:
        self.scf_started = True
        self.scf_cycles += 1
        self.cycle_open = True
        self.in_final = False

    def _scf(self, n: int, line: bytes) -> None:
        self.scf_started = True
        self.scf_lines += 1
        self.cycle_open = True
        self.error_pending = False
        fields = line.partition(b"scf:")[2].split()
        if fields:
            it = parse_float(fields[0])
            self.last_iscf = int(it) if it is not None else self.last_iscf
        if len(fields) >= 3:
            self.last_eks = parse_float(fields[2])
        self.evidence.last("scf", n, line)

    def _tsscf(self, n: int, line: bytes) -> None:
        self.transiesta = True
        self._scf(n, line)

    def _scfconv(self, n: int, line: bytes) -> None:
        self.cycle_open = False
        self.last_cycle_end = "converged"
        self.evidence.last("scfconv", n, line)

    def _scfnotconv(self, n: int, line: bytes) -> None:
        low = line.lower()
        self.cycle_open = False
        if b"wall time" in low or b"walltime" in low:
            self.out_of_time = True
            self.evidence.first("oot", n, line)
            return
        self.last_cycle_end = "not_converged"
        if b"required" in low:
            self.scf_fatal = True
            self.evidence.first("scf_fatal", n, line)
        else:
            self.scf_warn += 1
            self.evidence.first("scf_warn", n, line)

    def _geomnotconv(self, n: int, line: bytes) -> None:
        self.geom_fatal = True
        self.evidence.first("geom", n, line)

    def _outcoor(self, n: int, line: bytes) -> None:
        if b"Relaxed" in line:
            self.relaxed = True
            self.unrelaxed = False
            self.evidence.drop("unrelaxed")
            self.evidence.last("relaxed", n, line)
        else:
            self.unrelaxed = True
            self.evidence.last("unrelaxed", n, line)

    def _maxf(self, n: int, line: bytes) -> None:
        value = parse_float(line.partition(b"Max")[2])
        if b"constrained" in line:
            self.max_force = value
            self.evidence.last("maxf", n, line)
        else:
            self.max_force_unconstrained = value

    def _final(self, n: int, line: bytes) -> None:
        self.in_final = True
        self.evidence.last("final", n, line)

    def _total(self, n: int, line: bytes) -> None:
        if self.in_final:
            self.energy_total = parse_float(line.rpartition(b"=")[2])
            self.evidence.last("total", n, line)

    def _fermi(self, n: int, line: bytes) -> None:
        if self.in_final:
            self.fermi = parse_float(line.rpartition(b"=")[2])
            self.evidence.last("fermi", n, line)

    def _completed(self, n: int, line: bytes) -> None:
        self.completed = True
        self.error_pending = False
        self.evidence.last("completed", n, line)

    def _endrun(self, n: int, line: bytes) -> None:
        self.end_of_run = True
        if self.program == "tbtrans":
            self.evidence.last("endrun", n, line)

    def _abnormal(self, n: int, line: bytes) -> None:
        self.abnormal = True
        self.evidence.first("abnormal", n, line, limit=2)

    def _oot(self, n: int, line: bytes) -> None:
        self.out_of_time = True
        self.evidence.first("oot", n, line)

    def _current(self, n: int, line: bytes) -> None:
        m = _CURRENT.search(line)
        if m is None:
            return
        pair = clean_text(m.group(1))
        self.currents[pair] = parse_float(m.group(3))
        if self.bias_v is None:
            self.bias_v = parse_float(m.group(2))
        self.evidence.first("current", n, line, limit=4)

    # ------------------------------------------------------------------ scanning hooks
    def head_complete(self) -> bool:
        return self.scf_started or self.program == "tbtrans"

    def tail_anchor(self, window: bytes, pos: int) -> int | None:
        """Feed the tail from the last geometry step (or last SCF cycle) on.

        Every termination marker, the final energy block and the forces of the last
        step are printed after it; nothing before it changes the verdict once
        ``needs_full_scan`` said no.
        """
        if self.program == "tbtrans":
            return pos
        if self.begin_count or self.optimization or self._is_dynamics():
            return last_indented_line(window, pos, b"Begin ")
        return last_indented_line(window, pos, b"iscf ")

    def needs_full_scan(self) -> bool:
        """A non-fatal SCF_NOT_CONV can only sit mid-file without SCF.MustConverge.

        With ``SCF.MustConverge true`` (head: "SCF convergence failure will abort job")
        any SCF failure ends the run, so its marker is in the tail. A single-point run
        has one SCF cycle (two for TranSIESTA, whose first failure aborts), so its
        marker is also in the tail. Otherwise the middle must be read.
        """
        if self.program == "tbtrans":
            return False
        if self.must_converge:
            return False
        single_point = self.redata_seen and not self._is_dynamics() and not self.begin_count
        return not single_point

    def begin_tail(self) -> None:
        self.sampled = True
        self.cycle_open = False
        self.in_final = False
        self.error_pending = False

    def _is_dynamics(self) -> bool:
        dyn = (self.dynamics or "").lower()
        return bool(dyn) and "single" not in dyn

    # ------------------------------------------------------------------ side files
    def _read_side_files(self) -> dict[str, Any]:
        """Fold in ``MESSAGES`` and ``0_NORMAL_EXIT`` written next to the stdout."""
        info: dict[str, Any] = {}
        if self.program == "tbtrans":
            return info
        directory = self.source.parent
        try:
            out_mtime = self.source.stat().st_mtime
        except OSError:
            return info
        for name in ("MESSAGES", "0_NORMAL_EXIT"):
            side = directory / name
            try:
                skew = abs(side.stat().st_mtime - out_mtime)
            except OSError:
                continue
            if skew > SIDE_FILE_MAX_SKEW_S:
                self.notes.append(
                    f"{name} ignored: written {skew:.0f} s apart from the stdout "
                    "(left by another run?)"
                )
                continue
            if name == "0_NORMAL_EXIT":
                info["normal_exit_file"] = True
                for i, line in iter_lines_of(side, 4096):
                    if line.strip():
                        self.evidence.side(name, i, line)
                if not self.completed:
                    self.notes.append("0_NORMAL_EXIT exists but the stdout has no 'Job completed'")
                continue
            info["messages_file"] = True
            for i, line in iter_lines_of(side):
                self._message_line(i, line)
        return info

    def _message_line(self, n: int, line: bytes) -> None:
        upper = line.upper()
        if b"SCF_NOT_CONV" in upper:
            if b"WALL TIME" in upper:
                self.out_of_time = True
            elif b"REQUIRED" in upper or upper.startswith(b"FATAL"):
                self.scf_fatal = True
            else:
                self.messages_scf_warn = True
        elif b"GEOM_NOT_CONV" in upper:
            if upper.startswith(b"FATAL"):
                self.geom_fatal = True
            else:
                self.messages_geom_warn = True
        elif b"OUT_OF_TIME" in upper:
            self.out_of_time = True
        elif not upper.startswith(b"FATAL"):
            return
        elif self.fatal_item is None and b"ABNORMAL_TERMINATION" not in upper:
            # (a bare ABNORMAL_TERMINATION states no reason: the stdout's crash line does)
            self.fatal_item = (n, f"[MESSAGES] {clean_text(line)}")
        self.evidence.side("MESSAGES", n, line)

    def _scan_crash(self, scan: ScanInfo) -> None:
        """Look for crash and batch-system kill lines at the end of an unfinished run.

        A dying program prints its reason last, so the last 64 KiB are enough. A crash
        line counts only when no SCF iteration was printed after it (SIESTA prints some
        harmless "ERROR"-looking lines and goes on).
        """
        if self.completed or scan.size == 0:
            return
        window, n_lines = read_tail_window(self.source, scan.size, CRASH_WINDOW_BYTES)
        last_scf = last_match_start(_SCF_LINE, window, 0)
        for m in _CRASH.finditer(window):
            if last_scf is not None and last_scf > m.start():
                continue
            index = window.count(b"\n", 0, m.start() + 1)
            self.error_pending = True
            self.evidence.first("error", scan.absolute_line(index - n_lines - 1), m.group(0)[1:])
        for pos, kind, line in find_kill_lines(window):
            index = window.count(b"\n", 0, pos + 1)
            self.killed = self.killed if self.killed == "walltime" else kind
            self.evidence.first("killed", scan.absolute_line(index - n_lines - 1), line)

    # ------------------------------------------------------------------ verdict
    def _verdict(self) -> tuple[Verdict, tuple[str, ...], str]:
        """Verdict, evidence slots holding its decisive line, fallback reason."""
        v = Verdict
        if self.program == "tbtrans":
            if self.abnormal or self.error_pending:
                return v.ABORTED, ("error", "abnormal"), "TBtrans stopped abnormally"
            if self.end_of_run and not self.currents:
                return (
                    v.ABORTED,
                    (),
                    "TBtrans ended without printing a current ('V [V] / I [A]')",
                )
            if self.end_of_run:
                return v.CONVERGED, ("endrun",), "TBtrans reached '>> End of run'"
            return v.INCOMPLETE, ("current",), "no '>> End of run': TBtrans output cut off"
        if self.scf_fatal:
            return v.SCF_NOT_CONVERGED, ("scf_fatal", "side"), "SCF_NOT_CONV (required)"
        if self.geom_fatal:
            return v.GEOMETRY_NOT_CONVERGED, ("geom", "side"), "GEOM_NOT_CONV"
        if self.out_of_time or (self.killed == "walltime" and not self.completed):
            return v.INCOMPLETE, ("oot", "killed", "side"), "stopped at the time limit"
        if self.fatal_item is not None and not self.completed:
            return v.ABORTED, ("side",), self.fatal_item[1]
        if (self.abnormal or self.error_pending or self.killed) and not self.completed:
            # e.g. TranSIESTA: the initial SIESTA cycle failed (warning), then it aborts.
            if self.last_cycle_end == "not_converged":
                return v.SCF_NOT_CONVERGED, ("scf_warn",), "SCF_NOT_CONV, then abort"
            return v.ABORTED, ("error", "killed", "abnormal"), "abnormal termination"
        if self.completed:
            if self.scf_warn or self.messages_scf_warn:
                return v.SCF_NOT_CONVERGED, ("scf_warn", "side"), "tolerated SCF_NOT_CONV"
            if (self.unrelaxed and self.optimization) or self.messages_geom_warn:
                return v.GEOMETRY_NOT_CONVERGED, ("unrelaxed", "side"), "relaxation unconverged"
            return v.CONVERGED, ("completed",), "Job completed"
        return (
            v.INCOMPLETE,
            (),
            "no 'Job completed' nor abort marker: output cut off (walltime kill?) or running",
        )

    def report(self, scan: ScanInfo) -> ValidationReport:
        side = self._read_side_files()
        self._scan_crash(scan)
        status, slots, fallback = self._verdict()
        lead = self.evidence.pick(slots)
        if status is Verdict.ABORTED and self.fatal_item is not None and not self.completed:
            lead = self.fatal_item  # TranSIESTA's own words, not "Stopping Program"
        full = not scan.sampled
        numbers: dict[str, Any] = {
            "program": self.program or "unknown",
            "version": self.version,
            "energy_total_ev": self.energy_total,
            "fermi_ev": self.fermi,
        }
        if self.program == "tbtrans":
            numbers["bias_v"] = self.bias_v
            numbers["currents_a"] = dict(self.currents)
        else:
            if self.begin_count:
                if full:
                    geometry_steps: int | None = self.begin_count
                elif self.first_begin is not None and self.last_begin is not None:
                    geometry_steps = self.last_begin - self.first_begin + 1
                else:
                    geometry_steps = None
            else:
                geometry_steps = 1 if self.scf_started else 0
            numbers.update(
                {
                    "last_scf_energy_ev": self.last_eks,
                    "scf_iterations_last": self.last_iscf,
                    "scf_iterations_total": self.scf_lines if full else None,
                    "scf_cycles": self.scf_cycles if full else None,
                    "scf_not_converged_warnings": self.scf_warn if full else None,
                    "max_force_ev_ang": (
                        self.max_force
                        if self.max_force is not None
                        else self.max_force_unconstrained
                    ),
                    "geometry_steps": geometry_steps,
                    "dynamics": self.dynamics,
                    "scf_must_converge": self.must_converge,
                    "max_scf_iterations": self.max_scf,
                    "transiesta": self.transiesta,
                    "bias_v": self.bias_v if self.transiesta else None,
                }
            )
        numbers.update(side)
        numbers.update({"scan": scan.mode, "file_size": scan.size, "bytes_read": scan.bytes_read})
        notes = list(self.notes)
        notes += scan.notes()
        if self.program is None:
            notes.append("no SIESTA or TBtrans banner found")
        return ValidationReport(
            status=status,
            code=self.code,
            evidence=self.evidence.items(lead),
            numbers=numbers,
            source=scan.path,
            notes=notes,
            reason=describe_line(lead, fallback),
        )


def validate_siesta(path: str | Path, *, full_scan: bool = False) -> ValidationReport:
    """Validate a SIESTA/TBtrans stdout file or run directory."""
    return validate_path(path, "siesta", full_scan=full_scan)
