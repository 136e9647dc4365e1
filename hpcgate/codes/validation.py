"""Run validation ("did this run converge?") shared by every code.

This module holds what does not depend on the code: the verdicts, the report, the
byte-level streaming scanner and the dispatch from a path to a code's analyzer.

Why a byte scanner and not sisl: validation runs at the end of every batch job, on
outputs that can be gigabytes long and contain garbage bytes. Importing sisl costs
~150 MB RSS and ~1 s, and sisl raises on non-UTF-8 bytes. Here a file is read in
binary chunks and searched with one compiled ``bytes`` regex per code; only the
matching lines ever reach Python, so memory stays bounded (a few chunk buffers).

Streaming design (see docs/validation.md for the figures):

* files up to ``FULL_SCAN_MAX_BYTES`` are scanned whole: exact line numbers and totals;
* larger files are *sampled*: the head is read until the first SCF cycle starts
  (banner, version, echoed options), then a tail window that grows until it holds the
  start of the last SCF cycle / geometry step. Every termination marker (abort,
  "Job completed", relaxed/unrelaxed coordinates, a fatal SCF failure) is printed
  after that point, so the verdict does not need the middle of the file;
* the analyzer can still ask for the whole file after reading the head, when the
  options say a *non-fatal* failure marker may sit anywhere (SIESTA with
  ``SCF.MustConverge false`` in a relaxation, QE with ``scf_must_converge=.false.``).

Line numbers in evidence are 1-based from the start of the file. In sampled mode
lines of the tail window get negative numbers counted from the end of the file
(-1 is the last line, as in Python indexing), because counting the newlines of a
1 GB middle would cost as much as scanning it.
"""

from __future__ import annotations

import enum
import json
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

__all__ = [
    "FULL_SCAN_MAX_BYTES",
    "Analyzer",
    "EvidenceLog",
    "ScanInfo",
    "ValidationReport",
    "Verdict",
    "clean_text",
    "describe_line",
    "detect_code",
    "find_kill_lines",
    "find_stdout",
    "iter_lines_of",
    "last_indented_line",
    "last_match_start",
    "parse_float",
    "read_tail_window",
    "scan_file",
    "validate_path",
]

#: Files up to this size are scanned whole (~0.3 s at the ~115 MiB/s measured).
FULL_SCAN_MAX_BYTES = 32 << 20
#: Head: read in these chunks until the analyzer saw the first SCF cycle start ...
HEAD_CHUNK_BYTES = 64 << 10
#: ... but never more than this (huge input echoes / coordinate lists).
HEAD_MAX_BYTES = 16 << 20
#: Tail: first window, growth factor, and the size above which we stream everything.
TAIL_INITIAL_BYTES = 1 << 20
TAIL_GROWTH = 4
TAIL_MAX_BYTES = 64 << 20
#: Chunk size when streaming a whole file.
STREAM_CHUNK_BYTES = 8 << 20
#: Only this much of an overlong line is kept (markers are at line starts); bounds
#: memory on binary junk without newlines.
LINE_CAP_BYTES = 1 << 20
#: Bytes looked at to recognise the code from its banner.
DETECT_BYTES = 64 << 10
#: Evidence text is cut to this many characters.
EVIDENCE_TEXT_MAX = 240

KNOWN_CODES = ("siesta", "qe")
#: Names of stdout files we look for in a run directory (besides ``*.out``).
_STDOUT_SUFFIXES = (".out", ".log", ".pwo", ".stdout")


class Verdict(enum.StrEnum):
    """Outcome of a run, most specific cause first when several apply."""

    CONVERGED = "converged"
    SCF_NOT_CONVERGED = "scf_not_converged"
    GEOMETRY_NOT_CONVERGED = "geometry_not_converged"
    ABORTED = "aborted"
    INCOMPLETE = "incomplete"


