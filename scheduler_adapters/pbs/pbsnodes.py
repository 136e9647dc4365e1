"""``pbsnodes -a`` output (PBS Pro JSON, Torque text) -> :class:`NodeMetrics` (pure)."""

from __future__ import annotations

import json
import logging
from typing import Any

from scheduler_adapters.errors import OutputParseError
from scheduler_adapters.pbs.values import optional, parse_size_kb
from scheduler_adapters.types import NodeMetrics

log = logging.getLogger("scheduler_adapters.pbs")


def _int(value: Any, raw: str, what: str) -> int:
    if isinstance(value, bool):
        raise OutputParseError(f"{what} is not a number: {value!r}", raw=raw)
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise OutputParseError(f"{what} is not a number: {value!r}", raw=raw) from exc


def _mb(value: Any) -> int | None:
    if value is None:
        return None
    try:
        return parse_size_kb(str(value)) // 1024
    except ValueError:
        log.warning("pbsnodes: cannot read size %r, ignoring it", value)
        return None


def parse_pbsnodes_json(text: str) -> list[NodeMetrics]:
    """``pbsnodes -a -F json`` (PBS Pro): ncpus/mem available vs assigned per vnode.

    PBS Pro reports no load average and no free OS memory, so ``cpu_load`` and
    ``memory_free_mb`` are None.
    """
    try:
        doc = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise OutputParseError(f"pbsnodes JSON does not decode ({exc})", raw=text) from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("nodes", {}), dict):
        raise OutputParseError("pbsnodes JSON has no 'nodes' object", raw=text)
    out: list[NodeMetrics] = []
    for name, node in doc.get("nodes", {}).items():
        if not isinstance(node, dict):
            raise OutputParseError(f"pbsnodes JSON node {name!r} is not an object", raw=text)
        available = node.get("resources_available", {})
        assigned = node.get("resources_assigned", {})
        if not isinstance(available, dict) or not isinstance(assigned, dict):
            raise OutputParseError(f"pbsnodes JSON node {name!r}: bad resources", raw=text)
        state = node.get("state")
        if not isinstance(state, str):
            raise OutputParseError(f"pbsnodes JSON node {name!r} has no state", raw=text)
        total = available.get("ncpus", node.get("pcpus"))
        queue = node.get("queue")
        out.append(
            NodeMetrics(
                name=str(name),
                state=state,
                cpu_load=None,
                cpus_allocated=_int(assigned.get("ncpus", 0), text, f"{name} ncpus assigned"),
                cpus_total=_int(total if total is not None else 0, text, f"{name} ncpus"),
                memory_free_mb=None,
                memory_total_mb=_mb(available.get("mem")) or 0,
                memory_allocated_mb=_mb(assigned.get("mem")),
                partitions=(queue,) if isinstance(queue, str) and queue else (),
            )
        )
    return out


def _count_slots(jobs: str) -> int:
    """Torque ``jobs = 0/1.srv,1/1.srv`` or ``0-13/307.srv,14-27/308.srv`` -> cores in use."""
    count = 0
    for entry in jobs.split(","):
        slots = entry.strip().split("/", 1)[0]
        if not slots:
            continue
        if "-" in slots:
            lo, _, hi = slots.partition("-")
            count += int(hi) - int(lo) + 1
        else:
            int(slots)
            count += 1
    return count


def parse_pbsnodes_text(text: str) -> list[NodeMetrics]:
    """Torque ``pbsnodes -a`` (and the Slurm wrapper's imitation of it).

    Node name at column 0, then indented ``key = value``. ``np`` is the core
    count, ``jobs`` lists the cores in use, ``status`` is a ``k=v,...`` list with
    ``physmem``/``availmem`` (Torque's availmem counts swap, so it may exceed
    physmem) and ``loadave``.
    """
    nodes: list[tuple[str, dict[str, str]]] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        if not line[0].isspace():
            nodes.append((line.strip(), {}))
            continue
        if not nodes:
            raise OutputParseError("pbsnodes text: attribute before the first node name", raw=text)
        key, sep, value = line.strip().partition(" = ")
        if not sep:
            raise OutputParseError(f"pbsnodes text: cannot read line {line!r}", raw=text)
        nodes[-1][1][key] = value
    out: list[NodeMetrics] = []
    for name, attrs in nodes:
        status: dict[str, str] = {}
        for item in attrs.get("status", "").split(","):
            k, sep, v = item.partition("=")
            if sep:
                status.setdefault(k.strip(), v.strip())
        if "state" not in attrs:
            raise OutputParseError(f"pbsnodes text: node {name!r} has no state", raw=text)
        try:
            allocated = _count_slots(attrs.get("jobs", ""))
        except ValueError as exc:
            raise OutputParseError(f"pbsnodes text: node {name!r} jobs list", raw=text) from exc
        cpus = attrs.get("np") or status.get("ncpus") or "0"
        load = optional(status.get("loadave"), float, None, "loadave")
        total_mb = _mb(status.get("physmem")) or _mb(status.get("availmem")) or 0
        free_mb = _mb(status.get("availmem")) if "physmem" in status else None
        out.append(
            NodeMetrics(
                name=name,
                state=attrs["state"],
                cpu_load=load,
                cpus_allocated=allocated,
                cpus_total=_int(cpus, text, f"{name} np"),
                memory_free_mb=free_mb,
                memory_total_mb=total_mb,
                memory_allocated_mb=None,
            )
        )
    return out
