"""The streaming scanner that feeds a code's :class:`Analyzer` with the lines that matter.

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

import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, ClassVar

from hpcgate.codes.report import EvidenceLog, ScanInfo, ValidationReport

__all__ = [
    "FULL_SCAN_MAX_BYTES",
    "Analyzer",
    "find_kill_lines",
    "iter_lines_of",
    "last_indented_line",
    "last_match_start",
    "parse_float",
    "read_tail_window",
    "scan_file",
    "tail_failures",
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
#: Crash messages are looked for in this many last bytes of an unfinished run.
CRASH_WINDOW_BYTES = 64 << 10
#: Chunk size when streaming a whole file.
STREAM_CHUNK_BYTES = 8 << 20
#: Only this much of an overlong line is kept (markers are at line starts); bounds
#: memory on binary junk without newlines.
LINE_CAP_BYTES = 1 << 20

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


class Analyzer(ABC):
    """A code's knowledge of its stdout, fed with the interesting lines in file order.

    ``pattern`` is one compiled regex over bytes, built from the code's marker table
    (:attr:`hpcgate.codes.markers.MarkerTable.pattern`): each alternative ends in an empty
    group naming the kind of line (``m.lastgroup``). The leading newline lets ``re`` jump
    between line starts in C; alternatives start with a literal (or a possessive
    ``' ++'``) so a non-matching line is rejected after a byte or two. Measured ~750 MB/s
    of CPU on SIESTA output, versus ~30 MB/s for ``^...`` with backtracking.
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


def tail_failures(
    path: Path, scan: ScanInfo, crash: re.Pattern[bytes], progress: re.Pattern[bytes]
) -> tuple[list[tuple[int, bytes]], list[tuple[int, str, bytes]]]:
    """Crash lines and scheduler kill lines in the last 64 KiB of an unfinished run.

    A dying program prints its reason last, so the last bytes are enough. A ``crash``
    line counts only when no ``progress`` line (an SCF iteration) follows it: codes print
    harmless "ERROR"-looking lines and go on. Returns ``([(line_no, line)], [(line_no,
    kind, line)])`` with line numbers as in the scan (absolute when known).
    """
    window, n_lines = read_tail_window(path, scan.size, CRASH_WINDOW_BYTES)
    last_progress = last_match_start(progress, window, 0)
    crashes: list[tuple[int, bytes]] = []
    for m in crash.finditer(window):
        if last_progress is not None and last_progress > m.start():
            continue
        index = window.count(b"\n", 0, m.start() + 1)
        crashes.append((scan.absolute_line(index - n_lines - 1), m.group(0)[1:]))
    kills: list[tuple[int, str, bytes]] = []
    for pos, kind, line in find_kill_lines(window):
        index = window.count(b"\n", 0, pos + 1)
        kills.append((scan.absolute_line(index - n_lines - 1), kind, line))
    return crashes, kills


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
