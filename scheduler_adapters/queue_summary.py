"""A cluster's whole queue, every user's jobs, summarised per partition (issue 18).

``queue_summary()`` of each adapter makes **one** scheduler call and returns a
:class:`PartitionLoad` per partition that has jobs (callers add the empty partitions they
know from ``node_metrics``). The parsers are pure, linear in their input, and raise only
:class:`~scheduler_adapters.errors.OutputParseError` (hypothesis-tested).

A job pending in several partitions (``sbatch -p a,b``) counts in the first one only, so
the partitions add up to the cluster's totals.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

#: Longest partition name kept (longer ones are cut, never rejected).
MAX_PARTITION = 128


@dataclass(frozen=True, order=True)
class PartitionLoad:
    partition: str
    pending: int = 0
    running: int = 0


def tally(jobs: Iterable[tuple[str, str]]) -> list[PartitionLoad]:
    """``(partition, 'pending' | 'running' | anything else)`` pairs -> loads sorted by name.

    A job whose kind is neither (suspended, finishing history) is not counted, but its
    partition is listed.
    """
    counts: dict[str, list[int]] = {}
    for partition, kind in jobs:
        name = partition.split(",", 1)[0].strip()[:MAX_PARTITION]
        if not name:
            continue
        row = counts.setdefault(name, [0, 0])
        if kind == "pending":
            row[0] += 1
        elif kind == "running":
            row[1] += 1
    return [PartitionLoad(p, pending, running) for p, (pending, running) in sorted(counts.items())]


def totals(loads: Iterable[PartitionLoad]) -> tuple[int, int]:
    """(pending, running) over all partitions."""
    pending = running = 0
    for load in loads:
        pending += load.pending
        running += load.running
    return pending, running
