"""SIESTA inputs for the variants of a chain or sweep, from one base ``.fdf``.

(This lives under ``analyses/`` because ``hpcgate/codes/siesta/inputs.py`` belongs to the
validation side; the plan code calls :func:`generate_inputs` for each calculation.)

For every variant a step directory gets a copy of the base fdf, the files it
``%include``\\ s and the pseudopotentials of its species, then the variant is applied:

* a plain key (``{"TS.Voltage": 0.25}``, ``{"MeshCutoff": "300 Ry"}``) is set with sisl's
  ``fdfSileSiesta.set(key, str(value), keep=False)``. Values are always passed as ``str``:
  sisl 0.20's ``set`` writes a non-``str`` value without its newline and glues the next
  line on (``MaxSCFIterations 7SCF.MustConverge false``). Numbers get a default unit for
  keys that need one (``TS.Voltage`` -> eV). fdf labels ignore case and ``.``/``_``/``-``,
  sisl's ``set`` does not, so an existing line spelled differently (``TS_Voltage``) is
  first respelled: otherwise the old line would stay first, and SIESTA uses the first;
* ``{"rotation": {"angle": 30, "axis": [0, 0, 1], "atoms": "1-12"}}`` rotates those atoms
  (1-based, default all) about their centroid with ``sisl.Geometry.rotate`` and rewrites
  the ``AtomicCoordinatesAndAtomicSpecies`` block in Ang (species column and comments
  kept); ``MD.UseSaveXV false`` is set so a saved XV cannot override the new geometry.

In a **chain** every step after the first continues from its parent: ``DM.UseSaveDM
true`` and, for TranSIESTA, ``TS.DE.Save``/``TS.HS.Save true`` (every step saves, so the
next can start from it). :attr:`GeneratedInput.inherit` names the parent's files to copy
in before the step runs: ``<label>.DM``, and ``<label>.TSDE`` for TranSIESTA (the
non-equilibrium density matrix TranSIESTA restarts from). The parent's ``.TSHS`` is not
inherited: SIESTA rebuilds H from the DM, and a stale TSHS next to a failed step could be
picked up by TBtrans. The step keeps the base ``SystemLabel`` so the inherited names match.

Problems with the base input raise :class:`InputError` with one clear message: fdf
syntax (unbalanced or mismatched ``%block``, missing ``%include``/``<`` files), and
species in ``ChemicalSpeciesLabel`` without a pseudopotential file.
"""

from __future__ import annotations

import math
import re
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hpcgate.errors import InvalidInput

__all__ = [
    "BaseInput",
    "GeneratedInput",
    "InputError",
    "check_base_input",
    "generate_inputs",
    "normalise_label",
    "parse_atom_selection",
]

#: Units added to bare numbers for keys that need one.
DEFAULT_UNITS = {
    "tsvoltage": "eV",
    "meshcutoff": "Ry",
    "electronictemperature": "K",
    "paoenergyshift": "Ry",
    "tselectronictemperature": "K",
}
_PSEUDO_SUFFIXES = (".psf", ".psml")
_BASIS_SUFFIXES = (".ion", ".ion.nc", ".ion.xml")
_COORD_BLOCK = "atomiccoordinatesandatomicspecies"


class InputError(InvalidInput):
    """The base input cannot make valid SIESTA inputs; the message says where and why."""

    code = "invalid_siesta_input"


def normalise_label(label: str) -> str:
    """fdf labels are case-insensitive and ignore ``.``, ``_`` and ``-``."""
    return re.sub(r"[._-]", "", label).lower()


@dataclass(frozen=True, slots=True)
class BaseInput:
    fdf: Path
    label: str
    includes: tuple[Path, ...]
    species: tuple[str, ...]
    pseudopotentials: tuple[Path, ...]
    transiesta: bool
    electrode_files: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class GeneratedInput:
    """One step's input directory and what the job must do around it."""

    index: int
    directory: Path
    fdf: Path
    label: str
    variant: Mapping[str, Any]
    settings: Mapping[str, str] = field(default_factory=dict)
    inherit: tuple[str, ...] = ()
    copied: tuple[str, ...] = ()
    external: tuple[str, ...] = ()


# --------------------------------------------------------------------------- checking


def _strip_comment(line: str) -> str:
    return re.split(r"[#!;]", line, maxsplit=1)[0].strip()


#: What an included file may be called: a plain name of the calculation's own inputs.
_INCLUDE_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,127}")


