"""Descriptors of a Quantum ESPRESSO ``pw.x`` SCF input - standard library only.

The same module runs in three places, so a feature means the same thing everywhere:

* ``generate_data.py`` (on the host) describes each pw.x input it runs;
* ``train.py`` (on the host) turns those descriptors into the model's feature vector;
* ``server.py`` (inside the model image, no numpy) describes the inputs researchers send.

``describe(text)`` parses the namelists and cards of a pw.x input and returns the raw
descriptors (``DESCRIPTORS``); ``vectorize(desc)`` returns the model features
(``FEATURES``), with pw.x's own defaults filled in for what the input does not say.
"""

from __future__ import annotations

import math
import re
from typing import Any

__all__ = ["DESCRIPTORS", "FEATURES", "InputError", "describe", "vectorize"]

# Raw descriptors, as read from an input (or sent directly by a client).
DESCRIPTORS = (
    "n_atoms",
    "n_species",
    "n_kpoints",
    "ecutwfc",
    "dual",
    "spin_polarized",
    "smearing",
    "degauss",
    "mixing_beta",
    "mixing_mode",
    "electron_maxstep",
    "conv_thr",
    "volume_per_atom",
    "transition_metal",
)

# Model features (what the exported coefficients multiply), in order.
FEATURES = (
    "log_n_atoms",
    "n_species",
    "log_n_kpoints",
    "ecutwfc",
    "dual",
    "spin_polarized",
    "smearing",
    "log_degauss",
    "mixing_beta",
    "mixing_beta_sq",
    "local_tf",
    "log_maxstep",
    "neg_log10_conv_thr",
    "log_volume_per_atom",
    "transition_metal",
    "metal_x_beta",
    "spin_x_beta",
)

# pw.x defaults (PW/Doc/INPUT_PW) for what an input may leave out.
DEFAULTS: dict[str, Any] = {
    "n_species": 1,
    "n_kpoints": 1,
    "dual": 4.0,
    "spin_polarized": 0,
    "smearing": 0,
    "degauss": 0.0,
    "mixing_beta": 0.7,
    "mixing_mode": "plain",
    "electron_maxstep": 100,
    "conv_thr": 1e-6,
    "volume_per_atom": 100.0,
    "transition_metal": 0,
}

# 3d/4d/5d transition metals: their d states make SCF mixing harder.
TRANSITION_METALS = frozenset(
    [
        "Sc",
        "Ti",
        "V",
        "Cr",
        "Mn",
        "Fe",
        "Co",
        "Ni",
        "Cu",
        "Zn",
        "Y",
        "Zr",
        "Nb",
        "Mo",
        "Tc",
        "Ru",
        "Rh",
        "Pd",
        "Ag",
        "Cd",
        "Hf",
        "Ta",
        "W",
        "Re",
        "Os",
        "Ir",
        "Pt",
        "Au",
        "Hg",
    ]
)

_NAMELIST_START = re.compile(r"(?im)^[ \t]*&(\w+)")
_ASSIGN = re.compile(
    r"""([A-Za-z_][A-Za-z0-9_]*(?:\(\s*\d+(?:\s*,\s*\d+)*\s*\))?)\s*=\s*
        ('[^']*'|"[^"]*"|[^,\s/]+)""",
    re.VERBOSE,
)
_CARD = re.compile(
    r"(?im)^[ \t]*(ATOMIC_SPECIES|ATOMIC_POSITIONS|K_POINTS|CELL_PARAMETERS|"
    r"OCCUPATIONS|CONSTRAINTS|ATOMIC_FORCES|ADDITIONAL_K_POINTS|SOLVENTS|HUBBARD)\b([^\n]*)$"
)
BOHR_ANG = 0.529177210903


class InputError(ValueError):
    """The text is not a pw.x input we can describe."""


def _value(raw: str) -> Any:
    raw = raw.strip()
    if raw[:1] in "'\"":
        return raw[1:-1].strip()
    low = raw.lower()
    if low in (".true.", ".t.", "true", "t"):
        return True
    if low in (".false.", ".f.", "false", "f"):
        return False
    try:
        return int(raw)
    except ValueError:
        pass
    try:
        return float(low.replace("d", "e"))
    except ValueError:
        return raw


