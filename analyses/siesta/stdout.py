"""One streaming pass over a SIESTA/TranSIESTA stdout: SCF history, forces, markers.

Why not sisl for these (sisl 0.20 is used where it is right, e.g. ``read_energy``):

* ``read_scf[:](iscf=None)`` on a TranSIESTA 4.1 output (``ts_au_100``) drops the last SCF
  iteration of the SIESTA cycle (35 rows for 36 iterations) and needs a second call
  with ``key="ts-scf"`` for the TranSIESTA cycle; it has no convergence flag at all;
* ``read_force`` returns None for SIESTA 5 outputs, whose per-atom block is printed with
  a ``siesta:`` prefix at the end only, and ``read_geometry`` can crash in ``read_basis``;
* each sisl read rescans the file (30-190 ms per MiB); one pass here gives everything.

Fortran fixed-width fields can run together (``-0.887920170.113695`` is Ef = -0.887920
and dHmax = 170.113695 in a real 4.1 output); SCF values are printed with six decimals,
so a glued token is split on that rule. ``****`` (overflow) becomes NaN.

Input is any iterable of text lines, so the parser is a pure function (property-tested);
``read_siesta_stdout`` opens the file with ``errors="replace"`` because real SIESTA 5
outputs contain non-UTF-8 bytes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from hpcgate.codes.siesta import markers

__all__ = [
    "CoordBlock",
    "ForceBlock",
    "ScfCycle",
    "SiestaStdout",
    "parse_scf_values",
    "parse_siesta_stdout",
    "read_siesta_stdout",
]

_FLOAT = r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[EeDd][-+]?\d+)?"
_SIX_DECIMALS = re.compile(r"\*{2,}|[-+]?\d*\.\d{6}")
# Marker lines come from the one table the validator uses too (hpcgate.codes.siesta.markers);
# the regexes here only add what is captured after a marker.
_SCF_ROW = markers.SCF.then(r"(\d+)\s+(.*)$")
_TS_SCF_ROW = markers.TS_SCF.then(r"(\d+)\s+(.*)$")
_BEGIN_STEP = r"\s*(\d+)\s*$"
_BEGIN = markers.BEGIN.then(_BEGIN_STEP)
_SIESTA_BEGIN = re.compile(r"^siesta:\s*" + markers.BEGIN.text + _BEGIN_STEP)  # SIESTA 5
_FORCES_START = re.compile(r"^\s*+(siesta|ts):\s*Atomic forces \(eV/Ang\):")
_FORCE_ATOM = re.compile(rf"^\s*+(\d+)\s+({_FLOAT})\s+({_FLOAT})\s+({_FLOAT})\s*$")
_FORCE_TOT = re.compile(rf"^\s*+Tot\s+({_FLOAT})\s+({_FLOAT})\s+({_FLOAT})")
_FORCE_MAX = markers.MAX_FORCE.then(rf"({_FLOAT})\s*(constrained)?\s*$")
_FORCE_RES = re.compile(rf"^\s*+Res\s+({_FLOAT})")
# No lazy group before ``\s*=`` (or ``\s*\(``): that retries the spaces after every extension,
# quadratic on one long line. The key is "up to the first '=', ending in a non-space".
_KEY_VALUE = re.compile(rf"^(siesta|ts):\s*+([^=]*[^=\s])\s*=\s*({_FLOAT})\s*$")
_FREE_ENG = re.compile(rf"^siesta:\s*FreeEng\s*=\s*({_FLOAT})")
_ETOT = re.compile(rf"^siesta:\s*Etot\s*=\s*({_FLOAT})")
_TS_VOLTAGE = markers.TS_VOLTAGE.then(rf"\s*=\s*({_FLOAT})\s*Volts")
_REDATA = markers.REDATA.then(rf"\s*+([^=]*[^=\s])\s*=\s*({_FLOAT}|[TF])\b")
_LABEL = re.compile(r"^\s*+SystemLabel\s+(\S+)", re.IGNORECASE)
_OUTCOOR = markers.OUTCOOR.then(r"\s*+([^(]*)\(([^)]*)\)\s*:")  # group 1 is stripped
_COORD = re.compile(rf"^\s*+({_FLOAT})\s+({_FLOAT})\s+({_FLOAT})\s+(\d+)\s+(\d+)\s+(\S+)")
_VECTOR = re.compile(rf"^\s*+({_FLOAT})\s+({_FLOAT})\s+({_FLOAT})\s*$")

#: First non-blank characters of every line the scanner looks at (a cheap pre-filter:
#: most of a 4 MiB relaxation output is coordinates and timers).
_INTERESTING_FIRST = frozenset("stiSBrGJVo")

_DEFAULT_COLUMNS: tuple[str, ...] = ("iscf", "Eharris", "E_KS", "FreeEng", "dDmax", "Ef", "dHmax")


def _to_float(token: str) -> float:
    if token.startswith("**"):
        return math.nan
    return float(token.replace("D", "E").replace("d", "e"))


def parse_scf_values(text: str) -> list[float]:
    """The numbers after ``scf: N``; splits glued six-decimal Fortran fields."""
    values: list[float] = []
    for token in text.split():
        try:
            values.append(_to_float(token))
        except ValueError:
            if len(token) > 256:  # a few glued fields at most; findall would go quadratic
                raise ValueError(f"unreadable SCF field {token[:40]!r}...") from None
            glued = _SIX_DECIMALS.findall(token)
            if not glued or "".join(glued) != token:
                raise ValueError(f"unreadable SCF field {token!r}") from None
            values.extend(_to_float(t) for t in glued)
    return values


@dataclass(slots=True)
class ScfCycle:
    """One SCF cycle: ``kind`` is ``scf`` (SIESTA) or ``ts-scf`` (TranSIESTA)."""

    kind: str
    geom_step: int
    columns: tuple[str, ...]
    rows: list[list[float]] = field(default_factory=list)
    converged: bool = False

    def column(self, name: str) -> list[float]:
        try:
            i = self.columns.index(name)
        except ValueError:
            return []
        return [row[i] if i < len(row) else math.nan for row in self.rows]

    @property
    def iterations(self) -> int:
        return len(self.rows)


@dataclass(slots=True)
class ForceBlock:
    """One ``Atomic forces`` block (eV/Ang). ``max_component`` is SIESTA's own "Max"."""

    source: str  # "siesta" or "ts"
    geom_step: int
    atoms: list[int] = field(default_factory=list)
    forces: list[tuple[float, float, float]] = field(default_factory=list)
    total: tuple[float, float, float] | None = None
    max_component: float | None = None
    max_constrained: float | None = None
    residual: float | None = None


