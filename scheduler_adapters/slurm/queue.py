"""``squeue`` for every user's jobs, one row per job (array tasks one by one) -> per-partition
pending/running counts (pure parser; argv built here too)."""

from __future__ import annotations

from scheduler_adapters.errors import OutputParseError
from scheduler_adapters.queue_summary import PartitionLoad, tally
from scheduler_adapters.slurm.commands import SEP

# squeue's default state filter (pending, running, suspended, completing…) is what we want:
# finished jobs kept for MinJobAge are not queue load.
_PENDING = frozenset({"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD"})
_RUNNING = frozenset(
    {"RUNNING", "COMPLETING", "CONFIGURING", "STAGE_OUT", "SIGNALING", "RESIZING"}
)


def squeue_all() -> list[str]:
    """All users, all partitions (hidden ones too); ``%P`` partition, ``%T`` long state."""
    return ["squeue", "--all", "--noheader", "--array", f"--format=%P{SEP}%T"]


def kind_of(state: str) -> str:
    word = state.strip().rstrip("+")
    if word in _PENDING:
        return "pending"
    if word in _RUNNING:
        return "running"
    return "other"


def parse_queue_summary(text: str) -> list[PartitionLoad]:
    """One ``partition<SEP>STATE`` line per job; blank lines are skipped."""
    jobs: list[tuple[str, str]] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = line.split(SEP)
        if len(parts) != 2:
            raise OutputParseError(f"squeue line has {len(parts)} fields, expected 2", raw=line)
        jobs.append((parts[0], kind_of(parts[1])))
    return tally(jobs)