def _namelist_spans(text: str) -> list[tuple[str, str, int, int]]:
    """``(name, body, start, end)`` of each ``&name ... /`` block; a ``/`` inside quotes
    (``pseudo_dir='/usr/share/...'``) or after ``!`` does not close it."""
    spans: list[tuple[str, str, int, int]] = []
    for m in _NAMELIST_START.finditer(text):
        if spans and m.start() < spans[-1][3]:
            continue
        i, quote = m.end(), ""
        body: list[str] = []
        while i < len(text):
            ch = text[i]
            if quote:
                quote = "" if ch == quote else quote
            elif ch in "'\"":
                quote = ch
            elif ch == "!":
                nl = text.find("\n", i)
                i = len(text) if nl < 0 else nl
                continue
            elif ch == "/":
                spans.append((m.group(1).lower(), "".join(body), m.start(), i + 1))
                break
            body.append(ch)
            i += 1
    return spans


def parse_namelists(text: str) -> dict[str, dict[str, Any]]:
    """``{"system": {"ecutwfc": 25.0, "celldm(1)": 10.2, ...}, ...}`` (names lower-cased)."""
    out: dict[str, dict[str, Any]] = {}
    for name, body, _, _ in _namelist_spans(text):
        values = out.setdefault(name, {})
        for a in _ASSIGN.finditer(body):
            values[re.sub(r"\s+", "", a.group(1).lower())] = _value(a.group(2))
    return out


def _cards(text: str) -> dict[str, tuple[str, list[list[str]]]]:
    """Card name -> (option, rows of whitespace-split tokens up to the next card/namelist)."""
    body: list[str] = []
    last = 0
    for _, _, start, end in _namelist_spans(text):
        body.append(text[last:start])
        last = end
    body.append(text[last:])
    rest = "".join(body)
    found = list(_CARD.finditer(rest))
    out: dict[str, tuple[str, list[list[str]]]] = {}
    for i, m in enumerate(found):
        end = found[i + 1].start() if i + 1 < len(found) else len(rest)
        rows = [
            line.split("!", 1)[0].split()
            for line in rest[m.end() : end].splitlines()
            if line.split("!", 1)[0].strip() and not line.strip().startswith("#")
        ]
        option = m.group(2).strip().strip("{}()").strip().lower()
        out[m.group(1).upper()] = (option, rows)
    return out


