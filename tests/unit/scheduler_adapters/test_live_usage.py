"""Live usage parsers (issue 17): sstat rows, PBS resources_used, /proc/PID/stat.

Golden samples are verbatim captures (tests/fixtures/scheduler_output/*/README.md); the
parsers are fed hostile text by hypothesis and must either parse or raise
``OutputParseError`` - in time linear in the input (a 200 kB line is parsed at once).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler_adapters.errors import CommandFailed, OutputParseError
from scheduler_adapters.local.proc import group_usage, parse_stat
from scheduler_adapters.pbs.adapter import PbsAdapter
from scheduler_adapters.slurm import sstat
from scheduler_adapters.slurm.adapter import SlurmAdapter
from scheduler_adapters.types import CommandResult, JobId
from tests.unit.scheduler_adapters.conftest import ReplayRunner

PBS = Path(__file__).resolve().parents[2] / "fixtures" / "scheduler_output"


def test_sstat_capture_sums_steps(slurm_capture: Callable[[str], str]) -> None:
    text = slurm_capture("sstat_running.txt")
    usage = sstat.parse_sstat(text)
    (job,) = usage
    assert job.task is None
    assert job.value.isdigit()
    # the .batch step and the srun step .0: CPU summed, memory the larger one
    assert usage[job].parts == 2
    assert usage[job].cpu_time_s == 2.0
    assert usage[job].max_rss_kb == 13852


def test_sstat_argv_is_one_call_for_all_jobs() -> None:
    argv = sstat.sstat([JobId("7"), JobId("3"), JobId("7"), JobId("5", 2)])
    assert argv[0] == "sstat"
    assert "--allsteps" in argv
    assert "--parsable2" in argv
    assert argv[-1] == "--jobs=3,5_2,7"


def test_sstat_rows() -> None:
    rows = (
        "12.batch|1|00:01:00|1.5M|cpu=00:01:00,mem=1536K\n"
        "12.0|4|00:00:30|2G|\n"  # no TRES: AveCPU x NTasks
        "13_4.batch|1|||\n"  # nothing sampled yet
        "14.extern|1|00:00:00|0|cpu=1-00:00:00,energy=0\n"
    )
    usage = sstat.parse_sstat(rows)
    assert usage[JobId("12")].cpu_time_s == 60 + 120
    assert usage[JobId("12")].max_rss_kb == 2 * 1024 * 1024
    assert usage[JobId("13", 4)].cpu_time_s is None
    assert usage[JobId("13", 4)].max_rss_kb is None
    assert usage[JobId("14")].cpu_time_s == 86400


@pytest.mark.parametrize(
    "line",
    [
        "12|1|00:00:01|1K|cpu=00:00:01",
        "x.batch|1|0|0|",
        "12.batch|1|00:00:01|1K",
        "12.batch|1|zz|1K|",
        "12.batch|1|00:00:01|9Q|",
        "12_x.0|1|0|0|",
        ".batch|1|0|0|",
        "12.|1|0|0|",
    ],
)
def test_sstat_malformed_rows_raise(line: str) -> None:
    with pytest.raises(OutputParseError):
        sstat.parse_sstat(line)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=400))
def test_sstat_hostile_text_parses_or_raises(text: str) -> None:
    with contextlib.suppress(OutputParseError):
        sstat.parse_sstat(text)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(["1", ".", "|", "_", "batch", "cpu=", ":", ",", "0", "K", "-"]),
                max_size=200))
def test_sstat_near_miss_rows_parse_or_raise(parts: list[str]) -> None:
    with contextlib.suppress(OutputParseError):
        sstat.parse_sstat("".join(parts))


def test_sstat_long_hostile_line_is_linear() -> None:
    hostile = "1" * 200_000 + ".batch|1|" + "0:" * 50_000 + "|1K|cpu=" + "9" * 50_000
    start = time.process_time()
    with pytest.raises(OutputParseError):
        sstat.parse_sstat(hostile)
    assert time.process_time() - start < 1.0  # a backtracking parser takes minutes


def test_slurm_adapter_tolerates_unknown_ids_only(slurm_capture: Callable[[str], str]) -> None:
    argv = tuple(sstat.sstat([JobId("4"), JobId("999996")]))
    ok = CommandResult(argv, 0, slurm_capture("sstat_running.txt"),
                       slurm_capture("sstat_running_stderr.txt"))
    adapter = SlurmAdapter(ReplayRunner({argv: ok}))  # type: ignore[arg-type]
    assert set(adapter.live_usage([JobId("4"), JobId("999996")])) <= {JobId("4")}
    bad = CommandResult(argv, 1, "", "sstat: error: Unable to contact slurm controller")
    adapter = SlurmAdapter(ReplayRunner({argv: bad}))  # type: ignore[arg-type]
    with pytest.raises(CommandFailed) as info:
        adapter.live_usage([JobId("4"), JobId("999996")])
    assert info.value.transient
    assert SlurmAdapter(ReplayRunner()).live_usage([]) == {}  # type: ignore[arg-type]


def test_pbs_running_job_resources_used() -> None:
    text = (PBS / "pbspro-unknown-version" / "qstat_f_running.txt").read_text()
    runner = ReplayRunner(default=CommandResult((), 0, text, ""))
    adapter = PbsAdapter(runner, flavor="pbspro", output="text")  # type: ignore[arg-type]
    job = JobId("171390152.mycluster")
    usage = adapter.live_usage([job])
    assert usage[job].cpu_time_s == 0.0
    assert usage[job].max_rss_kb == 0
    assert runner.calls
    assert len(runner.calls) == 1


def test_pbs_slurm_wrappers_cannot_sample() -> None:
    runner = ReplayRunner()
    adapter = PbsAdapter(runner, flavor="torque", slurm_wrappers=True)  # type: ignore[arg-type]
    assert adapter.live_usage([JobId("93")]) == {}
    assert "resources_used" in adapter.unsupported_reasons["live_usage"]
    assert runner.calls == []


def test_proc_stat_with_hostile_command_name() -> None:
    fields = ["S", "1", "777", "777"] + ["0"] * 7 + ["100", "50", "25", "25"] + ["0"] * 6 + ["10"]
    parsed = parse_stat("4242 (evil) name (x) " + " ".join(fields) + " 0 0")
    assert parsed is not None
    ppid, pgrp, cpu, rss = parsed
    assert ppid == 1
    assert pgrp == 777
    assert cpu > 0
    assert rss > 0
    assert parse_stat("garbage") is None
    assert parse_stat("1 (x) S 1 2 three") is None


def test_proc_group_usage_of_this_process() -> None:
    import os

    me = os.getpgrp()
    usage = group_usage([me])
    assert usage[me].processes >= 1
    assert usage[me].cpu_time_s > 0
    assert group_usage([]) == {}