@dataclass(frozen=True)
class ValidationReport:
    """What ``hpcgate validate`` prints, and what the batch chain acts on.

    ``evidence`` holds ``(line_no, text)`` pairs of the lines the verdict rests on;
    ``line_no`` < 0 counts from the end of the file (sampled scan, see module doc).
    ``evidence[0]`` is the decisive line (the cause, or "Job completed"); the others
    follow in file order. Lines taken from side files (SIESTA ``MESSAGES``) come last,
    carry the file name as a text prefix and their own line number. ``reason`` is a
    one-line summary for logs and the scheduler step's failure reason.
    """

    status: Verdict
    code: str
    evidence: list[tuple[int, str]] = field(default_factory=list)
    numbers: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    notes: list[str] = field(default_factory=list)
    reason: str = ""

    @property
    def converged(self) -> bool:
        return self.status is Verdict.CONVERGED

    @property
    def exit_code(self) -> int:
        """0 only for a converged run, so that ``afterok`` chains stop otherwise."""
        return 0 if self.converged else 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "converged": self.converged,
            "code": self.code,
            "reason": self.reason,
            "source": self.source,
            "numbers": dict(self.numbers),
            "evidence": [[n, t] for n, t in self.evidence],
            "notes": list(self.notes),
        }

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=False)


@dataclass(frozen=True)
class ScanInfo:
    """How much of the file was read, so the report can say what is exact."""

    path: str
    size: int
    mode: str  # "full" or "sampled"
    bytes_read: int
    skipped: tuple[int, int] | None = None  # byte range not read, sampled mode only
    total_lines: int | None = None  # known after a full scan

    def notes(self) -> list[str]:
        """What a reader must know about a sampled scan (empty after a full one)."""
        if self.mode != "sampled" or self.skipped is None:
            return []
        a, b = self.skipped
        return [
            f"sampled scan: bytes {a}..{b} not read; negative line numbers count "
            "from the end; totals need --full-scan"
        ]

    def absolute_line(self, line_no: int) -> int:
        """Turn a from-the-end number (< 0) into a 1-based one when the total is known."""
        if line_no < 0 and self.total_lines is not None:
            return self.total_lines + line_no + 1
        return line_no

    @property
    def sampled(self) -> bool:
        return self.mode == "sampled"


_FLOAT_RE = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eEdD][-+]?\d+)?")


def parse_float(text: str | bytes) -> float | None:
    """Parse a Fortran-printed number (``-.93E-06``, ``1.0D-03``); None on ``****``."""
    if isinstance(text, bytes):
        text = text.decode("ascii", "replace")
    m = _FLOAT_RE.search(text)
    if m is None:
        return None
    try:
        return float(m.group(0).replace("D", "E").replace("d", "e"))
    except ValueError:
        return None


_CONTROL = {c: "?" for c in [*range(0, 9), *range(10, 32), 127]}


def clean_text(line: bytes) -> str:
    """Decode a raw line for display: never fails, no control characters, bounded."""
    text = line.decode("utf-8", "replace").rstrip("\r\n ").translate(_CONTROL)
    if len(text) > EVIDENCE_TEXT_MAX:
        text = text[: EVIDENCE_TEXT_MAX - 1] + "\u2026"
    return text


class EvidenceLog:
    """Keeps the few lines a verdict rests on, with bounded memory.

    ``last`` slots keep only the latest line of a kind (e.g. the last "SCF cycle
    converged"); ``first`` slots keep the first ``limit`` lines of a kind plus the
    latest one, so a marker repeated a million times cannot grow memory. ``side``
    lines come from another file (SIESTA ``MESSAGES``) and are listed last, their
    text prefixed with ``[NAME]``.
    """

    def __init__(self) -> None:
        self._last: dict[str, tuple[int, str]] = {}
        self._first: dict[str, list[tuple[int, str]]] = {}
        self._first_tail: dict[str, tuple[int, str]] = {}
        self._side: list[tuple[int, str]] = []

    def last(self, slot: str, line_no: int, line: bytes | str) -> None:
        self._last[slot] = (line_no, line if isinstance(line, str) else clean_text(line))

    def first(self, slot: str, line_no: int, line: bytes | str, limit: int = 3) -> None:
        item = (line_no, line if isinstance(line, str) else clean_text(line))
        kept = self._first.setdefault(slot, [])
        if len(kept) < limit:
            kept.append(item)
        else:
            self._first_tail[slot] = item

    def side(self, name: str, line_no: int, line: bytes, limit: int = 8) -> None:
        if len(self._side) < limit:
            self._side.append((line_no, f"[{name}] {clean_text(line)}"))

    def drop(self, slot: str) -> None:
        self._last.pop(slot, None)
        self._first.pop(slot, None)
        self._first_tail.pop(slot, None)

    def get(self, slot: str) -> tuple[int, str] | None:
        """The first kept line of ``slot`` (``"side"``: the first side-file line)."""
        if slot == "side":
            return self._side[0] if self._side else None
        kept = self._first.get(slot)
        if kept:
            return kept[0]
        return self._last.get(slot)

    def pick(self, slots: Iterable[str]) -> tuple[int, str] | None:
        """The line of the first slot in ``slots`` that holds one."""
        for slot in slots:
            item = self.get(slot)
            if item is not None:
                return item
        return None

    def items(self, lead: tuple[int, str] | None = None) -> list[tuple[int, str]]:
        """``lead`` (the decisive line) first, then the others in file order (positive
        numbers, then negative ones counted from the end), then side-file lines."""
        unique = {
            *self._last.values(),
            *(i for v in self._first.values() for i in v),
            *self._first_tail.values(),
        }
        ordered = sorted(unique, key=lambda item: (0 if item[0] > 0 else 1, item[0], item[1]))
        rest = [i for i in ordered + self._side if i != lead]
        return [lead, *rest] if lead is not None else rest