def _include(path: Path, n: int, raw: str, name: str, known: dict[str, Path]) -> Path:
    """The file ``name`` included at line ``n``, if it is one of the input set's own files.

    Why: the fdf is user text, and an include is a file read on the machine that prepares
    the inputs (the API host) and staged into the job. So only plain names in the same
    directory qualify: no absolute path, no directory, no ``..``, no symbolic link.
    """
    if name in known:  # checked already (a file may redirect many labels to one file)
        return known[name]
    where = f"{path.name}:{n}: {raw.strip()[:200]!r}"
    if not name:
        raise InputError(f"{where}: an include needs a file name")
    if not _INCLUDE_NAME_RE.fullmatch(name) or name in (".", ".."):
        raise InputError(
            f"{where}: include {name[:100]!r} refused: only this calculation's own input "
            "files can be included (a plain file name: no absolute path, directory or '..')"
        )
    target = path.parent / name
    if target.is_symlink():
        raise InputError(f"{where}: include {name!r} refused: it is a symbolic link")
    known[name] = target
    return target


def _check_includes(path: Path, n: int, raw: str, known: dict[str, Path]) -> None:
    """Refuse any include a reader could follow on this line, however it reads comments.

    SIESTA ends a line at ``#``, ``!`` or ``;``; sisl (which reads the fdf here) only at
    ``#``. So the line up to ``#`` is checked: every ``%include`` and ``<`` it holds.
    """
    view = raw.split("#", 1)[0]
    words = view.split(maxsplit=1)
    if words and words[0].lower() == "%include":
        _include(path, n, raw, words[1].strip() if len(words) > 1 else "", known)
    if "<" in view:
        if view.count("<") > 1:
            raise InputError(f"{path.name}:{n}: {raw.strip()[:200]!r}: more than one '<'")
        _include(path, n, raw, view.split("<", 1)[1].strip(), known)


def _scan_syntax(
    path: Path, text: str, included_once: dict[Path, str] | None = None
) -> tuple[list[Path], dict[str, list[str]]]:
    """Check %block structure; return included/redirected files and the blocks' lines.

    ``included_once`` (the files ``%include``\\ d so far, and where) refuses a second
    ``%include`` of a file: a reader follows every one, so repeats nest exponentially (a
    includes b twice, b includes c twice...) and a file that includes itself never ends.
    """
    included_once = {} if included_once is None else included_once
    known: dict[str, Path] = {}
    included: list[Path] = []
    blocks: dict[str, list[str]] = {}
    current: str | None = None
    start = 0
    for n, raw in enumerate(text.splitlines(), start=1):
        _check_includes(path, n, raw, known)
        line = _strip_comment(raw)
        if not line:
            continue
        words = line.split()
        head = words[0].lower()
        if head == "%block":
            if current is not None:
                raise InputError(f"{path.name}:{n}: %block inside the block opened at line {start}")
            if len(words) < 2:
                raise InputError(f"{path.name}:{n}: %block without a name")
            current, start = normalise_label(words[1]), n
            blocks.setdefault(current, [])
            if len(words) >= 4 and words[2] == "<":
                included.append(_include(path, n, raw, words[3], known))
                current = None  # a redirected block has no body and no %endblock
            continue
        if head == "%endblock":
            if current is None:
                raise InputError(f"{path.name}:{n}: %endblock without an open %block")
            if len(words) >= 2 and normalise_label(words[1]) != current:
                raise InputError(
                    f"{path.name}:{n}: %endblock {words[1]} closes the block opened at line {start}"
                )
            current = None
            continue
        if current is not None:
            blocks[current].append(line)
            continue
        if head == "%include":
            if len(words) < 2:
                raise InputError(f"{path.name}:{n}: %include without a file name")
            target = _include(path, n, raw, words[1], known)
            if target in included_once or target == path:
                first = included_once.get(target, "the file itself")
                raise InputError(
                    f"{path.name}:{n}: {raw.strip()[:200]!r}: {target.name} is already "
                    f"included ({first}); each file may be included once"
                )
            included_once[target] = f"{path.name}:{n}"
            included.append(target)
        elif len(words) >= 3 and words[1] == "<":
            included.append(_include(path, n, raw, words[2], known))
        elif head.startswith("%"):
            raise InputError(f"{path.name}:{n}: unknown directive {words[0]}")
    if current is not None:
        raise InputError(f"{path.name}:{start}: %block is never closed (no %endblock)")
    return included, blocks


def _all_files(fdf: Path) -> tuple[list[Path], dict[str, list[str]]]:
    """The fdf and every file it includes (recursively), with all blocks merged."""
    seen: list[Path] = []
    blocks: dict[str, list[str]] = {}
    included_once: dict[Path, str] = {fdf: "the main input"}
    todo = [fdf]
    while todo:
        path = todo.pop(0)
        if path in seen:
            continue
        if not path.is_file():
            raise InputError(f"{path.name}: included by the input but not found in {path.parent}")
        seen.append(path)
        included, found = _scan_syntax(
            path, path.read_text(encoding="utf-8", errors="replace"), included_once
        )
        for key, lines in found.items():
            blocks.setdefault(key, lines)
        todo.extend(included)
    return seen, blocks


