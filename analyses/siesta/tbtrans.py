"""Readers for TBtrans outputs that sisl cannot read.

sisl 0.20 has no sile for the TBtrans stdout (``get_sile("tbt.out")`` is the ambiguous
``.out`` error) nor for the text spectra ``*.TBT.TRANS_<A>-<B>`` (k-resolved),
``*.TBT.AVTRANS_<A>-<B>`` (k-averaged) and ``*.TBT.DOS`` (``NotImplementedError``).
These are plain text; the functions here are pure over lines so they can be
property-tested. ``*.TBT.nc`` files are read with sisl (see ``transmission.py``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "CurrentLine",
    "TbtSpectrum",
    "parse_tbt_spectrum",
    "parse_tbtrans_stdout",
    "read_tbt_spectrum",
]

_FLOAT = r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[EeDd][-+]?\d+)?"
#: ``Left -> Right, V [V] / I [A]: 0.250000     V / 0.769618E-05 A``
_CURRENT = re.compile(
    rf"^\s*(\S+)\s*->\s*(\S+?),\s*V\s*\[V\]\s*/\s*I\s*\[A\]:\s*({_FLOAT})\s*V\s*/\s*({_FLOAT})\s*A"
)
_TBT_VOLTAGE = re.compile(rf"^\s*tbt:\s*Voltage\s*=\s*({_FLOAT})\s*Volts")
_WEIGHT = re.compile(rf"\bw=\s*({_FLOAT})")


def _f(token: str) -> float:
    return float(token.replace("D", "E").replace("d", "e"))


@dataclass(frozen=True, slots=True)
class CurrentLine:
    source: str
    target: str
    bias_V: float
    current_A: float


def parse_tbtrans_stdout(lines: Iterable[str]) -> tuple[list[CurrentLine], float | None]:
    """Every ``A -> B, V [V] / I [A]`` line, and the ``tbt: Voltage`` if printed."""
    currents: list[CurrentLine] = []
    voltage: float | None = None
    for line in lines:
        if "I [A]" in line and (m := _CURRENT.match(line)) is not None:
            currents.append(CurrentLine(m.group(1), m.group(2), _f(m.group(3)), _f(m.group(4))))
        elif voltage is None and "Voltage" in line and (m := _TBT_VOLTAGE.match(line)):
            voltage = _f(m.group(1))
    return currents, voltage


@dataclass(slots=True)
class TbtSpectrum:
    """A k-averaged spectrum; ``n_k`` is 0 for a file that was already averaged."""

    energies: list[float] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    n_k: int = 0
    weight_sum: float = 0.0


def parse_tbt_spectrum(lines: Iterable[str]) -> TbtSpectrum:
    """Average a k-resolved ``TBT.TRANS``/``TBT.DOS`` over k with the ``w=`` weights.

    A file without ``# kb= ... w=`` lines (``AVTRANS``) is returned as is. Every k block
    must have the same energies; raises ValueError otherwise or on a non-numeric line.
    """
    blocks: list[tuple[float, list[float], list[float]]] = []
    weight: float | None = None
    energies: list[float] = []
    values: list[float] = []
    for raw in lines:
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            if (m := _WEIGHT.search(line)) is not None:
                if weight is not None or energies:
                    blocks.append((1.0 if weight is None else weight, energies, values))
                weight, energies, values = _f(m.group(1)), [], []
            continue
        parts = line.split()
        if len(parts) < 2:
            raise ValueError(f"spectrum line without two columns: {line[:60]!r}")
        energies.append(_f(parts[0]))
        values.append(_f(parts[1]))
    if weight is None:
        return TbtSpectrum(energies=energies, values=values)
    blocks.append((weight, energies, values))
    first = blocks[0][1]
    total = [0.0] * len(first)
    weight_sum = 0.0
    for w, e, v in blocks:
        if len(e) != len(first) or any(abs(a - b) > 1e-9 for a, b in zip(e, first, strict=True)):
            raise ValueError("k-resolved blocks have different energy grids")
        weight_sum += w
        for i, t in enumerate(v):
            total[i] += w * t
    if weight_sum > 0:  # weights sum to 1 in practice; normalise for safety
        total = [t / weight_sum for t in total]
    return TbtSpectrum(energies=list(first), values=total, n_k=len(blocks), weight_sum=weight_sum)


def read_tbt_spectrum(path: Path) -> TbtSpectrum:
    with open(path, encoding="utf-8", errors="replace") as fh:
        return parse_tbt_spectrum(fh)
