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
        r"""``\n(?:text(?P<name>)|...)[^\n]*+`` over bytes, one empty group per marker.

        The leading newline lets ``re`` jump between line starts in C; how the markers are
        combined (shared starts, groups at the end) is explained in :func:`_factor`.
        """
        items = [(m.name, _atoms(m)) for m in self.markers]
        source = r"\n(?:" + _factor(items) + r")[^\n]*+"
        return re.compile(source.encode("ascii"))


#: One literal character (plain or escaped) with an optional quantifier: the unit that
#: consecutive markers may share (``" ++"``, ``"r"``, ``"\\."``).
_ATOM = re.compile(r"(?:\\[^A-Za-z0-9]|[A-Za-z0-9 :_>!<,/'=#-])(?:[*+?]\+?)?")


def _atoms(marker: Marker) -> list[str]:
    """The marker's text as atoms, then the rest (from the first non-literal) as one.

    A text with an alternation of its own (``A|B``) is one atom: no prefix of it may be
    shared, or the prefix would bind to its first branch only.
    """
    atoms = [_INDENT_BYTES] if marker.indented else []
    if "|" in marker.text:
        return [*atoms, f"(?:{marker.text})"]
    pos = 0
    while (m := _ATOM.match(marker.text, pos)) is not None:
        atoms.append(m.group(0))
        pos = m.end()
    if pos < len(marker.text):
        atoms.append(marker.text[pos:])
    return atoms


def _factor(items: list[tuple[str, list[str]]]) -> str:
    """The markers as one alternation, in the given order: ``redata: (?:Max...(?P<a>)|...)``.

    Consecutive markers that start with the same atoms share them, and each marker's
    group is an empty one at its *end*: ``re`` tries every alternative at every line
    start, and a failing alternative then costs a literal compare, not a group entry
    (measured on the 4 MiB relaxation output: ~750 MB/s, 2.6x the hand-written pattern
    with a group around each marker). Only neighbours are merged, so alternatives are
    tried in the same order and the same one matches; ``m.lastgroup`` names it.
    """
    parts: list[str] = []
    i = 0
    while i < len(items):
        name, atoms = items[i]
        j = i + 1
        while j < len(items) and len(atoms) > 1 and _shared(atoms, items[j][1]):
            j += 1
        if j - i == 1:
            parts.append(f"{''.join(atoms)}(?P<{name}>)")
            i = j
            continue
        # The longest start the whole run shares, leaving each at least one atom.
        n = min(len(a) for _, a in items[i:j]) - 1
        while any(a[:n] != atoms[:n] for _, a in items[i:j]):
            n -= 1
        rest = _factor([(nm, a[n:]) for nm, a in items[i:j]])
        parts.append(f"{''.join(atoms[:n])}(?:{rest})")
        i = j
    return "|".join(parts)


def _shared(a: list[str], b: list[str]) -> bool:
    return len(b) > 1 and a[0] == b[0]