def describe_line(item: tuple[int, str] | None, fallback: str) -> str:
    """One-line reason for a verdict: the decisive line and where it is."""
    if item is None:
        return fallback
    n, text = item
    where = f"line {n}" if n > 0 else f"line {-n} from the end"
    return f"{text.strip()} ({where})"


class Analyzer(ABC):
    """A code's knowledge of its stdout, fed with the interesting lines in file order.

    ``pattern`` is one compiled regex of the form ``\\n(?:(?P<kind1>...)|...)[^\\n]*``:
    each alternative names the kind of line. The leading newline lets ``re`` jump
    between line starts in C; alternatives start with a literal (or a possessive
    ``' ++'``) so a non-matching line is rejected after a byte or two. Measured
    ~200 MB/s on SIESTA output, versus ~30 MB/s for ``^...`` with backtracking.
    """

    code: ClassVar[str]
    pattern: re.Pattern[bytes]

    def __init__(self, source: Path) -> None:
        self.source = source
        self.evidence = EvidenceLog()

    @abstractmethod
    def feed(self, line_no: int, kind: str, line: bytes) -> None:
        """Consume one matched line (``line`` without its newline)."""

    def head_complete(self) -> bool:
        """True once the head holds what the tail cannot give (banner, options)."""
        return False

    def tail_anchor(self, window: bytes, pos: int) -> int | None:
        """Where the tail must start for a right verdict, or None to read more.

        ``window[pos]`` is a newline; return the index of the newline that precedes
        the line from which the tail is fed (typically the start of the last SCF
        cycle or geometry step). Everything a verdict needs comes after it.
        """
        return pos

    def needs_full_scan(self) -> bool:
        """Asked after the head: may a verdict-changing line hide in the middle?"""
        return False

    def begin_tail(self) -> None:  # noqa: B027 - optional hook
        """Called before the tail of a sampled scan is fed (state crossing the gap)."""

    @abstractmethod
    def report(self, scan: ScanInfo) -> ValidationReport:
        """Build the verdict once every region was fed."""


def last_match_start(rx: re.Pattern[bytes], window: bytes, pos: int) -> int | None:
    """Start of the last match of ``rx`` in ``window[pos:]`` (re has no reverse search)."""
    last = None
    for m in rx.finditer(window, pos):
        last = m.start()
    return last


def last_indented_line(window: bytes, pos: int, needle: bytes) -> int | None:
    """Index of the newline before the last line of ``window[pos:]`` that is
    ``needle`` preceded only by spaces.

    Uses ``bytes.rfind`` (GB/s) instead of a regex, which would try every line start:
    this runs on the tail window of every large file.
    """
    end = len(window)
    while True:
        i = window.rfind(needle, pos, end)
        if i < 0:
            return None
        nl = window.rfind(b"\n", pos, i)
        if nl < 0:
            return None
        if not window[nl + 1 : i].strip(b" "):
            return nl
        end = i


