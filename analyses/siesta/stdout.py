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
_SCF_ROW = re.compile(r"^\s*+(ts-scf|scf):\s*(\d+)\s+(.*)$")
_HEADER = re.compile(r"^\s*+iscf\s+Eharris")
_BEGIN = re.compile(r"^\s*+(?:siesta:\s*)?Begin\b[^=]*=\s*(\d+)\s*$")
_FORCES_START = re.compile(r"^\s*+(siesta|ts):\s*Atomic forces \(eV/Ang\):")
_FORCE_ATOM = re.compile(rf"^\s*+(\d+)\s+({_FLOAT})\s+({_FLOAT})\s+({_FLOAT})\s*$")
_FORCE_TOT = re.compile(rf"^\s*+Tot\s+({_FLOAT})\s+({_FLOAT})\s+({_FLOAT})")
_FORCE_MAX = re.compile(rf"^\s*+Max\s+({_FLOAT})\s*(constrained)?\s*$")
_FORCE_RES = re.compile(rf"^\s*+Res\s+({_FLOAT})")
# No lazy group before ``\s*=`` (or ``\s*\(``): that retries the spaces after every extension,
# quadratic on one long line. The key is "up to the first '=', ending in a non-space".
_KEY_VALUE = re.compile(rf"^(siesta|ts):\s*+([^=]*[^=\s])\s*=\s*({_FLOAT})\s*$")
_FREE_ENG = re.compile(rf"^siesta:\s*FreeEng\s*=\s*({_FLOAT})")
_ETOT = re.compile(rf"^siesta:\s*Etot\s*=\s*({_FLOAT})")
_VERSION = re.compile(r"^\s*+(?:Siesta\s+)?Version\s*:\s*(\S+)")
_TS_VOLTAGE = re.compile(rf"^\s*+ts:\s*Voltage\s*=\s*({_FLOAT})\s*Volts")
_REDATA = re.compile(rf"^redata:\s*+([^=]*[^=\s])\s*=\s*({_FLOAT}|[TF])\b")
_LABEL = re.compile(r"^\s*+SystemLabel\s+(\S+)", re.IGNORECASE)
_OUTCOOR = re.compile(r"^outcoor:\s*+([^(]*)\(([^)]*)\)\s*:")  # group 1 is stripped
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


