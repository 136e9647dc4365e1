"""The final geometry of a run (relaxed, or not) and how far atoms moved from the input.

Sources, best first: ``<label>.STRUCT_OUT`` and ``<label>.XV`` (sisl; both carry the
cell and atomic numbers), the last ``outcoor`` block of the stdout (our scanner: sisl's
``read_geometry`` crashes in ``read_basis`` on several real outputs), and last the input
fdf (``source: input``). Species labels in the stdout (``C.pbe``) are mapped to elements
through the fdf's ``ChemicalSpeciesLabel``.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from analyses.base import MAX_POINTS, Analysis, ExtractContext, ExtractionError
from analyses.compute_inputs import ComputeInputs
from analyses.results import AnalysisOutput, Column, JSONDict, Scalar, Table, rounded
from analyses.siesta.files import find_fdf, find_label_file, open_stdout_sile, parsed_stdout
from analyses.siesta.stdout import SiestaStdout

__all__ = ["RelaxedGeometry"]

log = logging.getLogger(__name__)

BOHR_ANG = 0.529177210903
_MAX_ATOM_ROWS = 300


class _Geometry:
    """Cartesian positions (Ang), cell rows (Ang) and element symbols."""

    def __init__(self, xyz: Any, cell: Any, symbols: list[str], source: str) -> None:
        self.xyz = np.asarray(xyz, dtype=float).reshape(-1, 3)
        self.cell = None if cell is None else np.asarray(cell, dtype=float).reshape(3, 3)
        self.symbols = symbols
        self.source = source


def _from_sisl(geom: Any, source: str) -> _Geometry:
    symbols = [geom.atoms[i].symbol for i in range(geom.na)]
    return _Geometry(geom.xyz, geom.lattice.cell, symbols, source)


def _species_map(fdf: Path | None) -> dict[str, str]:
    """``ChemicalSpeciesLabel`` label -> element symbol (by atomic number)."""
    if fdf is None:
        return {}
    text = fdf.read_text(encoding="utf-8", errors="replace")
    block = re.search(
        r"%block\s+ChemicalSpeciesLabel\s*$(.*?)^\s*%endblock", text, re.I | re.M | re.S
    )
    if block is None:
        return {}
    from sisl import Atom

    out: dict[str, str] = {}
    for line in block.group(1).splitlines():
        parts = line.split("#")[0].split()
        if len(parts) >= 3:
            try:
                out[parts[2]] = Atom(abs(int(parts[1])) % 1000).symbol
            except (ValueError, KeyError):
                continue
    return out


def _from_stdout(out: SiestaStdout, species: dict[str, str], name: str) -> _Geometry | None:
    block = out.last_coordinates
    if block is None:
        return None
    xyz = np.asarray(block.positions, dtype=float)
    cell = None if out.last_cell_Ang is None else np.asarray(out.last_cell_Ang, dtype=float)
    unit = block.unit.lower()
    if unit == "bohr":
        xyz = xyz * BOHR_ANG
    elif unit == "fractional":
        if cell is None:
            return None
        xyz = xyz @ cell
    elif unit != "ang":
        return None  # "scaled" needs LatticeConstant: let the next source answer
    symbols = [species.get(s, re.split(r"[._\d]", s)[0] or s) for s in block.species]
    return _Geometry(xyz, cell, symbols, name)


def _read_with_sisl(path: Path) -> _Geometry | None:
    try:
        import sisl

        return _from_sisl(sisl.get_sile(str(path)).read_geometry(), path.name)
    except Exception as exc:  # an unreadable file: try the next source
        log.info("cannot read a geometry from %s: %s", path, exc)
        return None


def _input_geometry(fdf: Path | None) -> _Geometry | None:
    if fdf is None:
        return None
    try:
        import sisl.io.siesta as siesta_io

        return _from_sisl(siesta_io.fdfSileSiesta(str(fdf)).read_geometry(), f"{fdf.name} (input)")
    except Exception as exc:  # e.g. a molecule fdf without LatticeConstant
        log.info("cannot read the input geometry of %s: %s", fdf, exc)
        return None


def _stdout_input_echo(path: Path) -> _Geometry | None:
    """The input coordinates SIESTA echoes in its stdout (sisl), when nothing else exists."""
    try:
        with open_stdout_sile(path) as sile:
            geom = sile.read_geometry(skip_input=False)
    except Exception as exc:  # sisl's stdout geometry reader fails on some builds
        log.info("cannot read the input geometry echoed in %s: %s", path, exc)
        return None
    return None if geom is None else _from_sisl(geom, f"{path.name} (input echo)")


def _displacements(final: _Geometry, initial: _Geometry) -> np.ndarray | None:
    """Per-atom displacement, minimum image when the cell is known."""
    if final.xyz.shape != initial.xyz.shape:
        return None
    delta = final.xyz - initial.xyz
    if final.cell is not None and abs(np.linalg.det(final.cell)) > 1e-9:
        frac = delta @ np.linalg.inv(final.cell)
        delta = (frac - np.round(frac)) @ final.cell
    return np.asarray(np.linalg.norm(delta, axis=1), dtype=float)


def _formula(symbols: list[str]) -> str:
    counts: dict[str, int] = {}
    for s in symbols:
        counts[s] = counts.get(s, 0) + 1
    return "".join(f"{s}{n if n > 1 else ''}" for s, n in sorted(counts.items()))


class RelaxedGeometry(Analysis):
    name: ClassVar[str] = "relaxed_geometry"
    title: ClassVar[str] = "Relaxed geometry"
    codes: ClassVar[frozenset[str]] = frozenset({"siesta"})
    description: ClassVar[str] = (
        "Final cell and coordinates (Ang), whether the relaxation converged, and the "
        "displacement of each atom from the input geometry."
    )

    def extract(self, run_dir: Path, ctx: ExtractContext) -> JSONDict:
        path, out = parsed_stdout(run_dir, ctx)
        fdf = find_fdf(run_dir, ctx)
        final: _Geometry | None = None
        for suffix in (".STRUCT_OUT", ".XV"):
            found = find_label_file(run_dir, ctx, suffix)
            if found is not None and (final := _read_with_sisl(found)) is not None:
                break
        if final is None:
            final = _from_stdout(out, _species_map(fdf), path.name)
        initial = _input_geometry(fdf)
        if final is None:
            final = initial
        if final is None:
            final = _stdout_input_echo(path)
        if final is None:
            raise ExtractionError(
                f"no geometry in {run_dir.name}: no STRUCT_OUT/XV, "
                "no outcoor block and no readable fdf"
            )
        moved = _displacements(final, initial) if initial is not None else None
        na = final.xyz.shape[0]
        keep = min(na, MAX_POINTS)
        volume = float(abs(np.linalg.det(final.cell))) if final.cell is not None else None
        return {
            "source": final.source,
            "relaxed": out.relaxed,
            "geometry_not_converged": out.geom_not_converged,
            "n_atoms": na,
            "formula": _formula(final.symbols),
            "cell_Ang": None if final.cell is None else [rounded(r, 8) for r in final.cell],
            "volume_Ang3": volume,
            "symbols": final.symbols[:keep],
            "positions_Ang": [rounded(r, 8) for r in final.xyz[:keep]],
            "truncated": na > keep,
            "max_displacement_Ang": None if moved is None else float(moved.max(initial=0.0)),
            "rms_displacement_Ang": (
                None
                if moved is None or not moved.size
                else float(math.sqrt(float((moved**2).mean())))
            ),
            "displacements_Ang": None if moved is None else rounded(moved[:keep], 6),
        }

    def compute(self, inputs: ComputeInputs) -> AnalysisOutput:
        found = inputs.steps_with(self.name)
        rows: list[list[Scalar]] = [
            [
                step.index,
                step.display_label,
                d.get("source"),
                d.get("formula"),
                d.get("n_atoms"),
                d.get("relaxed"),
                d.get("volume_Ang3"),
                d.get("max_displacement_Ang"),
                d.get("rms_displacement_Ang"),
            ]
            for step, d in found
        ]
        tables = [
            Table(
                name="geometry",
                title="Final geometry per step",
                columns=(
                    Column("step"),
                    Column("label"),
                    Column("source"),
                    Column("formula"),
                    Column("atoms"),
                    Column("relaxed"),
                    Column("volume", "Ang^3"),
                    Column("max displacement", "Ang"),
                    Column("rms displacement", "Ang"),
                ),
                rows=rows,
            )
        ]
        if len(found) == 1:
            tables.append(_coordinates_table(found[0][1]))
        notes = [
            f"{s.display_label}: relaxation did not converge"
            for s, d in found
            if d.get("geometry_not_converged")
        ]
        return self.output(
            tables=tables,
            summary={
                "steps": len(found),
                "all_relaxed": all(bool(d.get("relaxed")) for _, d in found) if found else None,
            },
            notes=notes,
        )


def _coordinates_table(data: Mapping[str, Any]) -> Table:
    """The final coordinates of a single step, with each atom's displacement."""
    moved = data.get("displacements_Ang") or []
    coords = list(zip(data.get("symbols", []), data.get("positions_Ang", []), strict=False))
    return Table(
        name="coordinates",
        title="Final coordinates",
        columns=(
            Column("atom"),
            Column("species"),
            Column("x", "Ang"),
            Column("y", "Ang"),
            Column("z", "Ang"),
            Column("displacement", "Ang"),
        ),
        rows=[
            [i + 1, sym, *xyz, moved[i] if i < len(moved) else None]
            for i, (sym, xyz) in enumerate(coords[:_MAX_ATOM_ROWS])
        ],
    )
