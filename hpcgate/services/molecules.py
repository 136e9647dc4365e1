"""Molecules: register from an xyz or fdf geometry, list their calculations, compare results."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hpcgate.db.models import AnalysisResult, Calculation, Molecule
from hpcgate.errors import Conflict, InvalidInput, NotFound

MAX_ATOMS = 20000
_SYMBOL = re.compile(r"^[A-Z][a-z]?$")


def parse_xyz(text: str) -> list[dict[str, Any]]:
    """Standard xyz: atom count, comment line, then ``symbol x y z`` per atom (Å)."""
    lines = [ln for ln in text.strip().splitlines()]
    if len(lines) < 3:
        raise InvalidInput("xyz: expected a count line, a comment line and atoms")
    try:
        count = int(lines[0].split()[0])
    except (ValueError, IndexError):
        raise InvalidInput("xyz: the first line must be the number of atoms") from None
    if not 0 < count <= MAX_ATOMS:
        raise InvalidInput(f"xyz: the atom count must be between 1 and {MAX_ATOMS}")
    body = lines[2 : 2 + count]
    if len(body) != count:
        raise InvalidInput(f"xyz: {count} atoms announced, {len(body)} lines found")
    atoms = []
    for n, line in enumerate(body, start=3):
        parts = line.split()
        if len(parts) < 4 or not _SYMBOL.match(parts[0]):
            raise InvalidInput(f"xyz line {n}: expected 'Symbol x y z'")
        try:
            xyz = [float(p) for p in parts[1:4]]
        except ValueError:
            raise InvalidInput(f"xyz line {n}: coordinates must be numbers") from None
        atoms.append({"symbol": parts[0], "xyz": xyz})
    return atoms


def parse_fdf(text: str) -> list[dict[str, Any]]:
    """The species and coordinates blocks of an fdf (Å or Bohr; scaled units refused)."""
    blocks, unit = _fdf_blocks(text)
    species = {}
    for line in blocks.get("chemicalspecieslabel", []):
        parts = line.split()
        if len(parts) >= 3:
            species[parts[0]] = parts[2]
    coords = blocks.get("atomiccoordinatesandatomicspecies")
    if not coords:
        raise InvalidInput("fdf: no AtomicCoordinatesAndAtomicSpecies block")
    scale = {
        "ang": 1.0,
        "angstrom": 1.0,
        "notscaledcartesianang": 1.0,
        "bohr": 0.529177210903,
        "notscaledcartesianbohr": 0.529177210903,
    }.get(unit)
    if scale is None:
        raise InvalidInput(
            f"fdf: AtomicCoordinatesFormat {unit!r} is not supported (use Ang or Bohr)"
        )
    atoms = []
    for line in coords:
        parts = line.split()
        if len(parts) < 4:
            continue
        try:
            xyz = [float(p) * scale for p in parts[:3]]
        except ValueError:
            raise InvalidInput(f"fdf: bad coordinate line {line!r}") from None
        symbol = species.get(parts[3])
        if symbol is None or not _SYMBOL.match(symbol):
            raise InvalidInput(f"fdf: species {parts[3]} is not in ChemicalSpeciesLabel")
        atoms.append({"symbol": symbol, "xyz": xyz})
    if not atoms or len(atoms) > MAX_ATOMS:
        raise InvalidInput("fdf: no atoms (or too many) in the coordinates block")
    return atoms


def _fdf_blocks(text: str) -> tuple[dict[str, list[str]], str]:
    """One pass over the lines (linear in the text): the blocks, and the coordinates unit.

    A molecule is one self-contained text: an include (``%include``, ``<``) would name a
    file that is not there, so it is refused with its line rather than silently ignored.
    """
    blocks: dict[str, list[str]] = {}
    current: str | None = None
    unit: str | None = None
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        low = line.lower()
        if low.startswith("%include") or "<" in line:
            raise InvalidInput(
                f"fdf line {n}: {raw.strip()[:200]!r}: includes are not supported for a "
                "molecule; paste the geometry into one fdf"
            )
        if low.startswith("%block"):
            current = re.sub(r"[._-]", "", low.split(None, 1)[1]) if len(low.split()) > 1 else ""
            blocks[current] = []
        elif low.startswith("%endblock"):
            current = None
        elif current is not None and line:
            blocks[current].append(line)
        elif unit is None and current is None:
            words = low.split()
            if len(words) >= 2 and words[0] == "atomiccoordinatesformat":
                unit = words[1]
    return blocks, unit or "bohr"


def formula(atoms: list[dict[str, Any]]) -> str:
    counts = Counter(a["symbol"] for a in atoms)
    order = (
        sorted(counts, key=lambda s: (s != "C", s != "H", s)) if "C" in counts else sorted(counts)
    )
    return "".join(f"{s}{counts[s] if counts[s] > 1 else ''}" for s in order)


def create_molecule(s: Session, *, name: str, fmt: str, text: str, owner_id: int) -> Molecule:
    name = name.strip()
    if not name or len(name) > 200:
        raise InvalidInput("name must be 1 to 200 characters")
    if fmt == "xyz":
        atoms = parse_xyz(text)
    elif fmt == "fdf":
        atoms = parse_fdf(text)
    else:
        raise InvalidInput("format must be xyz or fdf")
    if s.scalar(select(func.count()).select_from(Molecule).where(Molecule.name == name)):
        raise Conflict(f"a molecule named {name!r} already exists")
    molecule = Molecule(
        name=name,
        formula=formula(atoms),
        owner_id=owner_id,
        geometry={"format": fmt, "text": text, "atoms": atoms},
    )
    s.add(molecule)
    s.flush()
    return molecule


def get_molecule(s: Session, molecule_id: int) -> Molecule:
    molecule = s.get(Molecule, molecule_id)
    if molecule is None:
        raise NotFound(f"molecule {molecule_id} does not exist")
    return molecule


def list_with_counts(s: Session, *, limit: int, offset: int) -> list[tuple[Molecule, int]]:
    """Molecules by name, each with the number of calculations that use it."""
    counts = dict(
        s.execute(
            select(Calculation.molecule_id, func.count())
            .where(Calculation.molecule_id.is_not(None))
            .group_by(Calculation.molecule_id)
        ).all()
    )
    rows = s.scalars(select(Molecule).order_by(Molecule.name).limit(limit).offset(offset))
    return [(m, int(counts.get(m.id, 0))) for m in rows]


def calculation_count(s: Session, molecule_id: int) -> int:
    count = s.scalar(
        select(func.count()).select_from(Calculation).where(Calculation.molecule_id == molecule_id)
    )
    return int(count or 0)


def compare(s: Session, molecule_id: int, analysis: str) -> list[dict[str, Any]]:
    """The same analysis across the molecule's calculations, side by side."""
    get_molecule(s, molecule_id)
    rows = s.execute(
        select(Calculation, AnalysisResult)
        .join(AnalysisResult, AnalysisResult.calculation_id == Calculation.id)
        .where(Calculation.molecule_id == molecule_id, AnalysisResult.analysis == analysis)
        .order_by(Calculation.created_at)
    ).all()
    return [
        {
            "calculation_id": calc.id,
            "name": calc.name,
            "state": calc.state.value,
            "kind": (calc.configuration or {}).get("kind", "single"),
            "variants": [
                v.get("parameters", {}) for v in (calc.configuration or {}).get("variants", [])
            ],
            "status": result.status,
            "output": result.data,
        }
        for calc, result in rows
    ]