@dataclass(slots=True)
class CoordBlock:
    """An ``outcoor`` block: ``unit`` is ``Ang``, ``Bohr``, ``fractional`` or ``scaled``."""

    title: str
    unit: str
    geom_step: int
    positions: list[tuple[float, float, float]] = field(default_factory=list)
    species: list[str] = field(default_factory=list)


@dataclass(slots=True)
class SiestaStdout:
    version: str | None = None
    system_label: str | None = None
    cycles: list[ScfCycle] = field(default_factory=list)
    force_blocks: list[ForceBlock] = field(default_factory=list)
    free_energies: list[float] = field(default_factory=list)
    etot: list[float] = field(default_factory=list)
    final_energy: dict[str, float] = field(default_factory=dict)
    last_coordinates: CoordBlock | None = None
    last_cell_Ang: list[tuple[float, float, float]] | None = None
    redata: dict[str, str] = field(default_factory=dict)
    geom_steps_seen: int = 0
    ts_voltage: float | None = None
    scf_not_converged: bool = False
    geom_not_converged: bool = False
    relaxed: bool = False
    job_completed: bool = False
    lines: int = 0

    @property
    def n_geometry_steps(self) -> int:
        steps = {c.geom_step for c in self.cycles}
        return max(len(steps), self.geom_steps_seen)

    def tolerance(self, key: str) -> float | None:
        raw = self.redata.get(key)
        try:
            return float(raw) if raw is not None else None
        except ValueError:
            return None