def _feed_buffer(
    analyzer: Analyzer,
    buf: bytes,
    first_line_no: int,
    *,
    pos: int = 0,
    end: int | None = None,
    negative_total: int | None = None,
) -> int:
    """Feed the matches of ``buf[pos:end]``, which starts with the newline before a line.

    Returns the number of newlines in ``buf[pos:end]``, i.e. how many lines were started.
    With ``negative_total`` (lines in the window), numbers count from the end.
    """
    if end is None:
        end = len(buf)
    line = first_line_no - 1
    cursor = pos
    feed = analyzer.feed
    for m in analyzer.pattern.finditer(buf, pos, end):
        start = m.start()
        line += buf.count(b"\n", cursor, start + 1)
        cursor = start + 1
        text = m.group(0)[1:]
        if negative_total is not None:
            feed(line - negative_total - 1, m.lastgroup or "", text)
        else:
            feed(line, m.lastgroup or "", text)
    return buf.count(b"\n", pos, end)


def _stream(
    analyzer: Analyzer,
    fh: BinaryIO,
    start: int,
    end: int,
    first_line_no: int,
    *,
    at_eof: bool = True,
    chunk: int = STREAM_CHUNK_BYTES,
    stop_when_head_complete: bool = False,
) -> tuple[int, int]:
    """Feed ``[start, end)`` chunk by chunk, cutting chunks at newlines.

    ``start`` must be a line start. When ``end`` is the end of the file (``at_eof``)
    the unterminated last line is fed too. Otherwise, and when stopping early because
    the head is complete, feeding stops at the last full line. Returns
    ``(offset, line_no)`` of the first line not fed (``offset`` = bytes consumed at EOF).
    """
    fh.seek(start)
    offset = start
    carry = b"\n"
    line_no = first_line_no
    eof = False
    while offset < end:
        block = fh.read(min(chunk, end - offset))
        if not block:
            eof = True
            break
        offset += len(block)
        data = carry + block
        if at_eof and offset >= end:
            line_no += _feed_buffer(analyzer, data, line_no)
            return offset, line_no
        cut = data.rfind(b"\n")
        if cut <= 0:  # a line longer than the chunk: keep its start only
            carry = data if len(data) <= LINE_CAP_BYTES else data[:LINE_CAP_BYTES]
            continue
        line_no += _feed_buffer(analyzer, data, line_no, end=cut)
        carry = data[cut:]
        if stop_when_head_complete and analyzer.head_complete():
            break
    if eof or (at_eof and offset >= end):
        if len(carry) > 1:
            line_no += _feed_buffer(analyzer, carry, line_no)
        return offset, line_no
    return offset - (len(carry) - 1), line_no


def _full(path: Path, fh: BinaryIO, size: int, next_line: int) -> ScanInfo:
    """ScanInfo of a whole-file scan; ``next_line`` is what ``_stream`` returned.

    ``_stream`` counts a line per newline it saw (plus the virtual one before line 1),
    so a final newline opens an empty "line" that is not one.
    """
    total = next_line - 1
    if size:
        fh.seek(size - 1)
        if fh.read(1) == b"\n":
            total -= 1
    else:
        total = 0
    return ScanInfo(str(path), size, "full", size, None, total)