def _species(blocks: dict[str, list[str]], fdf: Path) -> list[tuple[str, int]]:
    lines = blocks.get("chemicalspecieslabel")
    if not lines:
        raise InputError(f"{fdf.name}: no ChemicalSpeciesLabel block")
    out: list[tuple[str, int]] = []
    for line in lines:
        parts = line.split()
        if len(parts) < 3:
            raise InputError(
                f"{fdf.name}: ChemicalSpeciesLabel line {line!r} needs 'index Z label'"
            )
        if not _INCLUDE_NAME_RE.fullmatch(parts[2]):  # it names a pseudopotential file
            raise InputError(
                f"{fdf.name}: ChemicalSpeciesLabel line {line!r}: the label must be a plain "
                "name (letters, digits, '_', '.', '+', '-'), as it names the species' files"
            )
        try:
            out.append((parts[2], int(parts[1])))
        except ValueError:
            raise InputError(
                f"{fdf.name}: ChemicalSpeciesLabel line {line!r}: Z is not an integer"
            ) from None
    return out


def _find_pseudo(label: str, dirs: Sequence[Path], suffixes: Iterable[str]) -> Path | None:
    for directory in dirs:
        for suffix in suffixes:
            candidate = directory / f"{label}{suffix}"
            if candidate.is_file():
                return candidate
    return None


def check_base_input(base_fdf: Path, *, pseudo_dirs: Sequence[Path] = ()) -> BaseInput:
    """Validate the base input and find its files; raises :class:`InputError`."""
    base_fdf = Path(base_fdf)
    if base_fdf.is_symlink() or not base_fdf.is_file():
        raise InputError(f"base input {base_fdf.name} does not exist or is a symbolic link")
    files, blocks = _all_files(base_fdf)
    import sisl.io.siesta as siesta_io

    try:
        sile = siesta_io.fdfSileSiesta(str(base_fdf))
        label = str(sile.get("SystemLabel", default="siesta"))
        solution = str(sile.get("SolutionMethod", default="diagon"))
        user_basis = bool(sile.get("User.Basis", default=False))
    except Exception as exc:  # sisl's parse errors are varied; one line for the user
        raise InputError(f"{base_fdf.name}: cannot be parsed as fdf ({exc})") from None
    dirs = [base_fdf.parent, *map(Path, pseudo_dirs)]
    pseudos: list[Path] = []
    missing: list[str] = []
    species = _species(blocks, base_fdf)
    for name, z in species:
        if z <= 0 or z > 200:  # ghosts (Z<0) and synthetic/floating (Z>200) use other files
            found = _find_pseudo(name, dirs, (*_PSEUDO_SUFFIXES, *_BASIS_SUFFIXES))
            if found is not None:
                pseudos.append(found)
            continue
        found = _find_pseudo(name, dirs, _BASIS_SUFFIXES if user_basis else _PSEUDO_SUFFIXES)
        if found is None:
            wanted = _BASIS_SUFFIXES if user_basis else _PSEUDO_SUFFIXES
            missing.append(f"{name} ({' or '.join(name + s for s in wanted)})")
        else:
            pseudos.append(found)
    if missing:
        # The fdf's own directory is the calculation's input set (on the API host a private
        # temporary directory whose path means nothing to the user): name it as such.
        where = ["the input files", *(str(d) for d in dirs[1:])]
        raise InputError(
            f"{base_fdf.name}: no pseudopotential file for species {', '.join(missing)} "
            f"among {', '.join(where)}"
        )
    electrodes: list[str] = []
    for key, lines in blocks.items():
        if key.startswith("tselec") and key != "tselecs":
            for line in lines:
                parts = line.split()
                if len(parts) >= 2 and parts[0].lower() in ("tshs", "hs", "hs-file"):
                    electrodes.append(parts[1])
    return BaseInput(
        fdf=base_fdf,
        label=label,
        includes=tuple(files[1:]),
        species=tuple(n for n, _ in species),
        pseudopotentials=tuple(pseudos),
        transiesta="transiesta" in solution.lower(),
        electrode_files=tuple(dict.fromkeys(electrodes)),
    )


# --------------------------------------------------------------------------- variants


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


