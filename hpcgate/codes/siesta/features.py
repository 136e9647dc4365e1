"""What makes a SIESTA run long or big, read from its fdf for the resource recommender.

The fdf is user text, so this is a bounded line scanner that never raises: it follows
``%include`` and ``< file`` only to the calculation's own files (plain names in ``files``),
each file once, and stops after :data:`MAX_LINES` lines in all. Anything it cannot read
keeps SIESTA's default (``docs/recommender.md``). Labels follow fdf rules (case, ``.``,
``_`` and ``-`` ignored; the first occurrence wins), and the variant's parameters win
over the fdf, as they do when the inputs are prepared.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["FEATURES", "MAX_LINES", "siesta_features"]

#: The features, in the order the recommender's columns take them.
FEATURES = (
    "atoms",
    "species",
    "kpoints",
    "mesh_cutoff_ry",
    "basis_size",
    "spin",
    "transiesta",
    "bias_v",
    "md_steps",
)
MAX_LINES = 200_000
_MAX_FILES = 64
_RY_PER = {
    "ry": 1.0,
    "mry": 1e-3,
    "ev": 1 / 13.605693,
    "mev": 1e-3 / 13.605693,
    "ha": 2.0,
    "hartree": 2.0,
    "j": 4.587425e17,
}
_EV_PER = {"ev": 1.0, "v": 1.0, "mev": 1e-3, "mv": 1e-3, "ry": 13.605693, "ha": 27.211386}
#: PAO.BasisSize as an ordinal of the orbitals per atom it gives.
_BASIS = {
    "sz": 1,
    "minimal": 1,
    "szp": 2,
    "dz": 2,
    "dzp": 3,
    "standard": 3,
    "tz": 3,
    "tzp": 4,
    "tzdp": 5,
    "tz2p": 5,
}
_SPIN = {
    "nonpolarized": 1,
    "none": 1,
    "polarized": 2,
    "collinear": 2,
    "colinear": 2,
    "noncollinear": 4,
    "noncolinear": 4,
    "spinorbit": 8,
    "so": 8,
}
_RELAX = {"cg", "broyden", "fire", "verlet", "nose", "parrinellorahman", "anneal", "lbfgs"}


def _label(word: str) -> str:
    return re.sub(r"[._-]", "", word).lower()


def _content(line: str) -> str:
    return re.split(r"[#!;]", line, maxsplit=1)[0].strip()


class _Scan:
    """Top-level keys (first wins) and block bodies over the fdf and what it includes."""

    def __init__(self, files: Mapping[str, str]) -> None:
        self.files = files
        self.keys: dict[str, list[str]] = {}
        self.blocks: dict[str, list[str]] = {}
        self.lines = 0
        self.seen: set[str] = set()

    def _lines_of(self, name: str) -> list[str]:
        if name in self.seen or name not in self.files or len(self.seen) >= _MAX_FILES:
            return []
        self.seen.add(name)
        room = max(0, MAX_LINES - self.lines)
        lines = self.files[name].splitlines()[:room]
        self.lines += len(lines)
        return lines

    def read(self, name: str) -> None:
        todo = [name]
        while todo and self.lines < MAX_LINES:
            block: str | None = None
            for raw in self._lines_of(todo.pop(0)):
                words = _content(raw).split()
                if not words:
                    continue
                head = words[0].lower()
                if head == "%block" and len(words) >= 2:
                    block = _label(words[1])
                    body = self.blocks.setdefault(block, [])
                    if len(words) >= 4 and words[2] == "<":
                        body.extend(_content(x) for x in self._lines_of(words[3]))
                        block = None
                elif head == "%endblock":
                    block = None
                elif block is not None:
                    self.blocks[block].append(" ".join(words))
                elif head == "%include" and len(words) >= 2:
                    todo.append(words[1])
                elif len(words) >= 3 and words[1] == "<":
                    todo.append(words[2])
                else:
                    self.keys.setdefault(_label(words[0]), words[1:])


def _number(word: str | None) -> float | None:
    if word is None:
        return None
    try:
        value = float(word.lower().replace("d", "e"))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _with_unit(words: list[str], per: Mapping[str, float], default_unit: str) -> float | None:
    value = _number(words[0] if words else None)
    if value is None:
        return None
    unit = (words[1] if len(words) > 1 else default_unit).lower()
    return abs(value) * per.get(unit, per[default_unit])


def _kpoints(scan: _Scan) -> float:
    rows = scan.blocks.get("kgridmonkhorstpack", [])[:3]
    total = 1.0
    for i, row in enumerate(rows):
        words = row.split()
        value = _number(words[i]) if len(words) > i else None
        total *= max(1.0, min(abs(value or 1.0), 1e4))
    return total


def _flag(words: list[str] | None) -> bool:
    return (
        words is not None
        and bool(words)
        and words[0].lower().strip(".") in ("true", "t", "yes", "1")
    )


def _override(scan: _Scan, params: Mapping[str, Any]) -> None:
    for key, value in params.items():
        if key != "rotation" and isinstance(value, str | int | float | bool):
            scan.keys[_label(str(key))] = str(value).split()


def _count(scan: _Scan, key: str, block: str) -> float:
    words = scan.keys.get(key)
    declared = _number(words[0] if words else None)
    if declared is not None and declared > 0:
        return min(declared, 1e7)
    return float(len(scan.blocks.get(block, [])))


def _md_steps(scan: _Scan) -> float:
    kind = _label((scan.keys.get("mdtypeofrun") or ["none"])[0])
    if kind not in _RELAX:
        return 0.0
    steps = _number((scan.keys.get("mdsteps") or scan.keys.get("mdnumcgsteps") or ["0"])[0])
    return max(0.0, min(steps or 0.0, 1e6))


def siesta_features(
    files: Mapping[str, str], main: str, params: Mapping[str, Any] | None = None
) -> dict[str, float]:
    """The :data:`FEATURES` of one SIESTA input set (never raises; defaults where unread)."""
    scan = _Scan(files)
    scan.read(main)
    _override(scan, params or {})
    keys = scan.keys
    spin_word = keys.get("spin")
    if spin_word:
        spin = _SPIN.get(_label(spin_word[0]), 1)
    else:
        spin = 2 if _flag(keys.get("spinpolarized")) else 1
    method = (keys.get("solutionmethod") or ["diagon"])[0].lower()
    mesh = _with_unit(keys.get("meshcutoff") or [], _RY_PER, "ry")
    bias = _with_unit(keys.get("tsvoltage") or [], _EV_PER, "ev")
    return {
        "atoms": _count(scan, "numberofatoms", "atomiccoordinatesandatomicspecies"),
        "species": _count(scan, "numberofspecies", "chemicalspecieslabel"),
        "kpoints": _kpoints(scan),
        "mesh_cutoff_ry": min(mesh if mesh is not None else 100.0, 1e5),
        "basis_size": float(_BASIS.get((keys.get("paobasissize") or ["dzp"])[0].lower(), 3)),
        "spin": float(spin),
        "transiesta": 1.0 if method == "transiesta" else 0.0,
        "bias_v": min(bias if bias is not None else 0.0, 1e3),
        "md_steps": _md_steps(scan),
    }
