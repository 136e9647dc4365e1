"""Stdout markers: the lines a code prints that tell how its run went, declared once.

A code's ``markers.py`` lists its :class:`Marker`\\ s in a :class:`MarkerTable`. Two
readers use the same objects:

* the in-job validator (``hpcgate/codes/<code>/validate.py``) scans raw bytes with the
  table's one combined :meth:`MarkerTable.pattern`, whose group names are the markers'
  names (a line's kind is ``m.lastgroup``);
* the analyses' line parsers (``analyses/<code>/stdout.py``) test decoded lines with
  :meth:`Marker.match`, or extend a marker with :meth:`Marker.then` to capture values.

So a marker's text is written once. Its ``text`` is a regex source of the start of the
line after any indentation; an ``indented`` marker is printed after blanks. The byte
pattern requires those blanks (`` ++``: possessive, so a failing line costs a byte or
two); the text side tolerates none (``^\\s*+``), as the analyses' parsers always did.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property

__all__ = ["Marker", "MarkerTable"]

_INDENT_BYTES = " ++"
_INDENT_TEXT = r"\s*+"


@dataclass(frozen=True)
class Marker:
    """One kind of stdout line; ``name`` is its group name in the validator's pattern."""

    name: str
    text: str
    indented: bool = False
    #: Flags of the text-side regexes only (the byte pattern is case-sensitive).
    flags: int = field(default=0, compare=False)

    @property
    def line_source(self) -> str:
        """Regex source matching a decoded line that starts with this marker."""
        return "^" + (_INDENT_TEXT if self.indented else "") + self.text

    @cached_property
    def line(self) -> re.Pattern[str]:
        return re.compile(self.line_source, self.flags)

    def match(self, line: str) -> re.Match[str] | None:
        """The marker at the start of ``line`` (a decoded line without its newline)."""
        return self.line.match(line)

    def then(self, rest: str, flags: int = 0) -> re.Pattern[str]:
        """A line regex: this marker followed by ``rest`` (which captures the values)."""
        return re.compile(self.line_source + rest, self.flags | flags)

    def head_search(self) -> re.Pattern[bytes]:
        """The marker at any line start of raw bytes (``search`` it in a stdout's head)."""
        indent = " *+" if self.indented else ""
        return re.compile(f"^{indent}{self.text}".encode("ascii"), re.MULTILINE)


class MarkerTable:
    """The markers one analyzer feeds on, in the order they are tried."""

    def __init__(self, *markers: Marker) -> None:
        self.markers = markers
        self._by_name = {m.name: m for m in markers}
        if len(self._by_name) != len(markers):
            raise ValueError("two markers share a name")

    def __getitem__(self, name: str) -> Marker:
        return self._by_name[name]

    def __iter__(self) -> Iterator[Marker]:
        return iter(self.markers)

    def __contains__(self, marker: object) -> bool:
        return isinstance(marker, Marker) and self._by_name.get(marker.name) is marker

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.markers)

    @cached_property
    def pattern(self) -> re.Pattern[bytes]:
        """``\n(?:(?P<name>text)|...)[^\n]*+`` over bytes, one group per marker.

        Consecutive markers that start alike share that start, as a hand-written pattern
        would: consecutive indented ones one `` ++(?:...)``, others their common literal
        prefix (``redata: (?:...)``). ``re`` tries every alternative at every line start,
        so this keeps the scan at ~200 MB/s (measured: twice the flat alternation). The
        leading newline lets ``re`` jump between line starts in C.
        """
        parts = _pieces(self.markers)
        source = r"\n(?:" + "|".join(parts) + r")[^\n]*+"
        return re.compile(source.encode("ascii"))


_LITERAL = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 :-_>!")
_QUANTIFIERS = ("*", "+", "?", "{")


def _pieces(markers: tuple[Marker, ...]) -> list[str]:
    """The pattern's alternatives: runs of indented markers, and runs of other markers
    that share a literal start, each run as one alternative."""
    pieces: list[str] = []
    run: list[Marker] = []
    for marker in markers:
        if run and marker.indented == run[0].indented:
            texts = [m.text for m in (*run, marker)]
            if marker.indented or _common_literal_prefix(texts):
                run.append(marker)
                continue
        if run:
            pieces.append(_piece(run))
        run = [marker]
    if run:
        pieces.append(_piece(run))
    return pieces


def _piece(run: list[Marker]) -> str:
    if run[0].indented:
        return _INDENT_BYTES + "(?:" + _alternation([(m.name, m.text) for m in run]) + ")"
    if len(run) == 1:
        return _alternation([(run[0].name, run[0].text)])
    prefix = _common_literal_prefix([m.text for m in run])
    rest = [(m.name, m.text[len(prefix) :]) for m in run]
    return prefix + "(?:" + _alternation(rest) + ")"


def _alternation(groups: list[tuple[str, str]]) -> str:
    return "|".join(f"(?P<{name}>{text})" for name, text in groups)


def _common_literal_prefix(texts: list[str]) -> str:
    """The longest shared start made of plain characters, after which no text goes on
    with a quantifier (that would apply to the prefix's last character)."""
    prefix = ""
    for chars in zip(*texts, strict=False):
        if len(set(chars)) != 1 or chars[0] not in _LITERAL:
            break
        prefix += chars[0]
    while prefix and any(t[len(prefix) :].startswith(_QUANTIFIERS) for t in texts):
        prefix = prefix[:-1]
    return prefix
