"""A ``rotation`` variant: rotate atoms of a step's fdf about their centroid (sisl, numpy).

``{"rotation": {"angle": 30, "axis": [0, 0, 1], "atoms": "1-12"}}`` rotates those atoms
(1-based, default all) with ``sisl.Geometry.rotate`` and rewrites the
``AtomicCoordinatesAndAtomicSpecies`` block in Ang (species column and comments kept);
``MD.UseSaveXV false`` is set so a saved XV cannot override the new geometry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hpcgate.codes.siesta.fdf import InputError, normalise_label, set_key, strip_comment

__all__ = ["parse_atom_selection", "rotate"]

_COORD_BLOCK = "atomiccoordinatesandatomicspecies"


def parse_atom_selection(spec: Any, n_atoms: int) -> list[int]:
    """1-based atoms (``"1-12,20"``, ``[1, 2, 3]``, None = all) -> sorted 0-based indices."""
    if spec is None or spec == "all":
        return list(range(n_atoms))
    items: list[int] = []
    if isinstance(spec, str):
        for part in spec.replace(" ", "").split(","):
            if not part:
                continue
            lo, _, hi = part.partition("-")
            try:
                a, b = int(lo), int(hi or lo)
            except ValueError:
                raise InputError(f"atom selection {spec!r}: {part!r} is not N or N-M") from None
            items.extend(range(a, b + 1))
    elif isinstance(spec, Sequence):
        try:
            items = [int(x) for x in spec]
        except (TypeError, ValueError):
            raise InputError(f"atom selection {spec!r} must hold integers") from None
    else:
        raise InputError(f"atom selection {spec!r} must be a string like '1-12' or a list")
    bad = [i for i in items if i < 1 or i > n_atoms]
    if bad or not items:
        raise InputError(f"atom selection {spec!r}: atoms are numbered 1..{n_atoms}")
    return sorted({i - 1 for i in items})


def rotate(fdf: Path, files: Sequence[Path], spec: Mapping[str, Any]) -> dict[str, str]:
    """Rotate atoms of the step's fdf in place; returns the settings it changed."""
    import sisl.io.siesta as siesta_io

    try:
        angle = float(spec["angle"])
    except (KeyError, TypeError, ValueError):
        raise InputError("rotation needs a numeric 'angle' in degrees") from None
    axis = np.asarray(spec.get("axis", (0.0, 0.0, 1.0)), dtype=float)
    if axis.shape != (3,) or not np.linalg.norm(axis) > 0:
        raise InputError(f"rotation axis {spec.get('axis')!r} must be 3 numbers, not all 0")
    sile = siesta_io.fdfSileSiesta(str(fdf))
    try:
        geom = sile.read_geometry(origin=False)
    except Exception as exc:  # e.g. a molecule fdf without LatticeConstant
        raise InputError(
            f"{fdf.name}: cannot read the geometry to rotate ({exc}); "
            "write LatticeConstant and LatticeVectors"
        ) from None
    atoms = parse_atom_selection(spec.get("atoms"), geom.na)
    centre = (
        np.asarray(spec["centre"], dtype=float)
        if "centre" in spec
        else geom.xyz[atoms].mean(axis=0)
    )
    rotated = geom.rotate([angle, axis], origin=centre, atoms=atoms, what="xyz")
    changed: dict[str, str] = {}
    fmt = str(sile.get("AtomicCoordinatesFormat", default="Bohr")).lower()
    origin = sile.get("AtomicCoordinatesOrigin")
    if origin and not isinstance(origin, str) and "ang" not in fmt:
        raise InputError(
            f"{fdf.name}: rotation with a numeric AtomicCoordinatesOrigin in "
            f"{fmt} coordinates is not supported; give the origin in Ang"
        )
    _rewrite_coordinates(files, rotated.xyz)
    for key, value in (("AtomicCoordinatesFormat", "Ang"), ("MD.UseSaveXV", "false")):
        set_key(fdf, files, key, value)
        changed[key] = value
    return changed


def _rewrite_coordinates(files: Sequence[Path], xyz: Any) -> None:
    """Replace x y z of each atom line in the coordinates block, keeping the rest."""
    for path in files:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)
        inside = False
        atom = 0
        for i, line in enumerate(lines):
            words = strip_comment(line).split()
            if not words:
                continue
            if (
                words[0].lower() == "%block"
                and len(words) > 1
                and normalise_label(words[1]) == _COORD_BLOCK
            ):
                if len(words) > 2:
                    raise InputError(
                        f"{path.name}: a redirected coordinates block ('<') "
                        "cannot be rotated; inline the coordinates"
                    )
                inside = True
                continue
            if inside and words[0].lower() == "%endblock":
                if atom < len(xyz):
                    raise InputError(
                        f"{path.name}: the coordinates block has {atom} atoms, "
                        f"the geometry {len(xyz)}"
                    )
                path.write_text("".join(lines), encoding="utf-8")
                return
            if inside and atom < len(xyz):
                rest = line.split(None, 3)[3] if len(line.split(None, 3)) > 3 else "1\n"
                x, y, z = (float(v) for v in xyz[atom])
                lines[i] = f"  {x:16.9f} {y:16.9f} {z:16.9f} {rest}"
                if not lines[i].endswith("\n"):
                    lines[i] += "\n"
                atom += 1
    raise InputError("no AtomicCoordinatesAndAtomicSpecies block to rewrite")
