"""Quantum ESPRESSO (pw.x) inputs: namelist variables overridden per variant."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from hpcgate.codes.plugin import PreparedInputs, check_params
from hpcgate.errors import InvalidInput

__all__ = ["prepare_qe"]

_NAMELIST_HEAD_RE = re.compile(r"[ \t]*&(\w+)")  # matched on one line at a time


def prepare_qe(
    files: Mapping[str, str],
    main: str,
    params: Mapping[str, Any],
    dependent: bool,
    *,
    binary: frozenset[str] = frozenset(),
) -> PreparedInputs:
    """Override namelist variables (``system.ecutwfc`` or plain ``ecutwfc``) in a pw.x input.

    A dependent chain step restarts from the parent's charge density and wavefunctions,
    which the job script copies into ``outdir`` before pw.x starts.
    """
    check_params(params)
    if main not in files:
        raise InvalidInput(f"the main input {main!r} is not among the input files")
    text = files[main]
    overrides: dict[tuple[str | None, str], Any] = {}
    for key, value in params.items():
        nl, _, var = str(key).rpartition(".")
        overrides[(nl.lower() or None, var)] = value
    if dependent:
        overrides[("electrons", "startingpot")] = "file"
        overrides[("electrons", "startingwfc")] = "file"
    text = _apply_namelist_overrides(text, overrides)
    return PreparedInputs({**files, main: text}, {"input": main, "output": "pw.out"})


def _qe_literal(value: Any) -> str:
    if isinstance(value, bool):
        return ".true." if value else ".false."
    if isinstance(value, int | float):
        return repr(value)
    text = str(value)
    if re.fullmatch(r"[-+]?\d+(\.\d*)?([eEdD][-+]?\d+)?|\.(true|false)\.", text, re.I):
        return text
    return "'" + text.replace("'", "") + "'"


def _namelists(lines: list[str]) -> dict[str, tuple[int, int]]:
    """``{name: (header line, "/" line)}`` in one pass over the lines (the last of a name).

    A line scanner, not one regex over the whole text: ``(?ms)^\\s*&(\\w+)(.*?)^\\s*/``
    retried the lazy body from every ``&`` and every line start, so a 300 KB input of
    ``&a`` lines took minutes (issue 15). Each line is looked at once here.
    """
    out: dict[str, tuple[int, int]] = {}
    open_name: str | None = None
    head = 0
    for n, line in enumerate(lines):
        if open_name is None:
            m = _NAMELIST_HEAD_RE.match(line)
            if m:
                open_name, head = m.group(1).lower(), n
        elif line.strip() == "/":
            out[open_name] = (head, n)
            open_name = None
    return out


def _apply_namelist_overrides(text: str, overrides: Mapping[tuple[str | None, str], Any]) -> str:
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith(("\n", "\r")):
        lines[-1] += "\n"  # so an inserted line never joins the last one
    namelists = _namelists(lines)
    pending = dict(overrides)
    # Replace existing assignments (the first one found, in the named namelist or any).
    for (nl, var), value in list(pending.items()):
        pattern = re.compile(rf"(?im)((?:^|[\s,]){re.escape(var)}\s*=\s*)([^,\n/]+)")
        literal = _qe_literal(value)
        targets = [namelists[nl]] if nl and nl in namelists else list(namelists.values())
        for head, end in targets:
            header = _NAMELIST_HEAD_RE.match(lines[head])
            assert header is not None  # _namelists found it there
            cut = header.end()
            body = lines[head][cut:] + "".join(lines[head + 1 : end])
            m = pattern.search(body)
            if m:
                new_body = body[: m.start(2)] + literal + body[m.end(2) :]
                new_lines = (lines[head][:cut] + new_body).splitlines(keepends=True)
                lines[head:end] = new_lines
                namelists = _namelists(lines)
                pending.pop((nl, var))
                break
    # Insert the rest into their namelist (default &system), before its "/" line.
    for (nl, var), value in pending.items():
        target = nl or "system"
        found = namelists.get(target)
        if found is None:
            raise InvalidInput(f"pw.x input has no &{target} namelist for parameter {var!r}")
        lines.insert(found[1], f"  {var} = {_qe_literal(value)}\n")
        namelists = _namelists(lines)
    return "".join(lines)