def _num(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError(f"{what} must be a number, got {value!r}")
    return float(value)


def _cell_volume_bohr3(system: dict[str, Any], cards: dict[str, Any]) -> float | None:
    """Cell volume for the lattices the training data uses (ibrav 0, 1, 2, 3), else None."""
    ibrav = system.get("ibrav")
    alat = system.get("celldm(1)")
    if alat is None and isinstance(system.get("a"), int | float):
        alat = float(system["a"]) / BOHR_ANG
    if ibrav in (1, 2, 3) and isinstance(alat, int | float) and alat > 0:
        return float(alat) ** 3 * {1: 1.0, 2: 0.25, 3: 0.5}[int(ibrav)]
    if ibrav == 0 and "CELL_PARAMETERS" in cards:
        option, rows = cards["CELL_PARAMETERS"]
        try:
            v = [[float(x.lower().replace("d", "e")) for x in r[:3]] for r in rows[:3]]
        except ValueError:
            return None
        if len(v) != 3 or any(len(r) != 3 for r in v):
            return None
        det = abs(
            v[0][0] * (v[1][1] * v[2][2] - v[1][2] * v[2][1])
            - v[0][1] * (v[1][0] * v[2][2] - v[1][2] * v[2][0])
            + v[0][2] * (v[1][0] * v[2][1] - v[1][1] * v[2][0])
        )
        if option.startswith("angstrom"):
            return det / BOHR_ANG**3
        if option.startswith("alat"):
            return det * float(alat) ** 3 if isinstance(alat, int | float) else None
        return det  # bohr (the default)
    return None


def describe(text: str) -> dict[str, Any]:
    """The raw descriptors of a pw.x input; ``InputError`` when it is not one."""
    if not isinstance(text, str) or len(text) > 4 << 20:
        raise InputError("a pw.x input must be text of at most 4 MiB")
    nls = parse_namelists(text)
    system = nls.get("system")
    if system is None:
        raise InputError("not a pw.x input: no &system namelist")
    electrons = nls.get("electrons", {})
    cards = _cards(text)
    if "nat" not in system or "ecutwfc" not in system:
        raise InputError("&system must set nat and ecutwfc")
    nat = int(_num(system["nat"], "nat"))
    ecut = _num(system["ecutwfc"], "ecutwfc")
    if nat < 1 or ecut <= 0:
        raise InputError("nat and ecutwfc must be positive")
    dual = _num(system.get("ecutrho", 4.0 * ecut), "ecutrho") / ecut
    kpts = 1
    if "K_POINTS" in cards:
        option, rows = cards["K_POINTS"]
        if option.startswith("automatic") and rows:
            try:
                kpts = max(1, math.prod(int(x) for x in rows[0][:3]))
            except ValueError as exc:
                raise InputError("K_POINTS automatic needs three integers") from exc
        elif not option.startswith("gamma") and rows:
            try:
                kpts = max(1, int(rows[0][0]))
            except ValueError as exc:
                raise InputError("K_POINTS must start with the number of points") from exc
    species = []
    if "ATOMIC_SPECIES" in cards:
        species = [r[0] for r in cards["ATOMIC_SPECIES"][1] if r]
    symbols = {re.sub(r"[^A-Za-z].*$", "", s).capitalize() for s in species}
    occupations = str(system.get("occupations", "fixed")).lower()
    volume = _cell_volume_bohr3(system, cards)
    return {
        "n_atoms": nat,
        "n_species": int(_num(system.get("ntyp", len(species) or 1), "ntyp")),
        "n_kpoints": kpts,
        "ecutwfc": ecut,
        "dual": dual,
        "spin_polarized": int(system.get("nspin", 1) == 2 or bool(system.get("noncolin", False))),
        "smearing": int(occupations == "smearing"),
        "degauss": _num(system.get("degauss", 0.0), "degauss")
        if occupations == "smearing"
        else 0.0,
        "mixing_beta": _num(electrons.get("mixing_beta", 0.7), "mixing_beta"),
        "mixing_mode": str(electrons.get("mixing_mode", "plain")).lower(),
        "electron_maxstep": int(_num(electrons.get("electron_maxstep", 100), "electron_maxstep")),
        "conv_thr": _num(electrons.get("conv_thr", 1e-6), "conv_thr"),
        "volume_per_atom": None if volume is None else volume / nat,
        "transition_metal": int(bool(symbols & TRANSITION_METALS)),
    }


def _get(desc: dict[str, Any], key: str) -> Any:
    value = desc.get(key)
    if value is None:
        if key not in DEFAULTS:
            raise InputError(f"missing descriptor {key!r}")
        return DEFAULTS[key]
    return value


def _pos(desc: dict[str, Any], key: str, floor: float) -> float:
    value = _get(desc, key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InputError(f"descriptor {key!r} must be a finite number, got {value!r}")
    return max(float(value), floor)


def vectorize(desc: dict[str, Any]) -> list[float]:
    """The model's feature vector (``FEATURES`` order) from raw descriptors."""
    beta = _pos(desc, "mixing_beta", 1e-3)
    smearing = 1.0 if _get(desc, "smearing") else 0.0
    spin = 1.0 if _get(desc, "spin_polarized") else 0.0
    metal = 1.0 if _get(desc, "transition_metal") else 0.0
    degauss = _pos(desc, "degauss", 0.0) if smearing else 0.0
    mode = str(_get(desc, "mixing_mode")).lower()
    features = {
        "log_n_atoms": math.log(_pos(desc, "n_atoms", 1)),
        "n_species": _pos(desc, "n_species", 1),
        "log_n_kpoints": math.log(_pos(desc, "n_kpoints", 1)),
        "ecutwfc": _pos(desc, "ecutwfc", 1.0),
        "dual": _pos(desc, "dual", 1.0),
        "spin_polarized": spin,
        "smearing": smearing,
        # insulators (no smearing) sit at log(1e-4): "sharper than any smearing we saw"
        "log_degauss": math.log(max(degauss, 1e-4)),
        "mixing_beta": beta,
        "mixing_beta_sq": beta * beta,
        "local_tf": 1.0 if mode in ("local-tf", "tf") else 0.0,
        "log_maxstep": math.log(_pos(desc, "electron_maxstep", 1)),
        "neg_log10_conv_thr": -math.log10(_pos(desc, "conv_thr", 1e-30)),
        "log_volume_per_atom": math.log(_pos(desc, "volume_per_atom", 1.0)),
        "transition_metal": metal,
        "metal_x_beta": (smearing or metal) * beta,
        "spin_x_beta": spin * beta,
    }
    return [features[name] for name in FEATURES]
