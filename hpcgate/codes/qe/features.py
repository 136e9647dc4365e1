"""What makes a pw.x run long or big, read from its input for the resource recommender.

A bounded line scanner over user text that never raises: namelist assignments
(``nat = 8, ntyp = 1``) and the ``K_POINTS`` card, at most :data:`MAX_LINES` lines.
Variant parameters (``system.ecutwfc`` or ``ecutwfc``) win over the file, as they do when
the inputs are prepared (:mod:`hpcgate.codes.qe.prepare`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["FEATURES", "MAX_LINES", "qe_features"]

FEATURES = ("atoms", "species", "kpoints", "ecutwfc_ry", "ecutrho_ry", "spin", "relax")
MAX_LINES = 200_000
_ASSIGN_RE = re.compile(r"([A-Za-z_][A-Za-z0-9_]{0,40})(?:\([^)]{0,20}\))?\s*=\s*([^,\s/]{1,60})")
_RELAX = {"relax": 1.0, "vc-relax": 1.0, "md": 1.0, "vc-md": 1.0}


def _number(word: str | None) -> float | None:
    if word is None:
        return None
    try:
        value = float(word.strip("'\"").lower().replace("d", "e"))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _scan(text: str) -> tuple[dict[str, str], list[str]]:
    """First assignment of every namelist variable, and the K_POINTS card's lines."""
    values: dict[str, str] = {}
    card: list[str] = []
    in_card = False
    for raw in text.splitlines()[:MAX_LINES]:
        line = raw.split("!", 1)[0].strip()
        if not line:
            continue
        upper = line.upper()
        if upper.startswith("K_POINTS"):
            in_card = True
            card = [line]
            continue
        if in_card:
            if upper[:1].isalpha() or len(card) > 4:  # the next card, or past the grid
                in_card = False
            else:
                card.append(line)
                continue
        for m in _ASSIGN_RE.finditer(line):
            values.setdefault(m.group(1).lower(), m.group(2))
    return values, card


def _kpoints(card: list[str]) -> float:
    if not card:
        return 1.0
    head = card[0].lower()
    if "gamma" in head:
        return 1.0
    words = card[1].split() if len(card) > 1 else []
    if "automatic" in head:
        total = 1.0
        for w in words[:3]:
            total *= max(1.0, min(abs(_number(w) or 1.0), 1e4))
        return total
    count = _number(words[0] if words else None)
    return max(1.0, min(count or 1.0, 1e6))


def qe_features(
    files: Mapping[str, str], main: str, params: Mapping[str, Any] | None = None
) -> dict[str, float]:
    """The :data:`FEATURES` of one pw.x input (never raises; defaults where unread)."""
    values, card = _scan(files.get(main, ""))
    for key, value in (params or {}).items():
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            values[str(key).rpartition(".")[2].lower()] = str(value)

    def num(key: str, default: float, top: float) -> float:
        found = _number(values.get(key))
        return max(0.0, min(abs(found) if found is not None else default, top))

    ecutwfc = num("ecutwfc", 25.0, 1e5)
    calc = (values.get("calculation") or "scf").strip("'\"").lower()
    return {
        "atoms": num("nat", 0.0, 1e7),
        "species": num("ntyp", 0.0, 1e3),
        "kpoints": _kpoints(card),
        "ecutwfc_ry": ecutwfc,
        "ecutrho_ry": num("ecutrho", 4 * ecutwfc, 4e5),
        "spin": num("nspin", 1.0, 4.0),
        "relax": _RELAX.get(calc, 0.0),
    }