def _columns_from_header(line: str) -> tuple[str, ...]:
    names = tuple(re.sub(r"\(.*?\)", "", tok) for tok in line.split())
    return names if names and names[0] == "iscf" else _DEFAULT_COLUMNS


class _Scanner:
    """The state of one pass: the open block (forces, coordinates, cell, final energies)
    and the current SCF cycle. Each ``_in_*`` method consumes a line of its open block."""

    def __init__(self) -> None:
        self.out = SiestaStdout()
        self.columns = _DEFAULT_COLUMNS
        self.cycle: ScfCycle | None = None
        self.geom_step = 0
        self.block: ForceBlock | None = None
        self.in_final = False
        self.coords: CoordBlock | None = None
        self.cell: list[tuple[float, float, float]] | None = None

    def feed(self, n: int, line: str) -> None:
        self.out.lines = n + 1
        if self.block is not None and self._in_forces(line):
            return
        if self.coords is not None and self._in_coords(line):
            return
        if self.cell is not None and self._in_cell(line):
            return
        if self._block_start(line):
            return
        if self.in_final and self._in_final(line):
            return
        if line.startswith(("siesta:", "ts:")):
            # Fast path: ~60 % of a relaxation's lines start with "siesta:" (k-points,
            # stress, coordinates); only these few of them matter.
            self._siesta_line(line)
            return
        first = line.lstrip()[:1]
        if first and first in _INTERESTING_FIRST:
            self._other_line(n, line)

    def finish(self) -> SiestaStdout:
        if self.coords is not None and self.coords.positions:
            self.out.last_coordinates = self.coords
        return self.out

    # ---- open blocks
    def _in_forces(self, line: str) -> bool:
        block = self.block
        assert block is not None
        body = line[7:] if line.startswith("siesta:") else line
        if (m := _FORCE_ATOM.match(body)) is not None:
            block.atoms.append(int(m.group(1)))
            block.forces.append((_to_float(m[2]), _to_float(m[3]), _to_float(m[4])))
        elif (m := _FORCE_TOT.match(body)) is not None:
            block.total = (_to_float(m[1]), _to_float(m[2]), _to_float(m[3]))
        elif (m := _FORCE_MAX.match(body)) is not None:
            if m.group(2):
                block.max_constrained = _to_float(m[1])
            else:
                block.max_component = _to_float(m[1])
        elif (m := _FORCE_RES.match(body)) is not None:
            block.residual = _to_float(m[1])
        elif body.strip().startswith("---"):
            pass
        elif not body.strip() and not block.forces and block.max_component is None:
            pass  # blank line right after the title (SIESTA 5 "ts:" block)
        else:
            self.block = None
            return False
        return True

    def _in_coords(self, line: str) -> bool:
        coords = self.coords
        assert coords is not None
        if (m := _COORD.match(line)) is not None:
            coords.positions.append((_to_float(m[1]), _to_float(m[2]), _to_float(m[3])))
            coords.species.append(m.group(6))
            return True
        if coords.positions:
            self.out.last_coordinates = coords
        self.coords = None
        return False

    def _in_cell(self, line: str) -> bool:
        cell = self.cell
        assert cell is not None
        if (m := _VECTOR.match(line)) is not None:
            cell.append((_to_float(m[1]), _to_float(m[2]), _to_float(m[3])))
            if len(cell) == 3:
                self.out.last_cell_Ang, self.cell = cell, None
            return True
        self.cell = None
        return False

    def _block_start(self, line: str) -> bool:
        """Coordinates (``outcoor``) and cell (``outcell``) blocks open here."""
        if (m := _OUTCOOR.match(line)) is not None:
            unit = m.group(2).strip()
            unit = "scaled" if unit.lower().startswith("scaled") else unit
            self.coords = CoordBlock(title=m.group(1).strip(), unit=unit, geom_step=self.geom_step)
            if markers.RELAXED.match(line):
                self.out.relaxed = True
            return True
        if line.startswith("outcell: Unit cell vectors (Ang)"):
            self.cell = []
            return True
        return False

    def _in_final(self, line: str) -> bool:
        if (m := _KEY_VALUE.match(line)) is not None:
            key = m.group(2).strip() if m.group(1) == "siesta" else f"ts {m.group(2).strip()}"
            self.out.final_energy.setdefault(key, _to_float(m.group(3)))
            return True
        self.in_final = False
        return False

    # ---- single lines
    def _siesta_line(self, line: str) -> None:
        out = self.out
        if "Atomic forces" in line and (m := _FORCES_START.match(line)) is not None:
            self.block = ForceBlock(source=m.group(1), geom_step=self.geom_step)
            out.force_blocks.append(self.block)
        elif markers.FINAL_ENERGY.match(line):
            self.in_final = True
        elif "FreeEng" in line and (m := _FREE_ENG.match(line)) is not None:
            out.free_energies.append(_to_float(m.group(1)))
        elif "Etot" in line and (m := _ETOT.match(line)) is not None:
            out.etot.append(_to_float(m.group(1)))
        elif "Begin" in line and (m := _SIESTA_BEGIN.match(line)) is not None:
            self.geom_step = int(m.group(1))
            out.geom_steps_seen += 1
        elif "Voltage" in line and (m := _TS_VOLTAGE.match(line)) is not None:
            out.ts_voltage = _to_float(m.group(1))

    def _scf_row(self, kind: str, m: re.Match[str]) -> None:
        iscf = int(m.group(1))
        try:
            values = parse_scf_values(m.group(2))
        except ValueError:
            return
        cycle = self.cycle
        last_iscf = int(cycle.rows[-1][0]) if cycle is not None and cycle.rows else 0
        if cycle is None or cycle.kind != kind or iscf <= last_iscf:
            cycle = self.cycle = ScfCycle(kind=kind, geom_step=self.geom_step, columns=self.columns)
            self.out.cycles.append(cycle)
        cycle.rows.append([float(iscf), *values])
        cycle.converged = False

    def _other_line(self, n: int, line: str) -> None:
        out = self.out
        if (m := _SCF_ROW.match(line)) is not None:
            self._scf_row("scf", m)
        elif (m := _TS_SCF_ROW.match(line)) is not None:
            self._scf_row("ts-scf", m)
        elif markers.ISCF_HEADER.match(line):
            self.columns = _columns_from_header(line)
        elif markers.SCF_CONVERGED.match(line) or markers.SCF_CONVERGENCE_BY.match(line):
            if self.cycle is not None:
                self.cycle.converged = True
        elif markers.SCF_NOT_CONV.match(line):
            out.scf_not_converged = True
            if self.cycle is not None:
                self.cycle.converged = False
        elif (m := _BEGIN.match(line)) is not None:
            self.geom_step = int(m.group(1))
            out.geom_steps_seen += 1
        elif markers.REDATA.match(line):
            if (m := _REDATA.match(line)) is not None:
                out.redata.setdefault(m.group(1), m.group(2))
        elif markers.GEOM_NOT_CONV.match(line):
            out.geom_not_converged = True
        elif markers.JOB_COMPLETED.match(line):
            out.job_completed = True
        elif out.version is None and n < 200 and (m := markers.VERSION.match(line)) is not None:
            out.version = m.group("v")
        elif out.system_label is None and (m := _LABEL.match(line)) is not None:
            out.system_label = m.group(1)


def parse_siesta_stdout(lines: Iterable[str]) -> SiestaStdout:
    """Scan the lines once; never raises on odd content (unreadable rows are skipped)."""
    scanner = _Scanner()
    for n, raw in enumerate(lines):
        scanner.feed(n, raw.rstrip("\r\n"))
    return scanner.finish()


def read_siesta_stdout(path: Path) -> SiestaStdout:
    """Parse a stdout file; undecodable bytes become U+FFFD instead of raising."""
    with open(path, encoding="utf-8", errors="replace") as fh:
        return parse_siesta_stdout(fh)
