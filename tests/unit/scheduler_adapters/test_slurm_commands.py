"""Slurm argv builders, the adapter's command flow and error classification (replay runner)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import PurePosixPath
from typing import Any

import pytest

from scheduler_adapters.errors import CommandFailed, OutputParseError, RunnerError
from scheduler_adapters.registry import UnknownAdapter, available_adapters, get_adapter
from scheduler_adapters.slurm import commands
from scheduler_adapters.slurm.adapter import SlurmAdapter
from scheduler_adapters.types import CommandResult, JobId, JobSpec, JobState

SCRIPT = PurePosixPath("/scratch/job/job.sh")


def test_sbatch_plain() -> None:
    assert commands.sbatch(SCRIPT) == ["sbatch", "--parsable", "/scratch/job/job.sh"]


def test_sbatch_dependencies_and_hold() -> None:
    argv = commands.sbatch(SCRIPT, after_ok=[JobId("1"), JobId("2", 3)], hold=True)
    assert argv == [
        "sbatch", "--parsable", "--dependency=afterok:1:2_3", "--kill-on-invalid-dep=yes",
        "--hold", "/scratch/job/job.sh",
    ]


def test_squeue_single_id_is_listed_twice() -> None:
    argv = commands.squeue([JobId("5")])
    assert argv[-1] == "--jobs=5,5"
    assert "--array" in argv
    assert "--states=all" in argv


def test_squeue_many_ids_and_all_of_mine() -> None:
    assert commands.squeue([JobId("5"), JobId("4", 1), JobId("5")])[-1] == "--jobs=4_1,5"
    assert commands.squeue(None)[-1] == "--me"
    assert "--me" not in commands.squeue(None, user_only=False)


def test_sacct_argv() -> None:
    argv = commands.sacct([JobId("9"), JobId("8", 2)])
    assert argv[:4] == ["sacct", "--parsable2", "--noheader", f"--delimiter={commands.SEP}"]
    assert argv[-1] == "--jobs=8_2,9"
    assert argv[4] == "--format=" + ",".join(commands.SACCT_FIELDS)


def test_release_cancel_sinfo_argv() -> None:
    assert commands.scontrol_release([JobId("3"), JobId("4")]) == ["scontrol", "release", "3,4"]
    assert commands.scancel([JobId("3"), JobId("4", 1)]) == ["scancel", "3", "4_1"]
    assert commands.sinfo_nodes(["a", "b"])[-1] == "--nodes=a,b"


# ------------------------------------------------------------ adapter flow
def spec() -> JobSpec:
    return JobSpec(
        name="flow", template="generic.j2", workdir=PurePosixPath("/scratch/flow"),
        context={"command": ["true"]},
    )


def result(argv: list[str], rc: int = 0, out: str = "", err: str = "") -> CommandResult:
    return CommandResult(tuple(argv), rc, out, err)


def test_submit_writes_script_then_runs_sbatch(replay_runner: Any) -> None:
    script = PurePosixPath("/scratch/flow/flow.sh")
    argv = commands.sbatch(
        script, after_ok=[JobId("7")], hold=True, export_all=True
    )
    runner = replay_runner({tuple(argv): result(argv, out="42;cluster\n")})
    adapter = SlurmAdapter(runner)
    assert adapter.submit(spec(), after_ok=[JobId("7")], hold=True) == JobId("42")
    assert runner.files[script].startswith("#!/bin/bash\n#SBATCH --job-name=flow\n")
    assert runner.calls == [tuple(argv)]


def test_status_filters_to_requested_ids(replay_runner: Any, slurm_capture: Callable[[str], str]
                                         ) -> None:
    text = slurm_capture("squeue_mixed.txt")
    runner = replay_runner(default=CommandResult((), 0, text, ""))
    adapter = SlurmAdapter(runner)
    rows = adapter.status(None)
    array_id = next(s.job_id.value for s in rows.values() if s.name == "cap-array")
    only_array = adapter.status([JobId(array_id)])
    assert sorted(j.task or 0 for j in only_array) == [0, 1, 2, 3, 4, 5]
    one_task = adapter.status([JobId(array_id, 4)])
    assert [(j, s.state) for j, s in one_task.items()] == [(JobId(array_id, 4), JobState.PENDING)]
    assert adapter.status([]) == {}


@pytest.mark.parametrize(
    ("stderr", "transient"),
    [
        ("sbatch: error: Batch job submission failed: Invalid partition name specified", False),
        ("sbatch: error: Batch job submission failed: Invalid account or account/partition "
         "combination specified", False),
        ("sbatch: error: Batch job submission failed: Socket timed out on send/recv operation",
         True),
        ("squeue: error: Unable to contact slurm controller (connect failure)", True),
        ("slurm_load_jobs error: Unable to contact slurm controller (connect failure)", True),
        ("sacct: error: Problem talking to the database: Connection refused", True),
        ("slurm_load_jobs error: Invalid job id specified", False),
        ("something nobody has seen before", False),
    ],
)
def test_error_classification(replay_runner: Any, stderr: str, transient: bool) -> None:
    runner = replay_runner(default=CommandResult((), 1, "", stderr))
    with pytest.raises(CommandFailed) as info:
        SlurmAdapter(runner).cancel([JobId("1")])
    assert info.value.transient is transient
    assert stderr.strip()[:40] in str(info.value)


def test_captured_invalid_partition_is_permanent(
    replay_runner: Any, slurm_capture: Callable[[str], str]
) -> None:
    stderr = slurm_capture("sbatch_invalid_partition_stderr.txt")
    runner = replay_runner(default=CommandResult((), 1, "", stderr))
    with pytest.raises(CommandFailed) as info:
        SlurmAdapter(runner).submit(spec())
    assert info.value.transient is False


def test_captured_release_of_unknown_job_is_permanent(
    replay_runner: Any, slurm_capture: Callable[[str], str]
) -> None:
    stderr = slurm_capture("scontrol_release_invalid_stderr.txt")
    runner = replay_runner(default=CommandResult((), 1, "", stderr))
    with pytest.raises(CommandFailed) as info:
        SlurmAdapter(runner).release(JobId("99999999"))
    assert info.value.transient is False


def test_runner_error_propagates_as_transient() -> None:
    class DownRunner:
        scratch_root = PurePosixPath("/scratch")

        def run(self, argv: Any, **kw: Any) -> CommandResult:
            raise RunnerError("connection refused")

    with pytest.raises(RunnerError) as info:
        SlurmAdapter(DownRunner()).status(None)  # type: ignore[arg-type]
    assert info.value.transient is True


def test_garbage_sbatch_output_is_a_parse_error(replay_runner: Any) -> None:
    runner = replay_runner(default=CommandResult((), 0, "Submitted batch job 12\n", ""))
    with pytest.raises(OutputParseError):
        SlurmAdapter(runner).submit(spec())


# ---------------------------------------------------------------- registry
def test_registry_builds_adapters(replay_runner: Any) -> None:
    adapter = get_adapter("slurm", replay_runner(), template_dirs=())
    assert isinstance(adapter, SlurmAdapter)
    assert {"slurm", "pbs", "local"} <= set(available_adapters())


def test_registry_unknown_name_lists_available(replay_runner: Any) -> None:
    with pytest.raises(UnknownAdapter) as info:
        get_adapter("lsf", replay_runner())
    assert "'lsf'" in str(info.value)
    assert "slurm" in str(info.value)
    assert info.value.transient is False