def _format_value(key: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise InputError(f"{key}: {value} is not a finite number")
        unit = DEFAULT_UNITS.get(normalise_label(key))
        return f"{value!r} {unit}" if unit else repr(value)
    if isinstance(value, str) and value.strip() and "\n" not in value:
        return value.strip()
    raise InputError(f"{key}: value {value!r} must be a number, a boolean or a one-line string")


def _respell(files: Sequence[Path], key: str) -> None:
    """Rewrite existing lines whose label matches ``key`` (fdf rules) to ``key``'s spelling."""
    target = normalise_label(key)
    for path in files:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)
        changed = False
        depth = 0
        for i, line in enumerate(lines):
            words = _strip_comment(line).split()
            if not words:
                continue
            low = words[0].lower()
            if low == "%block":
                depth += 1
            elif low == "%endblock":
                depth = max(0, depth - 1)
            elif depth == 0 and words[0] != key and normalise_label(words[0]) == target:
                lines[i] = line.replace(words[0], key, 1)
                changed = True
        if changed:
            path.write_text("".join(lines), encoding="utf-8")


def _set(fdf: Path, files: Sequence[Path], key: str, value: str) -> None:
    import sisl.io.siesta as siesta_io

    _respell(files, key)
    _end_with_newline(fdf)  # sisl appends a new key right after the last byte
    siesta_io.fdfSileSiesta(str(fdf)).set(key, value, keep=False)  # value is always a str
    _end_with_newline(fdf)


def _end_with_newline(path: Path) -> None:
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        path.write_bytes(data + b"\n")


def _rotate(fdf: Path, files: Sequence[Path], spec: Mapping[str, Any]) -> dict[str, str]:
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
        _set(fdf, files, key, value)
        changed[key] = value
    return changed


def _rewrite_coordinates(files: Sequence[Path], xyz: Any) -> None:
    """Replace x y z of each atom line in the coordinates block, keeping the rest."""
    for path in files:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)
        inside = False
        atom = 0
        for i, line in enumerate(lines):
            words = _strip_comment(line).split()
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


def _copy_inputs(base: BaseInput, directory: Path) -> tuple[Path, list[Path], list[str]]:
    directory.mkdir(parents=True, exist_ok=True)
    root = base.fdf.parent
    fdf = directory / base.fdf.name
    shutil.copyfile(base.fdf, fdf)
    files = [fdf]
    copied = [base.fdf.name]
    for inc in base.includes:
        rel = inc.relative_to(root) if inc.is_relative_to(root) else Path(inc.name)
        target = directory / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(inc, target)
        files.append(target)
        copied.append(str(rel))
    for pseudo in base.pseudopotentials:
        shutil.copyfile(pseudo, directory / pseudo.name)
        copied.append(pseudo.name)
    return fdf, files, copied


def generate_inputs(
    base_fdf: Path,
    variants: Sequence[Mapping[str, Any]],
    out_dir: Path,
    *,
    chain: bool = True,
    pseudo_dirs: Sequence[Path] = (),
) -> list[GeneratedInput]:
    """Write ``out_dir/step-NNN/`` for each variant; returns what each step needs.

    ``chain`` makes each step after the first restart from its parent's density matrix;
    a sweep (``chain=False``) has independent steps.
    """
    base = check_base_input(Path(base_fdf), pseudo_dirs=pseudo_dirs)
    if not variants:
        raise InputError("no variants: a chain or sweep needs at least one")
    out: list[GeneratedInput] = []
    for index, variant in enumerate(variants):
        directory = Path(out_dir) / f"step-{index:03d}"
        fdf, files, copied = _copy_inputs(base, directory)
        settings: dict[str, str] = {}
        for key, value in variant.items():
            if key == "rotation":
                if not isinstance(value, Mapping):
                    raise InputError("rotation must be a mapping with 'angle', 'axis', 'atoms'")
                settings |= _rotate(fdf, files, value)
                continue
            if not re.fullmatch(r"[A-Za-z][\w.\-]*", key):
                raise InputError(f"{key!r} is not an fdf label")
            text = _format_value(key, value)
            _set(fdf, files, key, text)
            settings[key] = text
        saves: list[tuple[str, str]] = []
        if base.transiesta:
            saves += [("TS.DE.Save", "true"), ("TS.HS.Save", "true")]
        if chain and index > 0:
            saves.append(("DM.UseSaveDM", "true"))
        for key, text in saves:
            if normalise_label(key) not in {normalise_label(k) for k in settings}:
                _set(fdf, files, key, text)
                settings[key] = text
        inherit: tuple[str, ...] = ()
        if chain and index > 0:
            inherit = (f"{base.label}.DM",) + ((f"{base.label}.TSDE",) if base.transiesta else ())
        out.append(
            GeneratedInput(
                index=index,
                directory=directory,
                fdf=fdf,
                label=base.label,
                variant=dict(variant),
                settings=settings,
                inherit=inherit,
                copied=tuple(copied),
                external=base.electrode_files,
            )
        )
    return out
