"""sacct's core-hour columns (``CPUTimeRAW``, ``AllocCPUS``, ``ReqMem``): pure parsers.

``CPUTimeRAW`` is ``Elapsed x AllocCPUS`` in seconds, what the allocation cost (the
core-seconds a quota counts), whatever the program did with the CPUs; ``TotalCPU`` (parsed
with the other durations in ``parse.py``) is what it really used. ``ReqMem`` is printed
``200M`` since Slurm 21.08 (the job's request); older versions append ``n`` (per node) or
``c`` (per CPU, multiplied by ``AllocCPUS`` here). Every malformed value raises
``OutputParseError``, never ``ValueError`` (hypothesis-tested).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from scheduler_adapters.errors import OutputParseError

# Columns added after the first captures; a row with only the first ones still parses.
USAGE_FIELDS: tuple[str, ...] = ("CPUTimeRAW", "AllocCPUS", "ReqMem")

_MEM_RE = re.compile(r"^(?P<num>[0-9]+(?:\.[0-9]+)?)(?P<unit>[KMGTP]?)(?P<per>[nc]?)$")
_KB = {"": 1 / 1024, "K": 1, "M": 1024, "G": 1024**2, "T": 1024**3, "P": 1024**4}
_EMPTY = ("", "Unknown", "None", "N/A", "(null)", "INVALID")
_MAX_DIGITS = 18  # beyond any real counter; keeps int() bounded


def _count(text: str, what: str) -> int | None:
    value = text.strip()
    if value in _EMPTY:
        return None
    if not (value.isascii() and value.isdigit()) or len(value) > _MAX_DIGITS:
        raise OutputParseError(f"bad {what}", raw=text)
    return int(value)


def parse_req_mem_kb(text: str, alloc_cpus: int | None) -> int | None:
    """``200M`` / ``4G`` / ``1000Mc`` (per CPU) / ``2Gn`` (per node) -> kB; 0 is None."""
    value = text.strip()
    if value in _EMPTY:
        return None
    m = _MEM_RE.fullmatch(value)
    if m is None or len(m["num"]) > _MAX_DIGITS:
        raise OutputParseError("bad ReqMem", raw=text)
    kb = round(float(m["num"]) * _KB[m["unit"]])
    if m["per"] == "c" and alloc_cpus:
        kb *= alloc_cpus
    return kb or None


def usage_of(row: Mapping[str, str]) -> dict[str, Any]:
    """The usage keyword arguments of an ``AccountingRecord`` from one allocation row."""
    cpus = _count(row.get("AllocCPUS", ""), "AllocCPUS")
    raw = _count(row.get("CPUTimeRAW", ""), "CPUTimeRAW")
    return {
        "alloc_cpus": cpus,
        "core_seconds": None if raw is None else float(raw),
        "req_mem_kb": parse_req_mem_kb(row.get("ReqMem", ""), cpus),
    }


def optional_usage_of(row: Mapping[str, str]) -> dict[str, Any]:
    """``usage_of``, or all unknown: the core-hour columns are optional extras, and one that
    prints oddly (sacct 22.05's ``ReqMem`` ``16?`` on some allocation rows) must neither lose
    the job's state nor stop the rest of the harvest."""
    try:
        return usage_of(row)
    except OutputParseError:
        pass
    # One odd column (sacct 22.05 also prints ReqMem as NO_VAL64, ``18446744073709551616.00``,
    # on some reads) costs only that column: each is read on its own.
    try:
        cpus = _count(row.get("AllocCPUS", ""), "AllocCPUS")
    except OutputParseError:
        cpus = None
    try:
        raw = _count(row.get("CPUTimeRAW", ""), "CPUTimeRAW")
    except OutputParseError:
        raw = None
    try:
        mem = parse_req_mem_kb(row.get("ReqMem", ""), cpus)
    except OutputParseError:
        mem = None
    return {
        "alloc_cpus": cpus,
        "core_seconds": None if raw is None else float(raw),
        "req_mem_kb": mem,
    }