def scan_file(path: Path, analyzer: Analyzer, *, full_scan: bool = False) -> ScanInfo:
    """Drive ``analyzer`` over ``path`` (full or head+tail, see module doc)."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        if full_scan or size <= FULL_SCAN_MAX_BYTES:
            _, last = _stream(analyzer, fh, 0, size, 1)
            return _full(path, fh, size, last)

        head_cap = min(size, HEAD_MAX_BYTES)
        head_end, next_line = _stream(
            analyzer,
            fh,
            0,
            head_cap,
            1,
            at_eof=head_cap >= size,
            chunk=HEAD_CHUNK_BYTES,
            stop_when_head_complete=True,
        )
        if head_end >= size:
            return _full(path, fh, size, next_line)

        if analyzer.needs_full_scan():
            _, last = _stream(analyzer, fh, head_end, size, next_line)
            return _full(path, fh, size, last)

        window = TAIL_INITIAL_BYTES
        raw = b""
        anchor: int | None = None
        while True:
            start = max(head_end, size - window)
            if start == head_end:
                # The window reaches the head: this is a full scan after all.
                raw = b""
                _, last = _stream(analyzer, fh, head_end, size, next_line)
                return _full(path, fh, size, last)
            raw = b""
            fh.seek(start - 1)
            raw = fh.read(size - start + 1)
            nl = raw.find(b"\n")
            if nl >= 0:
                anchor = analyzer.tail_anchor(raw, nl)
                if anchor is not None:
                    break
            if window >= TAIL_MAX_BYTES:
                raw = b""
                _, last = _stream(analyzer, fh, head_end, size, next_line)
                return _full(path, fh, size, last)
            window *= TAIL_GROWTH
    window_start = start + nl  # first byte of the first full line in the window
    n_lines = raw.count(b"\n", anchor) - (1 if raw.endswith(b"\n") else 0)
    analyzer.begin_tail()
    _feed_buffer(analyzer, raw, 1, pos=anchor, negative_total=n_lines)
    bytes_read = head_end + (size - window_start)
    return ScanInfo(str(path), size, "sampled", bytes_read, (head_end, window_start))


# --------------------------------------------------------------------------- dispatch

#: Banner literals per code, searched with ``bytes.find`` (a regex alternation would
#: try every position of the 64 KiB head: ~3 ms, more than a sampled 1 GB scan).
_BANNERS: tuple[tuple[str, bytes], ...] = (
    ("siesta", b"WELCOME TO SIESTA"),
    ("siesta", b"Siesta Version"),
    ("siesta", b"WELCOME TO TBtrans"),
    ("siesta", b"TBtrans Version"),
    ("qe", b"Program PWSCF"),
    ("qe", b"PWSCF v."),
)
_EXECUTABLE = re.compile(rb"^Executable\s*:\s*(siesta|transiesta|tbtrans)\b", re.MULTILINE)


def detect_code(head: bytes) -> str | None:
    """Recognise the code from the banner in the first bytes of a stdout."""
    best: tuple[int, str] | None = None
    for code, needle in _BANNERS:
        i = head.find(needle)
        if i >= 0 and (best is None or i < best[0]):
            best = (i, code)
    exe = _EXECUTABLE.search(head, 0, 4096)
    if exe is not None and (best is None or exe.start() < best[0]):
        best = (exe.start(), "siesta")
    return best[1] if best else None


def _read_head(path: Path, n: int = DETECT_BYTES) -> bytes:
    try:
        with path.open("rb") as fh:
            return fh.read(n)
    except OSError:
        return b""


def _is_main_program(head: bytes) -> bool:
    """A TBtrans stdout is a post-processing step; the SIESTA/QE run is preferred."""
    if b"WELCOME TO TBtrans" in head or b"TBtrans Version" in head:
        return False
    exe = _EXECUTABLE.search(head, 0, 4096)
    return exe is None or exe.group(1) != b"tbtrans"


def find_stdout(directory: Path, code: str | None = None) -> Path | None:
    """Pick the stdout of the run in ``directory``.

    Candidates are ``*.out``/``*.log``/``*.pwo``/``*.stdout`` files whose first 64 KiB
    hold a banner of ``code`` (any known code when None). Preference: the main program
    over TBtrans, then the most recently modified (the run that just finished in this
    job), then the largest.
    """
    ranked: list[tuple[bool, float, int, str]] = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return None
    for entry in entries:
        name = entry.name
        if not (name.endswith(_STDOUT_SUFFIXES) or name == "stdout"):
            continue
        try:
            if not entry.is_file():
                continue
            st = entry.stat()
        except OSError:
            continue
        head = _read_head(Path(entry.path))
        found = detect_code(head)
        if found is None or (code is not None and found != code):
            continue
        ranked.append((_is_main_program(head), st.st_mtime, st.st_size, entry.path))
    if not ranked:
        return None
    ranked.sort(reverse=True)
    return Path(ranked[0][3])


def _make_analyzer(code: str, path: Path) -> Analyzer:
    # Imported here: the code modules import this one.
    if code == "siesta":
        from hpcgate.codes.siesta.validate import SiestaAnalyzer

        return SiestaAnalyzer(path)
    from hpcgate.codes.qe.validate import QeAnalyzer

    return QeAnalyzer(path)


def validate_file(path: Path, code: str, *, full_scan: bool = False) -> ValidationReport:
    """Validate one stdout file with the analyzer of ``code``."""
    analyzer = _make_analyzer(code, path)
    scan = scan_file(path, analyzer, full_scan=full_scan)
    return analyzer.report(scan)


def validate_path(
    path: str | os.PathLike[str], code: str | None = None, *, full_scan: bool = False
) -> ValidationReport:
    """Validate a run: ``path`` is a stdout file or a run directory.

    ``code`` is ``"siesta"`` or ``"qe"``; None detects it from the banner.
    Raises FileNotFoundError when ``path`` does not exist and ValueError for an
    unknown ``code``: those are usage errors, not verdicts. A run directory without
    any stdout, or a file without a known banner, is ``incomplete``.
    """
    if code is not None:
        code = code.strip().lower()
        if code in ("espresso", "quantum-espresso", "pw", "pw.x"):
            code = "qe"
        if code not in KNOWN_CODES:
            raise ValueError(f"unknown code {code!r} (expected one of: {', '.join(KNOWN_CODES)})")
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"path not found: {p}")
    if p.is_dir():
        found = find_stdout(p, code)
        if found is None:
            what = f"{code} " if code else ""
            return ValidationReport(
                status=Verdict.INCOMPLETE,
                code=code or "unknown",
                evidence=[],
                numbers={},
                source=str(p),
                notes=[f"no {what}stdout (*.out, *.log, *.pwo with a known banner) in {p}"],
                reason=f"no {what}stdout in {p}",
            )
        p = found
    if code is None:
        code = detect_code(_read_head(p))
        if code is None:
            size = p.stat().st_size
            return ValidationReport(
                status=Verdict.INCOMPLETE,
                code="unknown",
                numbers={"file_size": size},
                source=str(p),
                notes=[
                    "no SIESTA, TBtrans or Quantum ESPRESSO banner in the first "
                    f"{DETECT_BYTES // 1024} KiB"
                    + (" (empty file)" if size == 0 else "")
                    + "; pass --code to force one"
                ],
                reason="empty file" if size == 0 else "no known program banner",
            )
    return validate_file(p, code, full_scan=full_scan)


def read_tail_window(path: Path, size: int, nbytes: int = 64 << 10) -> tuple[bytes, int]:
    """The last ``nbytes`` of a file cut to whole lines, starting with a newline.

    Returns ``(window, n_lines)``; a match at ``pos`` is on line
    ``window.count(b"\\n", 0, pos + 1) - n_lines - 1`` counted from the end.
    Used for crash messages, which are the last thing a dying program prints.
    """
    try:
        with path.open("rb") as fh:
            start = max(0, size - nbytes)
            fh.seek(start)
            data = fh.read(size - start)
    except OSError:
        return b"", 0
    if start == 0:
        window = b"\n" + data
    else:
        nl = data.find(b"\n")
        window = data[nl:] if nl >= 0 else b""
    n_lines = window.count(b"\n") - (1 if window.endswith(b"\n") else 0)
    return window, n_lines


#: Batch-system messages that end a job, when stderr is merged into the stdout file.
#: Slurm: "slurmstepd: error: *** JOB 12 ON n1 CANCELLED AT ... DUE TO TIME LIMIT ***",
#: "... CANCELLED AT ..." (scancel), "Detected 1 oom-kill event(s)";
#: PBS: "=>> PBS: job killed: walltime 3610 exceeded limit 3600".
_KILL_LINE = re.compile(
    rb"\n[^\n]{0,200}?(?:DUE TO TIME LIMIT|TIME LIMIT \*\*\*|walltime \d+ exceeded limit"
    rb"|CANCELLED AT|job killed|oom-kill|OOM Killed|Out Of Memory|exceeded memory limit)[^\n]*+",
    re.IGNORECASE,
)


def find_kill_lines(window: bytes) -> list[tuple[int, str, bytes]]:
    """Scheduler kill messages in ``window``: ``(pos, kind, line)``, kind is
    ``"walltime"`` (-> incomplete: resubmit/restart) or ``"killed"`` (-> aborted)."""
    found: list[tuple[int, str, bytes]] = []
    for m in _KILL_LINE.finditer(window):
        line = m.group(0)[1:]
        upper = line.upper()
        kind = "walltime" if b"TIME LIMIT" in upper or b"WALLTIME" in upper else "killed"
        found.append((m.start(), kind, line))
    return found


def iter_lines_of(path: Path, limit_bytes: int = 1 << 20) -> Iterator[tuple[int, bytes]]:
    """Lines of a small side file (SIESTA ``MESSAGES``), bounded to ``limit_bytes``."""
    try:
        with path.open("rb") as fh:
            data = fh.read(limit_bytes)
    except OSError:
        return
    lines = data.split(b"\n")
    if lines and not lines[-1]:
        lines.pop()
    yield from enumerate(lines, start=1)
