"""PBS argv builders (pure) and the adapter's command choices, via a replaying runner.

The replaying runner is a seam for error paths only (style.md 8.8); every behaviour
here is also run against the real slurm-wlm-torque wrappers in
tests/integration/test_pbs_wrappers.py, and the replayed outputs are captures.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path, PurePosixPath

import pytest

from scheduler_adapters.errors import CommandFailed, UnsupportedFeature
from scheduler_adapters.pbs import commands
from scheduler_adapters.pbs.adapter import ALL_CAPABILITIES, WRAPPER_GAPS, PbsAdapter
from scheduler_adapters.types import ArraySpec, CommandResult, JobId, JobSpec, JobState

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "scheduler_output"
WRAPPERS = FIXTURES / "torque-wrappers-slurm-22.05"
SCRIPT = PurePosixPath("/scratch/u/calc/job.sh")


# ------------------------------------------------------------------ pure argv
def test_qsub_plain() -> None:
    assert commands.qsub(SCRIPT) == ["qsub", str(SCRIPT)]


def test_qsub_hold_and_dependencies_pbspro() -> None:
    argv = commands.qsub(
        SCRIPT, after_ok=[JobId("12.srv"), JobId("13.srv"), JobId("20[].srv")], hold=True
    )
    assert argv == ["qsub", "-h", "-W", "depend=afterok:12.srv:13.srv:20[].srv", str(SCRIPT)]


def test_qsub_dependencies_torque_split_arrays() -> None:
    argv = commands.qsub(
        SCRIPT, flavor="torque", after_ok=[JobId("12.srv"), JobId("20[].srv"), JobId("21[].srv", 3)]
    )
    assert argv == [
        "qsub",
        "-W",
        "depend=afterok:12.srv:21[3].srv,afterokarray:20[].srv",
        str(SCRIPT),
    ]


@pytest.mark.parametrize(
    ("array", "flavor", "expected"),
    [
        (ArraySpec.of_size(10, 4), "pbspro", ["-J", "0-9%4"]),
        (ArraySpec.of_size(10), "pbspro", ["-J", "0-9"]),
        (ArraySpec((0, 2, 4, 6)), "pbspro", ["-J", "0-6:2"]),
        (ArraySpec((5,)), "pbspro", ["-J", "5-5"]),
        (ArraySpec.of_size(10, 4), "torque", ["-t", "0-9%4"]),
        (ArraySpec((1, 2, 3, 6, 9), 2), "torque", ["-t", "1-3,6,9%2"]),  # mavis's example
    ],
)
def test_array_option(array: ArraySpec, flavor: commands.Flavor, expected: list[str]) -> None:
    assert commands.array_option(array, flavor) == expected


def test_pbspro_refuses_non_arithmetic_arrays() -> None:
    with pytest.raises(UnsupportedFeature):
        commands.array_option(ArraySpec((0, 1, 5)), "pbspro")


def test_qsub_wrappers_passes_output_paths_and_checks_shell_safety() -> None:
    argv = commands.qsub(
        SCRIPT,
        flavor="torque",
        wrappers=True,
        array=ArraySpec.of_size(4, 2),
        stdout_path=PurePosixPath("/scratch/u/calc/job.out-%a"),
        stderr_path=PurePosixPath("/scratch/u/calc/job.err-%a"),
    )
    assert argv == [
        "qsub",
        "-t",
        "0-3%2",
        "-o",
        "/scratch/u/calc/job.out-%a",
        "-e",
        "/scratch/u/calc/job.err-%a",
        str(SCRIPT),
    ]
    with pytest.raises(UnsupportedFeature):
        commands.qsub(PurePosixPath("/scratch/my calc/job.sh"), flavor="torque", wrappers=True)
    with pytest.raises(UnsupportedFeature):
        commands.qsub(PurePosixPath("/scratch/x;rm -rf ~/job.sh"), flavor="torque", wrappers=True)


def test_unknown_flavor() -> None:
    with pytest.raises(ValueError, match="unknown PBS flavor"):
        commands.qsub(SCRIPT, flavor="sge")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, ["qstat", "-f", "-F", "json"]),
        ({"json": False}, ["qstat", "-f"]),
        ({"finished": True, "subjobs": True}, ["qstat", "-f", "-F", "json", "-x", "-t"]),
        ({"user": "alice"}, ["qstat", "-f", "-F", "json", "-u", "alice"]),
    ],
)
def test_qstat_full(kwargs: dict[str, object], expected: list[str]) -> None:
    assert commands.qstat_full(None, **kwargs) == expected  # type: ignore[arg-type]


def test_qstat_full_ids_native_and_deduplicated() -> None:
    ids = [JobId("1.s"), JobId("2[].s", 4), JobId("1.s"), JobId("2[].s")]
    assert commands.qstat_full(ids, json=False) == ["qstat", "-f", "1.s", "2[4].s", "2[].s"]
    # ids win over a user filter: one call for exactly the asked-for jobs
    assert commands.qstat_full([JobId("1.s")], user="bob") == ["qstat", "-f", "-F", "json", "1.s"]


def test_qdel_qrls_pbsnodes() -> None:
    assert commands.qdel([JobId("1.s"), JobId("9[].s", 2)]) == ["qdel", "1.s", "9[2].s"]
    assert commands.qrls([JobId("7")]) == ["qrls", "7"]
    assert commands.pbsnodes() == ["pbsnodes", "-a", "-F", "json"]
    assert commands.pbsnodes(json=False) == ["pbsnodes", "-a"]


def test_native_id() -> None:
    assert commands.native_id(JobId("123[].srv", 4)) == "123[4].srv"
    assert commands.native_id(JobId("55")) == "55"
    with pytest.raises(UnsupportedFeature):
        commands.native_id(JobId("55", 4))  # the wrappers' array ids have no [] form


# ------------------------------------------------------- adapter over a replay
class ReplayRunner:
    """Answers argv lists with recorded results, in order; records what was asked."""

    def __init__(self, answers: Sequence[CommandResult], scratch: str = "/scratch") -> None:
        self.scratch_root = PurePosixPath(scratch)
        self.answers = list(answers)
        self.calls: list[tuple[str, ...]] = []
        self.written: dict[PurePosixPath, str] = {}

    def run(
        self,
        argv: Sequence[str],
        *,
        stdin: str | None = None,
        cwd: PurePosixPath | None = None,
        timeout: float = 60,
    ) -> CommandResult:
        self.calls.append(tuple(argv))
        answer = self.answers.pop(0)
        return CommandResult(tuple(argv), answer.returncode, answer.stdout, answer.stderr)

    def write_text(self, path: PurePosixPath, text: str, *, mode: int = 0o644) -> None:
        self.written[path] = text

    def read_text(self, path: PurePosixPath, *, max_bytes: int = 1 << 20) -> str:
        return self.written[path]

    def remove_tree(self, path: PurePosixPath) -> None:
        return None

    def exists(self, path: PurePosixPath) -> bool:
        return path in self.written

    def close(self) -> None:
        return None


def captured(name: str, base: Path = WRAPPERS) -> CommandResult:
    stderr = base / f"{name}.stderr"
    return CommandResult(
        (name,),
        int((base / f"{name}.rc").read_text()),
        (base / f"{name}.txt").read_text(),
        stderr.read_text() if stderr.exists() else "",
    )


def ok(stdout: str = "", stderr: str = "", rc: int = 0) -> CommandResult:
    return CommandResult(("x",), rc, stdout, stderr)


SPEC = JobSpec(
    name="calc1",
    template="generic.j2",
    workdir=PurePosixPath("/scratch/u/c1"),
    context={"command": ["true"]},
)


def test_submit_writes_script_then_qsub_in_workdir() -> None:
    runner = ReplayRunner([ok("4711.pbs01\n")])
    adapter = PbsAdapter(runner, flavor="pbspro")
    job = adapter.submit(SPEC, after_ok=[JobId("4710.pbs01")], hold=True)
    assert job == JobId("4711.pbs01")
    assert runner.calls == [
        ("qsub", "-h", "-W", "depend=afterok:4710.pbs01", "/scratch/u/c1/calc1.sh"),
    ]
    script = runner.written[PurePosixPath("/scratch/u/c1/calc1.sh")]
    assert script.startswith("#!/bin/bash\n#PBS -N calc1\n")
    assert "depend" not in script  # dependencies are qsub options, never script content


def test_submit_on_wrappers_names_output_files() -> None:
    runner = ReplayRunner([captured("qsub_plain")])
    adapter = PbsAdapter(runner, flavor="torque", slurm_wrappers=True)
    assert adapter.submit(SPEC) == JobId("93")
    assert runner.calls == [
        (
            "qsub",
            "-o",
            "/scratch/u/c1/calc1.out",
            "-e",
            "/scratch/u/c1/calc1.err",
            "/scratch/u/c1/calc1.sh",
        ),
    ]


def test_submit_failure_on_wrappers_is_permanent() -> None:
    runner = ReplayRunner([captured("qsub_bad_queue")])
    adapter = PbsAdapter(runner, flavor="torque", slurm_wrappers=True)
    with pytest.raises(CommandFailed) as info:
        adapter.submit(SPEC)
    assert info.value.transient is False
    assert "Invalid partition name specified" in info.value.message


def test_json_refused_falls_back_to_text_once() -> None:
    runner = ReplayRunner(
        [captured("qstat_f_F_json"), captured("qstat_f_selected"), captured("qstat_f_selected")]
    )
    adapter = PbsAdapter(runner, flavor="pbspro")
    assert adapter.uses_json
    statuses = adapter.status([JobId("93"), JobId("98")])
    assert {k: v.state for k, v in statuses.items()} == {
        JobId("93"): JobState.RUNNING,
        JobId("98"): JobState.UNKNOWN,
    }
    assert runner.calls[0] == ("qstat", "-f", "-F", "json", "93", "98")
    assert runner.calls[1] == ("qstat", "-f", "93", "98")
    assert not adapter.uses_json
    adapter.status([JobId("93")])
    assert runner.calls[2] == ("qstat", "-f", "93")  # no second probe


def test_json_refused_is_an_error_when_json_was_demanded() -> None:
    runner = ReplayRunner([captured("qstat_f_F_json")])
    adapter = PbsAdapter(runner, flavor="pbspro", output="json")
    with pytest.raises(CommandFailed) as info:
        adapter.status([JobId("1")])
    assert info.value.transient is False


def test_status_missing_jobs_are_absent_not_completed() -> None:
    runner = ReplayRunner([captured("qstat_f_missing")])
    adapter = PbsAdapter(runner, flavor="torque", slurm_wrappers=True)
    assert adapter.status([JobId("999999")]) == {}


def test_status_unknown_job_on_pbspro_stderr_is_tolerated() -> None:
    body = (FIXTURES / "pbspro-19.0.0" / "qstat_xf_F_json_running.json").read_text()
    runner = ReplayRunner(
        [ok(body, "qstat: Unknown Job Id 12860477.meta-pbs.metacentrum.cz\n", rc=153)]
    )
    adapter = PbsAdapter(runner, flavor="pbspro")
    statuses = adapter.status(
        [JobId("12860476.meta-pbs.metacentrum.cz"), JobId("12860477.meta-pbs.metacentrum.cz")]
    )
    assert list(statuses) == [JobId("12860476.meta-pbs.metacentrum.cz")]


def test_status_real_error_is_raised_and_transient() -> None:
    runner = ReplayRunner(
        [ok("", "Connection refused\nqstat: cannot connect to server pbs01 (errno=111)\n", rc=2)]
    )
    adapter = PbsAdapter(runner, flavor="pbspro")
    with pytest.raises(CommandFailed) as info:
        adapter.status([JobId("1.pbs01")])
    assert info.value.transient is True


def test_status_matches_requested_spelling_and_expands_arrays() -> None:
    text = (
        "Job Id: 7[].pbs01.example.org\n    job_state = B\n"
        "Job Id: 7[0].pbs01.example.org\n    job_state = R\n"
        "Job Id: 7[1].pbs01.example.org\n    job_state = Q\n"
        "Job Id: 8.pbs01.example.org\n    job_state = H\n    substate = 22\n"
    )
    runner = ReplayRunner([ok(text)])
    adapter = PbsAdapter(runner, flavor="torque")
    statuses = adapter.status([JobId("7[].pbs01"), JobId("8.pbs01")])
    assert runner.calls == [("qstat", "-f", "-t", "7[].pbs01", "8.pbs01")]
    assert {k: v.state for k, v in statuses.items()} == {
        JobId("7[].pbs01"): JobState.RUNNING,
        JobId("7[].pbs01", 0): JobState.RUNNING,
        JobId("7[].pbs01", 1): JobState.PENDING,
        JobId("8.pbs01"): JobState.PENDING,  # held by its dependency, not by anyone
    }


def test_accounting_uses_history_on_pbspro() -> None:
    runner = ReplayRunner([ok('{"Jobs": {"5.s": {"job_state": "F", "Exit_status": -29}}}')])
    adapter = PbsAdapter(runner, flavor="pbspro")
    (record,) = adapter.accounting([JobId("5.s")])
    assert runner.calls == [("qstat", "-f", "-F", "json", "-x", "5.s")]
    assert record.state == JobState.TIMEOUT


def test_cancel_tolerates_finished_and_unknown_ids() -> None:
    pbspro = ReplayRunner([ok("", "qdel: Job has finished 3.s\nqdel: Unknown Job Id 4.s\n", 35)])
    PbsAdapter(pbspro).cancel([JobId("3.s"), JobId("4.s")])
    assert pbspro.calls == [("qdel", "3.s", "4.s")]
    wrapper = ReplayRunner([captured("qdel_missing")])
    PbsAdapter(wrapper, flavor="torque", slurm_wrappers=True).cancel([JobId("999999")])
    bad = ReplayRunner([ok("qdel: Kill job error on job id 5: Access/permission denied\n", "", 1)])
    with pytest.raises(CommandFailed):
        PbsAdapter(bad, flavor="torque", slurm_wrappers=True).cancel([JobId("5")])


def test_find_by_name_scans_one_qstat() -> None:
    runner = ReplayRunner([captured("qstat_f_all")])
    adapter = PbsAdapter(runner, flavor="torque", slurm_wrappers=True, user="root")
    found = adapter.find_by_name("hpcgate_cap_fail")
    assert found == [JobId("98")]
    assert runner.calls == [("qstat", "-f")]  # no -u: the wrapper prints a table with -u


def test_node_metrics_falls_back_to_text() -> None:
    runner = ReplayRunner([captured("pbsnodes_a_F_json"), captured("pbsnodes_a")])
    (node,) = PbsAdapter(runner, flavor="pbspro").node_metrics()
    assert node.name == "vm"
    assert runner.calls == [("pbsnodes", "-a", "-F", "json"), ("pbsnodes", "-a")]


def test_detect_wrappers_from_qsub_version() -> None:
    runner = ReplayRunner([captured("qsub_version")])
    adapter = PbsAdapter.detect(runner)
    assert (adapter.flavor, adapter.slurm_wrappers, adapter.uses_json) == ("torque", True, False)


def test_capabilities() -> None:
    assert PbsAdapter.capabilities == ALL_CAPABILITIES
    real = PbsAdapter(ReplayRunner([]), flavor="torque")
    assert real.capabilities == ALL_CAPABILITIES
    assert real.unsupported_reasons == {}
    wrapped = PbsAdapter(ReplayRunner([]), flavor="torque", slurm_wrappers=True)
    assert wrapped.capabilities == ALL_CAPABILITIES - set(WRAPPER_GAPS)
    assert set(wrapped.unsupported_reasons) == set(WRAPPER_GAPS)
    assert {"submit", "status", "cancel", "release", "dependencies", "find_by_name"} <= (
        wrapped.capabilities
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"flavor": "pbspro", "slurm_wrappers": True},
        {"flavor": "torque", "output": "json"},
        {"flavor": "lsf"},
        {"output": "yaml"},
    ],
)
def test_bad_options(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        PbsAdapter(ReplayRunner([]), **kwargs)  # type: ignore[arg-type]
