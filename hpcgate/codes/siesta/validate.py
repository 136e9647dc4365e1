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

The markers themselves are in :mod:`hpcgate.codes.siesta.markers`; why no sisl here:
see :mod:`hpcgate.codes.scan`.
"""

from __future__ import annotations

import re
from pathlib import Path

from hpcgate.codes.report import (
    ScanInfo,
    ValidationReport,
    Verdict,
    clean_text,
    describe_line,
)
from hpcgate.codes.scan import (
    Analyzer,
    last_indented_line,
    parse_float,
    tail_failures,
)
from hpcgate.codes.siesta import markers
from hpcgate.codes.siesta.markers import MARKERS, TBTRANS_MARKERS
from hpcgate.codes.siesta.messages import read_side_files
from hpcgate.codes.siesta.verdict import report_numbers, verdict

__all__ = ["SiestaAnalyzer", "validate_siesta"]

_LAST_INT = re.compile(rb"(-?\d+)\s*$")


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
        self.table = TBTRANS_MARKERS if self.program == "tbtrans" else MARKERS
        self.pattern = self.table.pattern
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
        self._handlers = {m.name: getattr(self, "_on_" + m.name) for m in self.table}

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
        exe = markers.BANNER_EXE.search(head)
        if exe is not None:
            name = exe.group("exe").lower()
            if name.startswith(b"tbtrans"):
                self.program = "tbtrans"
            elif name.startswith((b"siesta", b"transiesta")):
                self.program = "siesta"
        if self.program is None:
            welcome = markers.BANNER_WELCOME.search(head)
            if welcome is not None:
                self.program = "tbtrans" if welcome.group("w") == b"TBtrans" else "siesta"
        ver = markers.BANNER_VERSION.search(head)
        if ver is not None:
            self.version = clean_text(ver.group("v"))
            if ver.group("prog") == b"TBtrans":
                self.program = "tbtrans"
            elif ver.group("prog") == b"Siesta" and self.program is None:
                self.program = "siesta"
            line_no = head.count(b"\n", 0, ver.start()) + 1
            end = head.find(b"\n", ver.start())
            self.evidence.last("version", line_no, head[ver.start() : end if end >= 0 else None])

    def _on_maxscf(self, n: int, line: bytes) -> None:
        self.redata_seen = True
        if self.must_converge is None:
            self.must_converge = False  # until the "will abort job" line that follows
        value = parse_float(line.rpartition(b"=")[2])
        self.max_scf = int(value) if value is not None else None

    def _on_mustconv(self, n: int, line: bytes) -> None:
        self.redata_seen = True
        self.must_converge = True

    def _on_dynamics(self, n: int, line: bytes) -> None:
        self.dynamics = _after(line, b"=")
        if "optimi" in self.dynamics.lower():
            self.optimization = True

    def _on_method(self, n: int, line: bytes) -> None:
        if b"transiesta" in line.lower():
            self.transiesta = True

    def _on_voltage(self, n: int, line: bytes) -> None:
        self.bias_v = parse_float(line.rpartition(b"=")[2])
        self.evidence.last("voltage", n, line)

    def _on_begin(self, n: int, line: bytes) -> None:
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

    def _on_iscf(self, n: int, line: bytes) -> None:
        self.scf_started = True
        self.scf_cycles += 1
        self.cycle_open = True
        self.in_final = False

    def _on_scf(self, n: int, line: bytes) -> None:
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

    def _on_tsscf(self, n: int, line: bytes) -> None:
        self.transiesta = True
        self._on_scf(n, line)

    def _on_scfconv(self, n: int, line: bytes) -> None:
        self.cycle_open = False
        self.last_cycle_end = "converged"
        self.evidence.last("scfconv", n, line)

    def _on_scfnotconv(self, n: int, line: bytes) -> None:
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

    def _on_geomnotconv(self, n: int, line: bytes) -> None:
        self.geom_fatal = True
        self.evidence.first("geom", n, line)

    def _on_relaxed(self, n: int, line: bytes) -> None:
        self.relaxed = True
        self.unrelaxed = False
        self.evidence.drop("unrelaxed")
        self.evidence.last("relaxed", n, line)

    def _on_unrelaxed(self, n: int, line: bytes) -> None:
        self.unrelaxed = True
        self.evidence.last("unrelaxed", n, line)

    def _on_maxf(self, n: int, line: bytes) -> None:
        value = parse_float(line.partition(b"Max")[2])
        if b"constrained" in line:
            self.max_force = value
            self.evidence.last("maxf", n, line)
        else:
            self.max_force_unconstrained = value

    def _on_final(self, n: int, line: bytes) -> None:
        self.in_final = True
        self.evidence.last("final", n, line)

    def _on_total(self, n: int, line: bytes) -> None:
        if self.in_final:
            self.energy_total = parse_float(line.rpartition(b"=")[2])
            self.evidence.last("total", n, line)

    def _on_fermi(self, n: int, line: bytes) -> None:
        if self.in_final:
            self.fermi = parse_float(line.rpartition(b"=")[2])
            self.evidence.last("fermi", n, line)

    def _on_completed(self, n: int, line: bytes) -> None:
        self.completed = True
        self.error_pending = False
        self.evidence.last("completed", n, line)

    def _on_endrun(self, n: int, line: bytes) -> None:
        self.end_of_run = True
        if self.program == "tbtrans":
            self.evidence.last("endrun", n, line)

    def _on_abnormal(self, n: int, line: bytes) -> None:
        self.abnormal = True
        self.evidence.first("abnormal", n, line, limit=2)

    _on_stopping = _on_abnormal

    def _on_oot(self, n: int, line: bytes) -> None:
        self.out_of_time = True
        self.evidence.first("oot", n, line)

    def _on_current(self, n: int, line: bytes) -> None:
        m = markers.CURRENT_VALUES.search(line)
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

    # ------------------------------------------------------------------ endings
    def _scan_crash(self, scan: ScanInfo) -> None:
        """Crash and batch-system kill lines at the end of a run without 'Job completed'."""
        if self.completed or scan.size == 0:
            return
        crashes, kills = tail_failures(self.source, scan, markers.CRASH, markers.SCF_LINE)
        for n, line in crashes:
            self.error_pending = True
            self.evidence.first("error", n, line)
        for n, kind, line in kills:
            self.killed = self.killed if self.killed == "walltime" else kind
            self.evidence.first("killed", n, line)

    # ------------------------------------------------------------------ verdict
    def report(self, scan: ScanInfo) -> ValidationReport:
        side = read_side_files(self)
        self._scan_crash(scan)
        status, slots, fallback = verdict(self)
        lead = self.evidence.pick(slots)
        if status is Verdict.ABORTED and self.fatal_item is not None and not self.completed:
            lead = self.fatal_item  # TranSIESTA's own words, not "Stopping Program"
        numbers = report_numbers(self, scan.sampled)
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
    from hpcgate.codes.validation import validate_path  # it dispatches to this module

    return validate_path(path, "siesta", full_scan=full_scan)
