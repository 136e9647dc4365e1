"""Queue summaries (every user's jobs per partition): Slurm ``squeue --all``, PBS ``qstat -Q``
and the wrappers' ``qstat -f``, each against an oracle and against hostile text."""

from __future__ import annotations

import contextlib
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler_adapters.errors import OutputParseError
from scheduler_adapters.pbs import queues
from scheduler_adapters.pbs.qstat import parse_qstat_text
from scheduler_adapters.queue_summary import PartitionLoad, tally, totals
from scheduler_adapters.slurm import queue
from scheduler_adapters.slurm.commands import SEP

partitions = st.sampled_from(["debug", "long", "gpu", "big-mem", "p.1"])
slurm_states = st.sampled_from(
    ["PENDING", "RUNNING", "COMPLETING", "CONFIGURING", "SUSPENDED", "REQUEUE_HOLD", "PREEMPTED"]
)


def _oracle(jobs: list[tuple[str, str]]) -> list[PartitionLoad]:
    pending: Counter[str] = Counter()
    running: Counter[str] = Counter()
    for part, kind in jobs:
        pending[part] += kind == "pending"
        running[part] += kind == "running"
    names = sorted({p for p, _ in jobs})
    return [PartitionLoad(p, pending[p], running[p]) for p in names]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(partitions, slurm_states), max_size=60))
def test_squeue_summary_matches_a_count(jobs: list[tuple[str, str]]) -> None:
    text = "".join(f"{p}{SEP}{s}\n" for p, s in jobs)
    got = queue.parse_queue_summary(text)
    assert got == _oracle([(p, queue.kind_of(s)) for p, s in jobs])
    pending, running = totals(got)
    assert pending == sum(s in ("PENDING", "REQUEUE_HOLD") for _, s in jobs)
    assert running == sum(s in ("RUNNING", "COMPLETING", "CONFIGURING") for _, s in jobs)


def test_squeue_summary_of_a_captured_queue() -> None:
    text = f"debug{SEP}RUNNING\nlong{SEP}PENDING\nlong,debug{SEP}PENDING\n\nlong{SEP}RUNNING\n"
    assert queue.parse_queue_summary(text) == [
        PartitionLoad("debug", 0, 1),
        PartitionLoad("long", 2, 1),  # a job pending in long,debug counts in long only
    ]
    assert queue.parse_queue_summary("") == []


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_parsers_never_crash_on_arbitrary_text(text: str) -> None:
    with contextlib.suppress(OutputParseError):
        loads = queue.parse_queue_summary(text)
        assert all(len(x.partition) <= 128 and x.pending >= 0 for x in loads)
    with contextlib.suppress(OutputParseError):
        queues.parse_qstat_queues(text)
    with contextlib.suppress(OutputParseError):
        queues.count_jobs(parse_qstat_text(text))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.sampled_from(["?", "0", "12", "yes", "E", "-----", "", "x" * 300,
                                          SEP, "Queue", "Que", "Run"]), max_size=14), max_size=6))
def test_qstat_q_never_crashes_on_table_like_text(rows: list[list[str]]) -> None:
    header = "Queue Max Tot Ena Str Que Run Hld Wat Trn Ext Type"
    text = "\n".join([header, *(" ".join(r) for r in rows)])
    with contextlib.suppress(OutputParseError):
        queues.parse_qstat_queues(text)
    with contextlib.suppress(OutputParseError):
        queue.parse_queue_summary(text.replace(" ", SEP))


def test_hostile_input_is_handled_line_by_line() -> None:
    """Hundreds of thousands of lines, one very long line: one pass, no backtracking regex
    (the parsers split on a fixed separator; nothing here is timed)."""
    lines = 200_000
    text = f"debug{SEP}PENDING\n" * lines
    assert queue.parse_queue_summary(text) == [PartitionLoad("debug", lines, 0)]
    long_name = "p" * 1_000_000
    assert queue.parse_queue_summary(f"{long_name}{SEP}RUNNING") == [
        PartitionLoad("p" * 128, 0, 1)
    ]
    with contextlib.suppress(OutputParseError):
        queue.parse_queue_summary(SEP * 1_000_000)


PBS_PRO = """\
Queue              Max   Tot Ena Str   Que   Run   Hld   Wat   Trn   Ext Type
---------------- ----- ----- --- --- ----- ----- ----- ----- ----- ----- ----
workq                0     5 yes yes     2     2     1     0     0     0 Exec
express              0     1 yes yes     0     0     0     0     0     1 Exec
"""
TORQUE = """\
Queue            Max    Tot   Ena   Str   Que   Run   Hld   Wat   Trn   Ext T   Cpt
----------------   ---   ----    --    --   ---   ---   ---   ---   ---   --- -   ---
batch              0      7   yes   yes     3     4     0     0     0     0 E     9
"""
WRAPPERS = """\
Queue              Max   Tot   Ena   Str   Que   Run   Hld   Wat   Trn   Ext T
----------------   ---   ---   ---   ---   ---   ---   ---   ---   ---   --- -
debug                ?     ?   yes   yes     ?     ?     ?     ?     ?     ? E
"""


def test_qstat_q_tables() -> None:
    assert queues.parse_qstat_queues(PBS_PRO) == [
        PartitionLoad("express", 0, 1),
        PartitionLoad("workq", 3, 2),
    ]
    assert queues.parse_qstat_queues(TORQUE) == [PartitionLoad("batch", 3, 4)]
    assert queues.parse_qstat_queues(WRAPPERS) is None  # counted from qstat -f instead
    assert queues.parse_qstat_queues("") == []


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(partitions, st.sampled_from("QRHEWCF")), max_size=40))
def test_qstat_f_jobs_counted_per_queue(jobs: list[tuple[str, str]]) -> None:
    text = "".join(
        f"Job Id:\t{i + 1}\n\tJob_Name = j{i}\n\tjob_state = {s}\n\tqueue = {q}\n\n"
        for i, (q, s) in enumerate(jobs)
    )
    kinds = {"Q": "pending", "H": "pending", "W": "pending", "R": "running", "E": "running"}
    expected = _oracle([(q, kinds.get(s, "other")) for q, s in jobs])
    assert queues.count_jobs(parse_qstat_text(text) if jobs else []) == expected


def test_tally_drops_empty_partitions_and_cuts_long_names() -> None:
    assert tally([("", "pending"), (" ", "running")]) == []
    assert tally([("a" * 500, "running")]) == [PartitionLoad("a" * 128, 0, 1)]
