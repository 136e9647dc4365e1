"""Untrusted job output made safe to show: lines split, bounded, control characters gone.

A job's stdout is whatever the program (or the user) printed: terminal escapes, NULs,
carriage-return progress bars, megabyte-long lines. ``LineSplitter`` turns byte chunks
into display lines in linear time: the pending partial line is bounded (cut at
``max_line`` characters), a ``\\r`` keeps only what the terminal would show last, ANSI
escape sequences and other control characters (tab excepted) are dropped.
"""

from __future__ import annotations

import re

# CSI/OSC escape sequences first (so "[31m" does not survive), then lone control chars.
# Each pattern scans forward from one ESC over a bounded class: linear overall.
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b.?")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")


def clean_line(raw: bytes, max_line: int) -> str:
    """One display line from one raw line (without its ``\\n``)."""
    if b"\r" in raw:
        head, _, tail = raw.rstrip(b"\r").rpartition(b"\r")
        raw = tail if head or tail else raw
    text = raw[: max_line * 4].decode("utf-8", errors="replace")
    text = _CONTROL.sub("", _ESCAPES.sub("", text))
    if len(text) > max_line:
        return text[: max_line - 1] + "…"
    return text


class LineSplitter:
    """Bytes in, complete display lines out; a partial line waits for its end (bounded)."""

    def __init__(self, max_line: int) -> None:
        self.max_line = max_line
        self._partial = bytearray()

    @property
    def pending(self) -> int:
        """Bytes of the partial line held back (not yet sent)."""
        return len(self._partial)

    def feed(self, data: bytes) -> list[str]:
        lines: list[str] = []
        start = 0
        while (end := data.find(b"\n", start)) != -1:
            self._partial += data[start:end]
            lines.append(clean_line(bytes(self._partial), self.max_line))
            self._partial.clear()
            start = end + 1
        self._partial += data[start:]
        if len(self._partial) > self.max_line * 4:  # a line without end: show it cut
            lines.append(clean_line(bytes(self._partial), self.max_line))
            self._partial.clear()
        return lines

    def flush(self) -> list[str]:
        """The partial line, when the output is over."""
        if not self._partial:
            return []
        line = clean_line(bytes(self._partial), self.max_line)
        self._partial.clear()
        return [line]

    def reset(self) -> None:
        """Forget the partial line (the reader skipped ahead or the file was truncated)."""
        self._partial.clear()
