"""What a validation says: the verdict, the lines it rests on, and how much was read.

Shared by every code's analyzer (``hpcgate/codes/<code>/validate.py``) and by
``hpcgate validate``, which prints a :class:`ValidationReport` and exits with its
``exit_code``. Nothing here reads files: see :mod:`hpcgate.codes.scan`.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "EVIDENCE_TEXT_MAX",
    "EvidenceLog",
    "ScanInfo",
    "ValidationReport",
    "Verdict",
    "clean_text",
    "describe_line",
]

#: Evidence text is cut to this many characters.
EVIDENCE_TEXT_MAX = 240


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
