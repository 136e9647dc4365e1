"""Live usage of the local executor's running tasks, read from ``/proc`` (Linux).

Each task runs in its own process group, led by the pid in ``<key>.pid``. One pass over
``/proc/*/stat`` sums, per task, over the leader's group *and* its descendants (``timeout``
and job launchers move their child into a group of its own) ``utime + stime + cutime +
cstime`` (children that already ended and were waited for are in their parent's
``cutime``/``cstime``) and the resident set of the processes alive now. No peak is
available without cgroups, so ``max_rss_kb`` is the current RSS. On a system without
``/proc`` the result is empty (live samples are then simply not taken).
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


def parse_stat(text: str) -> tuple[int, int, float, int] | None:
    """``/proc/PID/stat`` -> (parent, group, CPU seconds incl. waited children, RSS kB).

    The command name (field 2) may contain spaces and parentheses: fields are counted
    after its last ``)``. Anything malformed is None.
    """
    _, paren, rest = text.rpartition(")")
    fields = rest.split()
    if not paren or len(fields) < 22:
        return None
    try:
        ppid, pgrp = int(fields[1]), int(fields[2])
        ticks = sum(int(fields[i]) for i in (11, 12, 13, 14))
        rss_pages = int(fields[21])
    except ValueError:
        return None
    return ppid, pgrp, ticks / _TICKS, max(rss_pages, 0) * _PAGE_KB


def _processes(proc: str) -> dict[int, tuple[int, int, float, int]]:
    out: dict[int, tuple[int, int, float, int]] = {}
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
        if parsed is not None:
            out[int(name)] = parsed
    return out


def group_usage(leaders: Iterable[int], proc: str = "/proc") -> dict[int, GroupUsage]:
    """Usage of each leader's group and descendants (a leader with none alive is absent)."""
    wanted = set(leaders)
    if not wanted:
        return {}
    procs = _processes(proc)
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _, _) in procs.items():
        children.setdefault(ppid, []).append(pid)
    out: dict[int, GroupUsage] = {}
    for leader in wanted:
        stack = [p for p, v in procs.items() if v[1] == leader or p == leader]
        members: set[int] = set()
        while stack:
            pid = stack.pop()
            if pid not in members:
                members.add(pid)
                stack.extend(children.get(pid, ()))
        if members:
            usage = out.setdefault(leader, GroupUsage())
            for pid in members:
                _, _, cpu, rss = procs[pid]
                usage.cpu_time_s += cpu
                usage.rss_kb += rss
                usage.processes += 1
    return out
