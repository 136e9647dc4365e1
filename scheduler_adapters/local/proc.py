"""Live usage of the local executor's running tasks, read from ``/proc`` (Linux).

Each task runs in its own process group, led by the pid in ``<key>.pid``. One pass over
``/proc/*/stat`` sums, per wanted group, ``utime + stime + cutime + cstime`` (children
that already ended and were waited for are in their parent's ``cutime``/``cstime``) and
the resident set of the processes alive now. No peak is available without cgroups, so
``max_rss_kb`` is the group's current RSS. On a system without ``/proc`` the result is
empty (live samples are then simply not taken).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE_KB = (os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096) // 1024


@dataclass
class GroupUsage:
    cpu_time_s: float = 0.0
    rss_kb: int = 0
    processes: int = 0


def parse_stat(text: str) -> tuple[int, float, int] | None:
    """``/proc/PID/stat`` -> (process group, CPU seconds incl. waited children, RSS kB).

    The command name (field 2) may contain spaces and parentheses: fields are counted
    after its last ``)``. Anything malformed is None.
    """
    _, paren, rest = text.rpartition(")")
    fields = rest.split()
    if not paren or len(fields) < 22:
        return None
    try:
        pgrp = int(fields[2])
        ticks = sum(int(fields[i]) for i in (11, 12, 13, 14))
        rss_pages = int(fields[21])
    except ValueError:
        return None
    return pgrp, ticks / _TICKS, max(rss_pages, 0) * _PAGE_KB


def group_usage(groups: Iterable[int], proc: str = "/proc") -> dict[int, GroupUsage]:
    """Usage of each wanted process group (a group with no live process is absent)."""
    wanted = set(groups)
    out: dict[int, GroupUsage] = {}
    if not wanted:
        return out
    try:
        entries = os.listdir(proc)
    except OSError:
        return out
    for name in entries:
        if not name.isdigit():
            continue
        try:
            with open(f"{proc}/{name}/stat") as fh:
                parsed = parse_stat(fh.read())
        except OSError:
            continue  # ended meanwhile
        if parsed is None or parsed[0] not in wanted:
            continue
        usage = out.setdefault(parsed[0], GroupUsage())
        usage.cpu_time_s += parsed[1]
        usage.rss_kb += parsed[2]
        usage.processes += 1
    return out
