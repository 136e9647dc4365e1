"""SIESTA's recovery ladder (``hpcgate/codes/recovery.py``): fdf changes per rung.

Every retry continues the failed attempt from its density matrix (``DM.UseSaveDM``, its
``*.DM`` copied in) - and from its last geometry (``MD.UseSaveXV``, ``*.XV``) when the
geometry or the walltime was the problem; a conjugate-gradient relaxation also keeps its
search history (``MD.UseSaveCG``, ``*.CG``: "iocg: Reading CG continuation file"), so it
needs no more moves in all than one uninterrupted run. Changes are prepended to the main fdf: SIESTA
reads the first occurrence of a label, so they win over the user's own lines, which stay
as they were. Values are read the way SIESTA reads them (first occurrence, any spelling
of the label); when a label is absent, SIESTA 4.1's default is assumed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from hpcgate.codes.recovery import LONGER_WALLTIME, Change, CodeRecovery, Remedy
from hpcgate.codes.siesta.fdf import normalise_label, strip_comment

__all__ = ["SIESTA_RECOVERY", "fdf_value"]

_NUMBER_RE = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eEdD][-+]?\d+)?)\s*(\S*)")


def fdf_value(text: str, *labels: str) -> tuple[str, str] | None:
    """``(label as written, value)`` of the first top-level line setting one of ``labels``."""
    wanted = {normalise_label(label) for label in labels}
    depth = 0
    for line in text.splitlines():
        words = strip_comment(line).split(None, 1)
        if not words:
            continue
        low = words[0].lower()
        if low == "%block":
            depth += 1
        elif low == "%endblock":
            depth = max(0, depth - 1)
        elif depth == 0 and normalise_label(words[0]) in wanted:
            return words[0], (words[1].strip() if len(words) > 1 else "")
    return None


def _number(value: str | None, default: float) -> tuple[float, str]:
    m = _NUMBER_RE.match(value or "")
    if not m:
        return default, ""
    return float(m.group(1).replace("d", "e").replace("D", "e")), m.group(2)


def _fmt(x: float) -> str:
    return f"{x:.6g}"


def _current(text: str, labels: Sequence[str]) -> tuple[str, str | None]:
    """The label to set (the user's spelling of the first one found, else the first)."""
    found = fdf_value(text, *labels)
    if found is None:
        return labels[0], None
    return found[0], found[1]


def _more_scf_iterations(text: str) -> list[Change]:
    label, old = _current(text, ("MaxSCFIterations", "SCF.MaxIterations"))
    value, _ = _number(old, 1000)
    return [Change(label, old, int(value) * 2)]


def _lower_mixing(text: str) -> list[Change]:
    w_label, w_old = _current(text, ("DM.MixingWeight", "SCF.Mixer.Weight"))
    weight, _ = _number(w_old, 0.25)
    h_label, h_old = _current(text, ("DM.NumberPulay", "SCF.Mixer.History"))
    history, _ = _number(h_old, 2)
    return [
        Change(w_label, w_old, _fmt(weight / 2)),
        Change(h_label, h_old, int(max(history, 2)) + 4),
    ]


def _raise_temperature(text: str) -> list[Change]:
    label, old = _current(text, ("ElectronicTemperature",))
    value, unit = _number(old, 300.0)
    if old is None:
        unit = "K"
    return [Change(label, old, f"{_fmt(value * 2)} {unit}".strip())]


def _more_geometry_steps(text: str) -> list[Change]:
    label, old = _current(text, ("MD.Steps", "MD.NumCGsteps"))
    value, _ = _number(old, 0)
    return [Change(label, old, max(int(value) * 2, 50))]


_REMEDIES = {
    r.name: r
    for r in (
        Remedy("more_scf_iterations", frozenset({"scf_not_converged"}), _more_scf_iterations),
        Remedy("lower_mixing", frozenset({"scf_not_converged"}), _lower_mixing),
        Remedy("raise_temperature", frozenset({"scf_not_converged"}), _raise_temperature),
        Remedy("more_geometry_steps", frozenset({"geometry_not_converged"}), _more_geometry_steps),
    )
}


def _restart(verdict: str, text: str) -> list[Change]:
    out = [Change("DM.UseSaveDM", _current(text, ("DM.UseSaveDM",))[1], "true")]
    if verdict in ("geometry_not_converged", "incomplete"):
        out.append(Change("MD.UseSaveXV", _current(text, ("MD.UseSaveXV",))[1], "true"))
        if _is_cg(text):
            out.append(Change("MD.UseSaveCG", _current(text, ("MD.UseSaveCG",))[1], "true"))
    return [c for c in out if str(c.old).lower() not in ("true", ".true.", "t", "yes")]


def _is_cg(text: str) -> bool:
    """A conjugate-gradient run (SIESTA 4.1's default ``MD.TypeOfRun``)."""
    found = fdf_value(text, "MD.TypeOfRun")
    words = found[1].split() if found is not None else []
    return not words or words[0].lower() == "cg"


def _inherit(verdict: str) -> tuple[str, ...]:
    return ("*.DM", "*.XV", "*.CG") if verdict != "scf_not_converged" else ("*.DM",)


def _apply(text: str, changes: Sequence[Change]) -> str:
    if not changes:
        return text
    lines = ["# hpcgate: recovery ladder (first occurrence wins)"]
    for c in changes:
        lines.append(f"{c.key} {str(c.new).lower() if isinstance(c.new, bool) else c.new}")
    return "\n".join(lines) + "\n" + text


SIESTA_RECOVERY = CodeRecovery(
    remedies=_REMEDIES,
    ladders={
        "scf_not_converged": ("more_scf_iterations", "lower_mixing", "raise_temperature"),
        "geometry_not_converged": ("more_geometry_steps", "more_geometry_steps"),
        "incomplete": (LONGER_WALLTIME, LONGER_WALLTIME),
    },
    restart=_restart,
    inherit=_inherit,
    apply=_apply,
)
