"""Slurm parsers against verbatim 22.05 captures, plus properties on arbitrary text."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler_adapters.errors import OutputParseError
from scheduler_adapters.rendering import format_walltime, parse_walltime
from scheduler_adapters.slurm import parse
from scheduler_adapters.slurm.commands import SACCT_FIELDS, SEP
from scheduler_adapters.types import AccountingRecord, JobId, JobState

Capture = Callable[[str], str]


def by_name(records: list[AccountingRecord]) -> dict[str, list[AccountingRecord]]:
    out: dict[str, list[AccountingRecord]] = {}
    for r in records:
        out.setdefault(r.name or "", []).append(r)
    return out


# ------------------------------------------------------------------ sbatch
def test_sbatch_parsable_capture(slurm_capture: Capture) -> None:
    text = slurm_capture("sbatch_parsable.txt")
    assert parse.parse_sbatch(text) == JobId(text.strip())


@pytest.mark.parametrize(
    ("stdout", "expected"),
    [
        ("123\n", JobId("123")),
        ("123;cluster2\n", JobId("123")),
        ("sbatch: warning: something odd\n456\n", JobId("456")),
        ("  789  \n\n", JobId("789")),
    ],
)
def test_sbatch_parsable_variants(stdout: str, expected: JobId) -> None:
    assert parse.parse_sbatch(stdout) == expected


@pytest.mark.parametrize("stdout", ["", "\n", "Submitted batch job 12\n", "12;\n", "abc"])
def test_sbatch_parsable_garbage(stdout: str) -> None:
    with pytest.raises(OutputParseError):
        parse.parse_sbatch(stdout)


# ------------------------------------------------------------------ squeue
def test_squeue_mixed_capture(slurm_capture: Capture) -> None:
    rows = parse.parse_squeue(slurm_capture("squeue_mixed.txt"))
    states = {r.name: (r.state, r.reason) for r in rows if r.job_id.task is None}
    assert states == {
        "cap-done": (JobState.COMPLETED, None),
        "cap-fail-parent": (JobState.FAILED, "NonZeroExitCode"),
        "cap-dependent": (JobState.PENDING, "Dependency"),
        "cap-never": (JobState.DEPENDENCY_NEVER_SATISFIED, "DependencyNeverSatisfied"),
        "cap-held": (JobState.HELD, "JobHeldUser"),
        "cap-running": (JobState.RUNNING, None),
        "cap we|ird 'name'": (JobState.RUNNING, None),
    }
    tasks = sorted((r.job_id.task, r.state, r.reason) for r in rows if r.name == "cap-array")
    assert tasks == [
        (0, JobState.RUNNING, None),
        (1, JobState.RUNNING, None),
        (2, JobState.PENDING, "JobArrayTaskLimit"),
        (3, JobState.PENDING, "JobArrayTaskLimit"),
        (4, JobState.PENDING, "JobArrayTaskLimit"),
        (5, JobState.PENDING, "JobArrayTaskLimit"),
    ]
    array_ids = {r.array_job_id for r in rows if r.name == "cap-array"}
    assert len(array_ids) == 1
    assert {r.job_id.value for r in rows if r.name == "cap-array"} == array_ids
    native = {r.name: r.native_state for r in rows if r.job_id.task is None}
    assert native["cap-held"] == "PENDING"


def test_squeue_empty_capture(slurm_capture: Capture) -> None:
    assert parse.parse_squeue(slurm_capture("squeue_empty.txt")) == []


def test_squeue_unexpanded_array_row() -> None:
    line = SEP.join(["7_[2-4%2]", "7", "7", "[2-4%2]", "PENDING", "JobArrayTaskLimit", "arr"])
    rows = parse.parse_squeue(line + "\n")
    assert [r.job_id for r in rows] == [JobId("7", 2), JobId("7", 3), JobId("7", 4)]


def test_squeue_unknown_state_is_unknown_with_warning(caplog: pytest.LogCaptureFixture) -> None:
    line = SEP.join(["9", "9", "9", "N/A", "TELEPORTING", "None", "x"])
    with caplog.at_level(logging.WARNING, logger="scheduler_adapters.slurm"):
        rows = parse.parse_squeue(line)
    assert [(r.state, r.native_state) for r in rows] == [(JobState.UNKNOWN, "TELEPORTING")]
    assert "TELEPORTING" in caplog.text


@pytest.mark.parametrize(
    "line",
    [
        "only|pipes|here",
        SEP.join(["x", "y", "z", "N/A", "RUNNING", "None", "n"]),
        SEP.join(["1_2", "1", "abc", "2", "RUNNING", "None", "n"]),
    ],
)
def test_squeue_bad_lines(line: str) -> None:
    with pytest.raises(OutputParseError):
        parse.parse_squeue(line)


# ------------------------------------------------------------------- sacct
def test_sacct_mixed_capture(slurm_capture: Capture) -> None:
    records = parse.parse_sacct(slurm_capture("sacct_mixed.txt"))
    named = by_name(records)

    [fail] = named["cap-fail-parent"]
    assert (fail.state, fail.exit_code, fail.signal) == (JobState.FAILED, 3, None)
    [signal] = named["cap-signal"]
    assert (signal.state, signal.exit_code, signal.signal) == (JobState.FAILED, 0, 9)
    [done] = named["cap-done"]
    assert (done.state, done.exit_code, done.node_list) == (JobState.COMPLETED, 0, "vm")
    assert done.start is not None
    assert done.end is not None

    [cancelled] = named["cap-running"]
    assert (cancelled.state, cancelled.native_state) == (JobState.CANCELLED, "CANCELLED by 0")
    [held] = named["cap-held"]
    assert (held.state, held.start, held.node_list) == (JobState.CANCELLED, None, None)

    # kill_invalid_depend cascades: child and grandchild of a failed parent end CANCELLED
    assert [r.state for r in named["cap-child"]] == [JobState.CANCELLED]
    assert [r.state for r in named["cap-grandchild"]] == [JobState.CANCELLED]

    # array with throttle, cancelled while tasks 2-5 were pending: meta row 47_[2-5%2]
    arr = sorted(named["cap-array"], key=lambda r: r.job_id.task or 0)
    assert [r.job_id.task for r in arr] == [0, 1, 2, 3, 4, 5]
    assert {r.job_id.value for r in arr} == {arr[0].job_id.value}
    assert [r.node_list for r in arr] == ["vm", "vm", None, None, None, None]
    assert {r.state for r in arr} == {JobState.CANCELLED}
    assert len({r.raw_id for r in arr[2:]}) == 1

    ok = sorted(named["cap-array-ok"], key=lambda r: r.job_id.task or 0)
    assert [(r.job_id.task, r.state, r.exit_code) for r in ok] == [
        (i, JobState.COMPLETED, 0) for i in range(4)
    ]
    # the array job id is the raw id of the last task to start (notes/slurm.md §3)
    assert ok[-1].raw_id == ok[-1].job_id.value

    # MaxRSS exists only on the .batch step; the job gets the max over steps
    [rss] = named["cap-rss"]
    assert rss.max_rss_kb is not None
    assert rss.max_rss_kb > 60 * 1024
    assert rss.cpu_time_s is not None
    assert rss.elapsed_s is not None
    assert rss.elapsed_s >= 5

    [weird] = named["cap we|ird 'name'"]
    assert weird.state == JobState.CANCELLED
    # steps never become records of their own
    assert all(r.name != "batch" for r in records)


def test_sacct_header_and_pipes_equal_unit_separator(slurm_capture: Capture) -> None:
    """The '|' capture (with header, a '|' inside a name) parses to the same records."""
    sep = parse.parse_sacct(slurm_capture("sacct_mixed.txt"))
    pipes = parse.parse_sacct(slurm_capture("sacct_with_header_pipes.txt"))
    assert pipes == sep


def test_sacct_shuffled_fields_with_header() -> None:
    header = "State|ExitCode|JobName|JobID"
    text = f"{header}\nFAILED|3:0|x|12\nFAILED|3:0|batch|12.batch\n"
    [rec] = parse.parse_sacct(text)
    assert (rec.job_id, rec.state, rec.exit_code, rec.name) == (
        JobId("12"), JobState.FAILED, 3, "x",
    )


def test_sacct_empty_capture(slurm_capture: Capture) -> None:
    assert parse.parse_sacct(slurm_capture("sacct_empty.txt")) == []


def test_sacct_allocation_name_race(slurm_capture: Capture) -> None:
    """Right after a fast job ends, sacct names it "allocation" (see README)."""
    [rec] = parse.parse_sacct(slurm_capture("sacct_name_allocation_race.txt"))
    assert (rec.name, rec.state) == ("allocation", JobState.COMPLETED)


def test_sacct_wrong_field_count() -> None:
    with pytest.raises(OutputParseError):
        parse.parse_sacct(SEP.join(["1", "1", "x"]))


@pytest.mark.parametrize(
    ("text", "kb"),
    [("4504K", 4504), ("1.5M", 1536), ("2G", 2 * 1024 * 1024), ("0", 0), ("", None)],
)
def test_rss_units(text: str, kb: int | None) -> None:
    assert parse.parse_rss_kb(text) == kb


@pytest.mark.parametrize(
    ("text", "ids"),
    [
        ("12", [JobId("12")]),
        ("12_3", [JobId("12", 3)]),
        ("12_[2-4]", [JobId("12", 2), JobId("12", 3), JobId("12", 4)]),
        ("12_[1,5-6%2]", [JobId("12", 1), JobId("12", 5), JobId("12", 6)]),
        ("12_[0-6:3]", [JobId("12", 0), JobId("12", 3), JobId("12", 6)]),
    ],
)
def test_expand_job_id(text: str, ids: list[JobId]) -> None:
    assert parse.expand_job_id(text) == ids


# ------------------------------------------------------------------- sinfo
def test_sinfo_nodes_capture_dedupes_partitions(slurm_capture: Capture) -> None:
    [node] = parse.parse_sinfo_nodes(slurm_capture("sinfo_nodes.txt"))
    assert (node.name, node.partitions, node.cpus_total, node.memory_total_mb) == (
        "vm", ("debug", "long"), 8, 4096,
    )
    assert node.cpus_allocated == 0
    assert node.memory_allocated_mb == 0


def test_sinfo_na_metrics() -> None:
    line = SEP.join(["n1", "debug*", "down", "N/A", "N/A", "1000", "0", "0/0/4/4"]) + SEP
    [node] = parse.parse_sinfo_nodes(line)
    assert (node.cpu_load, node.memory_free_mb, node.state) == (None, None, "down")


# -------------------------------------------------------------- properties
PARSERS = [parse.parse_sacct, parse.parse_squeue, parse.parse_sinfo_nodes, parse.parse_sbatch]
field_text = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["12", "12_3", "12_[2-4%2]", "12.batch", "N/A", "None", "Unknown",
                     "COMPLETED", "CANCELLED by 0", "3:0", "00:01:02", "1-00:00:00",
                     "4504K", "2026-11-30T13:53:04", "0/8/0/8", "1.5", ""]),
)


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_parsers_never_crash_on_arbitrary_text(text: str) -> None:
    for parser in PARSERS:
        with contextlib.suppress(OutputParseError):
            parser(text)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(field_text, min_size=1, max_size=12), max_size=5),
       st.sampled_from([SEP, "|"]))
def test_parsers_never_crash_on_field_like_text(rows: list[list[str]], sep: str) -> None:
    text = "\n".join(sep.join(r) for r in rows)
    for parser in PARSERS:
        with contextlib.suppress(OutputParseError):
            parser(text)


@settings(max_examples=200, deadline=None)
@given(st.lists(field_text, min_size=len(SACCT_FIELDS), max_size=len(SACCT_FIELDS)))
def test_sacct_full_width_rows(fields: list[str]) -> None:
    with contextlib.suppress(OutputParseError):
        parse.parse_sacct(SEP.join(fields))


@given(st.integers(min_value=0, max_value=10**8), st.booleans())
def test_walltime_round_trip(seconds: int, days: bool) -> None:
    text = format_walltime(seconds, days=days)
    assert parse_walltime(text) == seconds
