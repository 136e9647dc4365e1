"""A PBS job's core-hour columns from ``qstat -f`` (pure; docs/accounting.md).

PBS has no ``CPUTimeRAW``: the allocation's core-seconds are ``resources_used.walltime``
times the CPUs allocated. Those come from ``resources_used.ncpus`` / ``Resource_List.ncpus``
(PBS Pro, and Slurm's Torque wrappers, which print ``Resource_List.ncpus``), else Torque's
``Resource_List.nodes = N:ppn=P`` (``N x P``; a host list counts one node per ``+``).
The memory asked for is ``Resource_List.mem``. Unreadable values are ``None``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from scheduler_adapters.pbs.values import parse_size_kb

_PPN_RE = re.compile(r":ppn=(?P<ppn>\d{1,6})")


def ncpus(get: Callable[[str], str | None]) -> int | None:
    """The CPUs a job holds (``get`` reads one attribute of the job, None when absent)."""
    for key in ("resources_used.ncpus", "Resource_List.ncpus"):
        value = (get(key) or "").strip()
        if value.isascii() and value.isdigit() and 0 < len(value) <= 7 and int(value) > 0:
            return int(value)
    return _torque_nodes_cpus((get("Resource_List.nodes") or "").strip())


def _torque_nodes_cpus(spec: str) -> int | None:
    """``2:ppn=4`` -> 8, ``1`` -> 1, ``n1:ppn=2+n2:ppn=2`` -> 4; None when unreadable."""
    if not spec:
        return None
    total = 0
    for part in spec.split("+"):
        head, _, rest = part.partition(":")
        count = int(head) if head.isascii() and head.isdigit() and len(head) <= 6 else 1
        m = _PPN_RE.search(":" + rest) if rest else None
        total += count * (int(m["ppn"]) if m else 1)
    return total or None


def usage_of(get: Callable[[str], str | None], walltime_s: float | None) -> dict[str, Any]:
    """The usage keyword arguments of an ``AccountingRecord``."""
    cpus = ncpus(get)
    mem = get("Resource_List.mem")
    try:
        req_kb = parse_size_kb(mem) if mem else None
    except ValueError:
        req_kb = None
    return {
        "alloc_cpus": cpus,
        "core_seconds": walltime_s * cpus if walltime_s is not None and cpus else None,
        "req_mem_kb": req_kb or None,
    }