def parse_siesta_stdout(lines: Iterable[str]) -> SiestaStdout:
    """Scan the lines once; never raises on odd content (unreadable rows are skipped)."""
    out = SiestaStdout()
    columns = _DEFAULT_COLUMNS
    cycle: ScfCycle | None = None
    geom_step = 0
    block: ForceBlock | None = None
    in_final = False
    coords: CoordBlock | None = None
    cell: list[tuple[float, float, float]] | None = None
    for n, raw in enumerate(lines):
        line = raw.rstrip("\r\n")
        out.lines = n + 1
        # ---- forces block (checked first: its lines would match nothing else anyway)
        if block is not None:
            body = line[7:] if line.startswith("siesta:") else line
            if (m := _FORCE_ATOM.match(body)) is not None:
                block.atoms.append(int(m.group(1)))
                block.forces.append((_to_float(m[2]), _to_float(m[3]), _to_float(m[4])))
                continue
            if (m := _FORCE_TOT.match(body)) is not None:
                block.total = (_to_float(m[1]), _to_float(m[2]), _to_float(m[3]))
                continue
            if (m := _FORCE_MAX.match(body)) is not None:
                if m.group(2):
                    block.max_constrained = _to_float(m[1])
                else:
                    block.max_component = _to_float(m[1])
                continue
            if (m := _FORCE_RES.match(body)) is not None:
                block.residual = _to_float(m[1])
                continue
            if body.strip().startswith("---"):
                continue
            if not body.strip() and not block.forces and block.max_component is None:
                continue  # blank line right after the title (SIESTA 5 "ts:" block)
            block = None
        # ---- coordinates (outcoor) and cell (outcell) blocks
        if coords is not None:
            if (m := _COORD.match(line)) is not None:
                coords.positions.append((_to_float(m[1]), _to_float(m[2]), _to_float(m[3])))
                coords.species.append(m.group(6))
                continue
            if coords.positions:
                out.last_coordinates = coords
            coords = None
        if cell is not None:
            if (m := _VECTOR.match(line)) is not None:
                cell.append((_to_float(m[1]), _to_float(m[2]), _to_float(m[3])))
                if len(cell) == 3:
                    out.last_cell_Ang, cell = cell, None
                continue
            cell = None
        if line.startswith("outcoor:") and (m := _OUTCOOR.match(line)) is not None:
            unit = m.group(2).strip()
            unit = "scaled" if unit.lower().startswith("scaled") else unit
            coords = CoordBlock(title=m.group(1).strip(), unit=unit, geom_step=geom_step)
            if line.startswith("outcoor: Relaxed"):
                out.relaxed = True
            continue
        if line.startswith("outcell: Unit cell vectors (Ang)"):
            cell = []
            continue
        # ---- final energy block
        if in_final:
            if (m := _KEY_VALUE.match(line)) is not None:
                key = m.group(2).strip() if m.group(1) == "siesta" else f"ts {m.group(2).strip()}"
                out.final_energy.setdefault(key, _to_float(m.group(3)))
                continue
            in_final = False
        if line.startswith(("siesta:", "ts:")):
            # Fast path: ~60 % of a relaxation's lines start with "siesta:" (k-points,
            # stress, coordinates); only these few of them matter.
            if "Atomic forces" in line and (m := _FORCES_START.match(line)) is not None:
                block = ForceBlock(source=m.group(1), geom_step=geom_step)
                out.force_blocks.append(block)
            elif line.startswith("siesta: Final energy"):
                in_final = True
            elif "FreeEng" in line and (m := _FREE_ENG.match(line)) is not None:
                out.free_energies.append(_to_float(m.group(1)))
            elif "Etot" in line and (m := _ETOT.match(line)) is not None:
                out.etot.append(_to_float(m.group(1)))
            elif "Begin" in line and (m := _BEGIN.match(line)) is not None:
                geom_step = int(m.group(1))
                out.geom_steps_seen += 1
            elif "Voltage" in line and (m := _TS_VOLTAGE.match(line)) is not None:
                out.ts_voltage = _to_float(m.group(1))
            continue
        first = line.lstrip()[:1]
        if not first or first not in _INTERESTING_FIRST:
            continue
        # ---- SCF rows
        if (m := _SCF_ROW.match(line)) is not None:
            kind, iscf = m.group(1), int(m.group(2))
            try:
                values = parse_scf_values(m.group(3))
            except ValueError:
                continue
            last_iscf = int(cycle.rows[-1][0]) if cycle is not None and cycle.rows else 0
            if cycle is None or cycle.kind != kind or iscf <= last_iscf:
                cycle = ScfCycle(kind=kind, geom_step=geom_step, columns=columns)
                out.cycles.append(cycle)
            cycle.rows.append([float(iscf), *values])
            cycle.converged = False
            continue
        if _HEADER.match(line):
            columns = _columns_from_header(line)
            continue
        if line.startswith("SCF cycle converged") or line.startswith("SCF Convergence by"):
            if cycle is not None:
                cycle.converged = True
            continue
        if line.startswith("SCF_NOT_CONV"):
            out.scf_not_converged = True
            if cycle is not None:
                cycle.converged = False
            continue
        if (m := _BEGIN.match(line)) is not None:
            geom_step = int(m.group(1))
            out.geom_steps_seen += 1
            continue
        if line.startswith("redata:"):
            if (m := _REDATA.match(line)) is not None:
                out.redata.setdefault(m.group(1), m.group(2))
            continue
        if line.startswith("GEOM_NOT_CONV"):
            out.geom_not_converged = True
        elif line.startswith("Job completed"):
            out.job_completed = True
        elif out.version is None and n < 200 and (m := _VERSION.match(line)) is not None:
            out.version = m.group(1)
        elif out.system_label is None and (m := _LABEL.match(line)) is not None:
            out.system_label = m.group(1)
    if coords is not None and coords.positions:
        out.last_coordinates = coords
    return out


def read_siesta_stdout(path: Path) -> SiestaStdout:
    """Parse a stdout file; undecodable bytes become U+FFFD instead of raising."""
    with open(path, encoding="utf-8", errors="replace") as fh:
        return parse_siesta_stdout(fh)
