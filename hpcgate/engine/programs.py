"""Where a cluster's programs live: ``options.programs`` ({"siesta": "/opt/siesta/bin/siesta"}).

Why: on many clusters ``siesta``/``tbtrans``/``pw.x`` are not on the batch shell's PATH
(a site build under /opt, a module the job does not load). A cluster can name the absolute
path of each program; a job script then runs that path instead of the bare name, and a
program the cluster does not list is found on PATH as before. The path reaches a job
script (shell-quoted by the template), so it is checked strictly at cluster creation:
absolute, normalised, and only characters that need no quoting anywhere.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from typing import Any

from hpcgate.codes.registry import PLUGINS

OPTION = "programs"
MAX_PROGRAMS = 32
MAX_PATH_LEN = 1024
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")
_PATH_RE = re.compile(r"^/[A-Za-z0-9_./+-]*$")


def check_programs(value: Any) -> dict[str, str]:
    """``options.programs`` as {name: absolute path}; ``ValueError`` says what is wrong."""
    if not isinstance(value, Mapping):
        raise ValueError("options.programs must be an object {program name: absolute path}")
    if len(value) > MAX_PROGRAMS:
        raise ValueError(f"options.programs lists more than {MAX_PROGRAMS} programs")
    out: dict[str, str] = {}
    for name, path in value.items():
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise ValueError(
                f"options.programs: program name {name!r} is not allowed "
                "(letters, digits, '_', '.', '+', '-')"
            )
        if not isinstance(path, str) or not path.startswith("/"):
            raise ValueError(f"options.programs.{name} must be an absolute path")
        if len(path) > MAX_PATH_LEN or not _PATH_RE.match(path):
            raise ValueError(
                f"options.programs.{name}: {path!r} may only contain letters, digits and "
                "'_', '.', '/', '+', '-' (no spaces or shell characters)"
            )
        if ".." in path.split("/") or posixpath.normpath(path) != path or path.endswith("/"):
            raise ValueError(f"options.programs.{name}: {path!r} must be a normalised file path")
        out[name] = path
    return out


def check_cluster_options(options: Any) -> dict[str, Any]:
    """The option checks done at cluster creation/update (today: ``programs``)."""
    if not isinstance(options, Mapping):
        raise ValueError("options must be an object")
    out = dict(options)
    if OPTION in out:
        out[OPTION] = check_programs(out[OPTION])
    return out


def resolve_program(
    code: str, context: Mapping[str, Any], programs: Mapping[str, str]
) -> str | None:
    """The configured path of the program a step runs, or None to keep the template's.

    The step's own ``program`` (e.g. ``tbtrans``) wins over the code's default (its
    plugin's ``program``); either is looked up by name in the cluster's ``programs``.
    """
    plugin = PLUGINS.get(code)
    name = context.get("program") or (plugin.program if plugin is not None else None)
    if not isinstance(name, str):
        return None
    return programs.get(name)
