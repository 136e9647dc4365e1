"""SIESTA inputs for the variants of a chain or sweep, from one base ``.fdf``.

For every variant a step directory gets a copy of the base fdf, the files it
``%include``\\ s and the pseudopotentials of its species, then the variant is applied:

* a plain key (``{"TS.Voltage": 0.25}``, ``{"MeshCutoff": "300 Ry"}``) is set with sisl's
  ``fdfSileSiesta.set(key, str(value), keep=False)``. Values are always passed as ``str``:
  sisl 0.20's ``set`` writes a non-``str`` value without its newline and glues the next
  line on (``MaxSCFIterations 7SCF.MustConverge false``). Numbers get a default unit for
  keys that need one (``TS.Voltage`` -> eV). fdf labels ignore case and ``.``/``_``/``-``,
  sisl's ``set`` does not, so an existing line spelled differently (``TS_Voltage``) is
  first respelled: otherwise the old line would stay first, and SIESTA uses the first;
* ``{"rotation": {...}}`` rotates atoms (:mod:`hpcgate.codes.siesta.rotation`).

In a **chain** every step after the first continues from its parent: ``DM.UseSaveDM
true`` and, for TranSIESTA, ``TS.DE.Save``/``TS.HS.Save true`` (every step saves, so the
next can start from it). :attr:`GeneratedInput.inherit` names the parent's files to copy
in before the step runs: ``<label>.DM``, and ``<label>.TSDE`` for TranSIESTA (the
non-equilibrium density matrix TranSIESTA restarts from). The parent's ``.TSHS`` is not
inherited: SIESTA rebuilds H from the DM, and a stale TSHS next to a failed step could be
picked up by TBtrans. The step keeps the base ``SystemLabel`` so the inherited names match.

Problems with the base input raise :class:`~hpcgate.codes.siesta.fdf.InputError` with one
clear message: fdf syntax (unbalanced or mismatched ``%block``, missing ``%include``/``<``
files: :mod:`hpcgate.codes.siesta.fdf`), and species in ``ChemicalSpeciesLabel`` without a
pseudopotential file.
"""

from __future__ import annotations

import math
import re
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hpcgate.codes.siesta.fdf import PLAIN_NAME_RE, InputError, normalise_label, read_tree, set_key
from hpcgate.codes.siesta.rotation import rotate

__all__ = ["BaseInput", "GeneratedInput", "check_base_input", "generate_inputs"]

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
        if not PLAIN_NAME_RE.fullmatch(parts[2]):  # it names a pseudopotential file
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
    files, blocks = read_tree(base_fdf)
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
                settings |= rotate(fdf, files, value)
                continue
            if not re.fullmatch(r"[A-Za-z][\w.\-]*", key):
                raise InputError(f"{key!r} is not an fdf label")
            text = _format_value(key, value)
            set_key(fdf, files, key, text)
            settings[key] = text
        saves: list[tuple[str, str]] = []
        if base.transiesta:
            saves += [("TS.DE.Save", "true"), ("TS.HS.Save", "true")]
        if chain and index > 0:
            saves.append(("DM.UseSaveDM", "true"))
        for key, text in saves:
            if normalise_label(key) not in {normalise_label(k) for k in settings}:
                set_key(fdf, files, key, text)
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
