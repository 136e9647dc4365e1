"""A step's (or array task's) parameters as ``HPCGATE_PARAM_*`` variables for the job script.

Why in the script: the parameters used to be written to ``hpcgate-params.env`` in the run
directory and *sourced* by the job, but that directory also holds the user's inputs (and
whatever a parent step left there), so a file of that name ran as shell code. Now the
values are rendered into the script itself (``templates/sbatch/_params.j2``), quoted by the
template's ``sh`` filter, and the names are built here from a strict charset. Nothing the
user can write is ever sourced.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

PREFIX = "HPCGATE_PARAM_"
_NAME_RE = re.compile(r"^HPCGATE_PARAM_[A-Z0-9_]+$")


def env_name(key: str) -> str:
    """``system.ecutwfc`` -> ``HPCGATE_PARAM_SYSTEM_ECUTWFC`` (always a plain shell name)."""
    name = PREFIX + re.sub(r"[^A-Za-z0-9_]", "_", str(key)).upper()
    if not _NAME_RE.fullmatch(name):  # pragma: no cover - the substitution guarantees it
        raise ValueError(f"parameter {key!r} gives no valid variable name")
    return name


def param_environment(params: Mapping[str, Any]) -> dict[str, str]:
    """The variables for one set of parameters (values as text; the template quotes them)."""
    return {env_name(k): str(v) for k, v in params.items()}


def task_environments(
    base: Mapping[str, Any], tasks: Iterable[tuple[int, Mapping[str, Any]]]
) -> dict[str, dict[str, str]]:
    """``{task index: variables}`` for an array step: base parameters, then each variant's."""
    return {str(int(i)): param_environment({**base, **variant}) for i, variant in tasks}
