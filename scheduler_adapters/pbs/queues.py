"""Every user's jobs per PBS queue (pure): ``qstat -Q`` or, where that has no counts, the
jobs of one all-users ``qstat -f``.

``qstat -Q`` (PBS Pro and Torque) prints a table whose header names the columns::

    Queue              Max   Tot Ena Str   Que   Run   Hld   Wat   Trn   Ext Type
    ---------------- ----- ----- --- --- ----- ----- ----- ----- ----- ----- ----
    workq                0     3 yes yes     1     2     0     0     0     0 Exec

Pending is Que + Hld + Wat, running is Run + Ext. The slurm-wlm-torque wrappers print the
same table with ``?`` for every count: :func:`parse_qstat_queues` then returns None and the
adapter counts the jobs of ``qstat -f`` by their ``queue`` and ``job_state``.
"""

from __future__ import annotations

from collections.abc import Iterable

from scheduler_adapters.errors import OutputParseError
from scheduler_adapters.pbs.qstat import PbsJob
from scheduler_adapters.queue_summary import PartitionLoad, tally

_PENDING_COLUMNS = ("Que", "Hld", "Wat")
_RUNNING_COLUMNS = ("Run", "Ext")
_PENDING_STATES = frozenset("QHWT")  # queued, held, waiting, in transit
_RUNNING_STATES = frozenset("RE")  # running, exiting


def qstat_queues() -> list[str]:
    return ["qstat", "-Q"]


def parse_qstat_queues(text: str) -> list[PartitionLoad] | None:
    """The per-queue table; None when the counts are unknown (``?``, the Slurm wrappers)."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return []
    header = lines[0].split()
    wanted = ("Queue", *_PENDING_COLUMNS, *_RUNNING_COLUMNS)
    if any(col not in header for col in wanted):
        raise OutputParseError("qstat -Q: header lacks a count column", raw=lines[0])
    index = {col: header.index(col) for col in wanted}
    loads: list[PartitionLoad] = []
    for line in lines[1:]:
        cells = line.split()
        if cells and set(cells[0]) == {"-"}:
            continue  # the rule under the header
        if len(cells) < len(header) - 1:
            raise OutputParseError("qstat -Q: short row", raw=line)
        counts = [cells[index[c]] if index[c] < len(cells) else "" for c in wanted[1:]]
        if any(c == "?" for c in counts):
            return None
        if not all(c.isdigit() and len(c) < 10 for c in counts):
            raise OutputParseError("qstat -Q: a count is not a number", raw=line)
        numbers = [int(c) for c in counts]
        pending = sum(numbers[: len(_PENDING_COLUMNS)])
        loads.append(PartitionLoad(cells[index["Queue"]][:128], pending, sum(numbers[3:])))
    return sorted(loads)


def count_jobs(jobs: Iterable[PbsJob]) -> list[PartitionLoad]:
    """Loads from all users' jobs (``queue`` and ``job_state`` attributes)."""

    def kind(state: str) -> str:
        letter = state.strip()[:1]
        if letter in _PENDING_STATES:
            return "pending"
        return "running" if letter in _RUNNING_STATES else "other"

    return tally((job.get("queue") or "", kind(job.state)) for job in jobs)
