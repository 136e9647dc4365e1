"""Quantum ESPRESSO's recovery ladder (``hpcgate/codes/recovery.py``): namelist changes.

Every SCF retry restarts from the failed attempt's charge density (``outdir`` copied in,
``startingpot='file'``: pw.x prints "The initial density is read from file"); pw.x writes
it even when it stops unconverged. A relaxation that ran out of steps restarts from its
last geometry (``restart_mode='restart'``) with more ``nstep``. Against the walltime, pw.x
is told to stop itself first: ``max_seconds`` (``&control``) a margin below the job's
walltime (:func:`max_seconds_for`), so it ends the SCF or relaxation cleanly ("Maximum CPU
time exceeded", restart files written in ``outdir``, exit 2, verdict ``incomplete``); the
``longer_walltime`` rung then continues with ``restart_mode='restart'`` from the inherited
``outdir`` ("Calculation restarted from scf iteration #N") and a ``max_seconds`` for the new
walltime. A job killed before any restart file was written costs nothing more: pw.x 6.7
prints "restart disabled: needed files not found" and starts from scratch. Values are read
from the input; when a variable is absent, pw.x's default is assumed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from hpcgate.codes.qe.prepare import _apply_namelist_overrides, _namelists
from hpcgate.codes.recovery import LONGER_WALLTIME, Change, CodeRecovery, Remedy

__all__ = ["QE_RECOVERY", "max_seconds_for", "namelist_value"]

#: The margin kept between pw.x's ``max_seconds`` and the walltime: a tenth of it, at
#: least 60 s (an SCF iteration and the restart files; the job's validation after pw.x),
#: at most 30 min, and never more than half the walltime.
MARGIN_FRACTION = 10
MARGIN_MIN_S = 60
MARGIN_MAX_S = 1800


def namelist_value(text: str, namelist: str, var: str) -> str | None:
    """The value of ``var`` in ``&namelist`` as written (quotes kept), or None."""
    lines = text.splitlines(keepends=True)
    found = _namelists(lines).get(namelist)
    if found is None:
        return None
    head, end = found
    body = re.sub(r"^[ \t]*&\w+", "", "".join(lines[head:end]), count=1)
    m = re.search(rf"(?im)(?:^|[\s,]){re.escape(var)}\s*=\s*([^,\n/]+)", body)
    return m.group(1).strip() if m else None


def _number(value: str | None, default: float) -> float:
    if value is None:
        return default
    try:
        return float(value.lower().replace("d", "e"))
    except ValueError:
        return default


def max_seconds_for(walltime_s: int) -> int:
    """pw.x's ``max_seconds`` for a job of ``walltime_s``: the walltime less the margin."""
    margin = min(max(walltime_s // MARGIN_FRACTION, MARGIN_MIN_S), MARGIN_MAX_S)
    return max(walltime_s - margin, walltime_s // 2, 1)


def _checkpoint(text: str, walltime_s: int, first: bool) -> list[Change]:
    """``max_seconds`` for the walltime; on the first attempt a user's smaller value stays
    (their choice), on a longer walltime the new value replaces it (more time is the rung)."""
    if "control" not in _namelists(text.splitlines(keepends=True)):
        return []  # not a pw.x input we can place it in (pw.x itself will say why)
    old = namelist_value(text, "control", "max_seconds")
    new = max_seconds_for(walltime_s)
    current = _number(old, float("inf"))
    if (first and current <= new) or current == new:
        return []
    return [Change("control.max_seconds", old, new)]


def _more_scf_steps(text: str) -> list[Change]:
    old = namelist_value(text, "electrons", "electron_maxstep")
    return [Change("electrons.electron_maxstep", old, int(_number(old, 100)) * 2)]


def _lower_mixing(text: str) -> list[Change]:
    old = namelist_value(text, "electrons", "mixing_beta")
    return [Change("electrons.mixing_beta", old, round(_number(old, 0.7) / 2, 6))]


def _local_tf(text: str) -> list[Change]:
    old = namelist_value(text, "electrons", "mixing_mode")
    return [Change("electrons.mixing_mode", old, "local-TF")]


def _more_geometry_steps(text: str) -> list[Change]:
    old = namelist_value(text, "control", "nstep")
    return [Change("control.nstep", old, int(_number(old, 50)) * 2)]


_REMEDIES = {
    r.name: r
    for r in (
        Remedy("more_scf_steps", frozenset({"scf_not_converged"}), _more_scf_steps),
        Remedy("lower_mixing", frozenset({"scf_not_converged"}), _lower_mixing),
        Remedy("local_tf", frozenset({"scf_not_converged"}), _local_tf),
        Remedy("more_geometry_steps", frozenset({"geometry_not_converged"}), _more_geometry_steps),
    )
}


def _restart(verdict: str, text: str) -> list[Change]:
    if verdict in ("geometry_not_converged", "incomplete"):
        old = namelist_value(text, "control", "restart_mode")
        return [] if old == "'restart'" else [Change("control.restart_mode", old, "restart")]
    old = namelist_value(text, "electrons", "startingpot")
    return [] if old == "'file'" else [Change("electrons.startingpot", old, "file")]


def _inherit(verdict: str) -> tuple[str, ...]:
    return ("tmp",)


def _apply(text: str, changes: Sequence[Change]) -> str:
    overrides = {}
    for c in changes:
        nl, _, var = c.key.rpartition(".")
        overrides[(nl or None, var)] = c.new
    return _apply_namelist_overrides(text, overrides) if overrides else text


QE_RECOVERY = CodeRecovery(
    remedies=_REMEDIES,
    ladders={
        "scf_not_converged": ("more_scf_steps", "lower_mixing", "local_tf"),
        "geometry_not_converged": ("more_geometry_steps", "more_geometry_steps"),
        "incomplete": (LONGER_WALLTIME, LONGER_WALLTIME),
    },
    restart=_restart,
    inherit=_inherit,
    apply=_apply,
    checkpoint=_checkpoint,
)
