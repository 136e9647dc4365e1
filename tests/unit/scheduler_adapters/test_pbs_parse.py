"""PBS/Torque parsers against captured real output (tests/fixtures/scheduler_output/).

Expected values were written by reading each fixture file by hand; the source of
every file is in tests/fixtures/scheduler_output/PBS_SOURCES.md.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler_adapters.errors import OutputParseError
from scheduler_adapters.pbs import pbsnodes, qstat, qsub, records, states, values
from scheduler_adapters.pbs.commands import Flavor
from scheduler_adapters.types import CommandResult, JobId, JobState

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "scheduler_output"


def read(relative: str) -> str:
    return (FIXTURES / relative).read_text()


def jobs_by_id(relative: str) -> dict[str, qstat.PbsJob]:
    text = read(relative)
    jobs = qstat.parse_qstat(text, json_format=relative.endswith(".json"))
    return {job.native_id: job for job in jobs}


# ------------------------------------------------------------------ qstat status
# (file, native id, job id, native state, flavor, normalized state, name, reason)
STATUS_CASES = [
    (
        "pbspro-unknown-version/qstat_f_running.txt",
        "171390152.mycluster",
        JobId("171390152.mycluster"),
        "R",
        "pbspro",
        JobState.RUNNING,
        "script.sh",
        "Job run at Wed Jun 17 at 04:57 on "
        "(mycluster-cpu-0686:ncpus=1:mem=512000kb:jobfs=102400kb)",
    ),
    (
        "pbspro-unknown-version/qstat_f_queued.txt",
        "171390152.mycluster",
        JobId("171390152.mycluster"),
        "Q",
        "pbspro",
        JobState.PENDING,
        "script.sh",
        None,
    ),
    (
        "pbspro-unknown-version/qstat_f_multiline_func.txt",
        "171389798.mycluster",
        JobId("171389798.mycluster"),
        "Q",
        "pbspro",
        JobState.PENDING,
        "script.sh",
        None,
    ),
    (
        "pbspro-19.0.0/qstat_xf_F_json_running.json",
        "12860476.meta-pbs.metacentrum.cz",
        JobId("12860476.meta-pbs.metacentrum.cz"),
        "R",
        "pbspro",
        JobState.RUNNING,
        "swrap_01",
        "Job run at Tue Oct 04 at 21:23 on (charon24:ncpus=2:mem=4194304kb)"
        "+(charon21:ncpus=2:mem=4194304kb)",
    ),
    (
        "pbspro-2022.1.1/qstat_f_F_json_excerpt.json",
        "359322.polaris-pbs-01.hsn.cm.polaris.alcf.anl.gov",
        JobId("359322.polaris-pbs-01.hsn.cm.polaris.alcf.anl.gov"),
        "Q",
        "pbspro",
        JobState.PENDING,
        "STDIN",
        "Not Running: Job is requesting an exclusive node and node is in use",
    ),
    (
        # held by the system after 21 failed starts; Exit_status -3 does not make it final
        "pbspro-2022.1.1/qstat_f_F_json_excerpt.json",
        "412020.polaris-pbs-01.hsn.cm.polaris.alcf.anl.gov",
        JobId("412020.polaris-pbs-01.hsn.cm.polaris.alcf.anl.gov"),
        "H",
        "pbspro",
        JobState.HELD,
        "pyannote",
        "Hold_Types=s: job held, too many failed attempts to run",
    ),
    (
        "pbspro-2022.1.7/qstat_x_f_F_json_excerpt.json",
        "4345644.aurora-pbs-0001.hostmgmt.cm.aurora.alcf.anl.gov",
        JobId("4345644.aurora-pbs-0001.hostmgmt.cm.aurora.alcf.anl.gov"),
        "H",
        "pbspro",
        JobState.HELD,
        "rfm_FCMA_SOW",
        "Hold_Types=s: job held, too many failed attempts to run",
    ),
    (
        "torque-unknown-version/qstat_f_completed.txt",
        "9.torque01.bcgsc.ca",
        JobId("9.torque01.bcgsc.ca"),
        "C",
        "torque",
        JobState.COMPLETED,
        "subtest.sh",
        "Job started on Tue May 29 at 09:37",
    ),
    (
        "torque-unknown-version/qstat_f_array_task_dependency_deleted.txt",
        "48[1].torque01.bcgsc.ca",
        JobId("48[].torque01.bcgsc.ca", 1),
        "C",
        "torque",
        JobState.DEPENDENCY_NEVER_SATISFIED,
        "MA_mock-A47933_batch-JT3CUggKXNStHcoFXYaGR3-1",
        "Job 48[].torque01.bcgsc.ca deleted because its dependency of array "
        "43[].torque01.bcgsc.ca can never be satisfied",
    ),
    (
        "torque-wrappers-slurm-22.05/qstat_f_selected.txt",
        "93",
        JobId("93"),
        "R",
        "torque",
        JobState.RUNNING,
        "hpcgate_cap_sleep",
        None,
    ),
    (
        "torque-wrappers-slurm-22.05/qstat_f_selected.txt",
        "94",
        JobId("94"),
        "Q",
        "torque",
        JobState.PENDING,
        "hpcgate_cap_sleep",
        None,
    ),
    # submitted with qsub -h: Slurm holds it, the wrapper still prints Q
    (
        "torque-wrappers-slurm-22.05/qstat_f_selected.txt",
        "95",
        JobId("95"),
        "Q",
        "torque",
        JobState.PENDING,
        "hpcgate_cap_sleep",
        None,
    ),
    # exit 3 in Slurm; the wrapper prints C and no exit status: never COMPLETED
    (
        "torque-wrappers-slurm-22.05/qstat_f_selected.txt",
        "98",
        JobId("98"),
        "C",
        "torque",
        JobState.UNKNOWN,
        "hpcgate_cap_fail",
        "finished (C); no exit status reported",
    ),
    (
        "torque-wrappers-slurm-22.05/qstat_f_after_qdel.txt",
        "94",
        JobId("94"),
        "C",
        "torque",
        JobState.UNKNOWN,
        "hpcgate_cap_sleep",
        "finished (C); no exit status reported",
    ),
    (
        "torque-wrappers-slurm-22.05/qstat_f_after_qrls.txt",
        "95",
        JobId("95"),
        "R",
        "torque",
        JobState.RUNNING,
        "hpcgate_cap_sleep",
        None,
    ),
]


@pytest.mark.parametrize(
    ("relative", "native", "job_id", "native_state", "flavor", "state", "name", "reason"),
    STATUS_CASES,
    ids=[f"{c[0].split('/')[-1]}:{c[1]}" for c in STATUS_CASES],
)
def test_status_from_captured_qstat(
    relative: str,
    native: str,
    job_id: JobId,
    native_state: str,
    flavor: Flavor,
    state: JobState,
    name: str,
    reason: str | None,
) -> None:
    job = jobs_by_id(relative)[native]
    status = records.to_status(job, flavor)
    assert status.job_id == job_id
    assert status.native_state == native_state
    assert status.state == state
    assert status.name == name
    assert status.reason == reason


def test_job_counts_per_file() -> None:
    assert list(jobs_by_id("pbspro-2022.1.1/qstat_f_F_json_excerpt.json")) == [
        "359322.polaris-pbs-01.hsn.cm.polaris.alcf.anl.gov",
        "412020.polaris-pbs-01.hsn.cm.polaris.alcf.anl.gov",
    ]
    assert list(jobs_by_id("torque-wrappers-slurm-22.05/qstat_f_selected.txt")) == [
        "93",
        "94",
        "95",
        "98",
    ]


def test_pbspro_text_joins_tab_continuations() -> None:
    job = jobs_by_id("pbspro-unknown-version/qstat_f_running.txt")["171390152.mycluster"]
    assert job.get("Resource_List.select") == (
        "1:ncpus=1:mpiprocs=1:mem=524288000:job_tags=normal:jobfs=104857600"
    )
    assert job.get("Resource_List.walltime") == "10:00:00"
    assert (
        job.get(
            "Variable_List",
        )
        is not None
    )
    assert job.get(
        "Variable_List",
    ).endswith(  # type: ignore[union-attr]
        "PBS_O_QUEUE=normal,PBS_JOBFS=/jobfs/171390152.mycluster"
    )
    assert job.get("Submit_Host") == "user@mycluster.cluster"


def test_pbspro_text_keeps_real_newlines_of_exported_functions() -> None:
    job = jobs_by_id("pbspro-unknown-version/qstat_f_multiline_func.txt")["171389798.mycluster"]
    variables = job.get("Variable_List") or ""
    assert (
        "BASH_FUNC_my_func_multiline%%=() {  if true; then\n echo foo; else\n echo bar; fi\n}"
        in variables
    )
    assert variables.endswith(",_=/opt/pbs/default/bin/qsub,PBS_O_QUEUE=normal")
    # the attribute after the multi-line value is still an attribute
    assert job.get("etime") == "Wed Jun 17 04:50:46 2026"


def test_torque_text_joins_eight_space_continuations() -> None:
    job = jobs_by_id("torque-unknown-version/qstat_f_completed.txt")["9.torque01.bcgsc.ca"]
    assert job.get("Error_Path") == (
        "torque01.bcgsc.ca:/projects/trans_scratch/validations/workspace/creisle/temp/subtest.sh.e9"
    )
    assert job.get("request_version") == "1"  # after a blank line inside the block
    assert job.exit_status == 0


def test_torque_array_task_fields() -> None:
    job = jobs_by_id("torque-unknown-version/qstat_f_array_task_dependency_deleted.txt")[
        "48[1].torque01.bcgsc.ca"
    ]
    assert job.array_job_id == "48[].torque01.bcgsc.ca"
    assert job.get("depend") == "afterokarray:43[].torque01.bcgsc.ca"
    assert job.exit_status == 271
    verdict = states.classify(job, "torque")
    assert (verdict.exit_code, verdict.signal) == (None, 15)
    assert (job.get("Variable_List") or "").endswith("`/usr/bin/modulecmd bash $*`\\\n}")


def test_json_numbers_become_text() -> None:
    job = jobs_by_id("pbspro-2022.1.7/qstat_x_f_F_json_excerpt.json")[
        "4345644.aurora-pbs-0001.hostmgmt.cm.aurora.alcf.anl.gov"
    ]
    assert job.get("Resource_List.select") == "1"
    assert job.get("Priority") == "0"
    assert job.substate == 20
    assert job.get("estimated.exec_vnode") == "(x4516c4s6b0n0:ncpus=208)"


# -------------------------------------------------------------------- accounting
def test_accounting_torque_completed() -> None:
    job = jobs_by_id("torque-unknown-version/qstat_f_completed.txt")["9.torque01.bcgsc.ca"]
    record = records.to_accounting(job, "torque")
    assert record.state == JobState.COMPLETED
    assert record.native_state == "C Exit_status=0"
    assert record.exit_code == 0
    assert record.signal is None
    assert record.elapsed_s == 60
    assert record.cpu_time_s == 0.0
    assert record.max_rss_kb == 3624
    assert record.node_list == "torque01.bcgsc.ca"
    assert record.start == datetime(2018, 5, 29, 9, 37, 1)
    assert record.end == datetime(2018, 5, 29, 9, 38, 1)
    assert record.name == "subtest.sh"
    assert record.raw_id == "9.torque01.bcgsc.ca"


def test_accounting_pbspro_running_text() -> None:
    job = jobs_by_id("pbspro-unknown-version/qstat_f_running.txt")["171390152.mycluster"]
    record = records.to_accounting(job, "pbspro")
    assert record.state == JobState.RUNNING
    assert record.native_state == "R"
    assert record.elapsed_s == 10
    assert record.cpu_time_s == 0.0
    assert record.max_rss_kb == 0
    assert record.node_list == "mycluster-cpu-0686"
    assert record.start == datetime(2026, 6, 17, 4, 57, 53)
    assert record.end is None


def test_accounting_pbspro_json_multi_host() -> None:
    job = jobs_by_id("pbspro-19.0.0/qstat_xf_F_json_running.json")[
        "12860476.meta-pbs.metacentrum.cz"
    ]
    record = records.to_accounting(job, "pbspro")
    assert record.node_list == "charon24,charon21"
    assert record.start == datetime(2022, 10, 4, 21, 23, 33)
    assert record.elapsed_s is None  # no resources_used yet
    assert record.exit_code is None


def test_accounting_held_job_has_no_end_and_no_exit() -> None:
    job = jobs_by_id("pbspro-2022.1.1/qstat_f_F_json_excerpt.json")[
        "412020.polaris-pbs-01.hsn.cm.polaris.alcf.anl.gov"
    ]
    record = records.to_accounting(job, "pbspro")
    assert record.state == JobState.HELD
    assert record.native_state == "H"
    assert record.exit_code is None
    assert record.start == datetime(2023, 2, 10, 17, 2, 23)
    assert record.end is None


def test_accounting_wrapper_reads_slurm_times() -> None:
    job = jobs_by_id("torque-wrappers-slurm-22.05/qstat_f_selected.txt")["98"]
    record = records.to_accounting(job, "torque", slurm_wrappers=True)
    assert record.state == JobState.UNKNOWN
    assert record.native_state == "C"
    assert record.start == datetime(2026, 11, 30, 13, 55, 38)
    assert record.end == datetime(2026, 11, 30, 13, 55, 38)
    assert record.node_list == "vm"
    running = records.to_accounting(
        jobs_by_id("torque-wrappers-slurm-22.05/qstat_f_selected.txt")["93"],
        "torque",
        slurm_wrappers=True,
    )
    assert running.end is None  # ctime of a running job is Slurm's *expected* end


# ----------------------------------------------------------------- final states
def synthetic(state: str, **attrs: str) -> qstat.PbsJob:
    """A job record with just the attributes a classification reads (not captured data)."""
    return qstat.PbsJob("7.srv", JobId("7.srv"), state, {"job_state": state, **attrs})


CLASSIFY_CASES = [
    # (state, attrs, flavor, expected state, exit code, signal)
    ("F", {"Exit_status": "0"}, "pbspro", JobState.COMPLETED, 0, None),
    ("F", {"Exit_status": "3"}, "pbspro", JobState.FAILED, 3, None),
    ("F", {"Exit_status": "-29"}, "pbspro", JobState.TIMEOUT, None, None),
    ("F", {"Exit_status": "-27"}, "pbspro", JobState.OUT_OF_MEMORY, None, None),
    ("F", {"Exit_status": "-26"}, "pbspro", JobState.OUT_OF_MEMORY, None, None),
    ("F", {"Exit_status": "-11"}, "pbspro", JobState.FAILED, None, None),  # JOB_EXEC_RERUN
    ("F", {"Exit_status": "-20"}, "pbspro", JobState.NODE_FAIL, None, None),
    ("C", {"exit_status": "-11"}, "torque", JobState.TIMEOUT, None, None),  # OVERLIMIT_WT
    ("C", {"exit_status": "-10"}, "torque", JobState.OUT_OF_MEMORY, None, None),
    ("F", {"Exit_status": "271"}, "pbspro", JobState.FAILED, None, 15),
    (
        "F",
        {"Exit_status": "271", "comment": "job killed: walltime 65 exceeded limit 60"},
        "pbspro",
        JobState.TIMEOUT,
        None,
        15,
    ),
    (
        "F",
        {"Exit_status": "265", "comment": "job killed: mem 2097152kb exceeded limit 1048576kb"},
        "pbspro",
        JobState.OUT_OF_MEMORY,
        None,
        9,
    ),
    ("F", {"Exit_status": "271", "substate": "91"}, "pbspro", JobState.CANCELLED, None, 15),
    ("F", {"substate": "91"}, "pbspro", JobState.CANCELLED, None, None),
    ("F", {}, "pbspro", JobState.UNKNOWN, None, None),
    ("X", {"Exit_status": "0"}, "pbspro", JobState.COMPLETED, 0, None),
    ("H", {"substate": "22"}, "pbspro", JobState.PENDING, None, None),  # dependency hold
    ("H", {"substate": "20", "Hold_Types": "u"}, "pbspro", JobState.HELD, None, None),
    ("E", {}, "pbspro", JobState.COMPLETING, None, None),
    ("B", {}, "pbspro", JobState.RUNNING, None, None),
    ("W", {}, "torque", JobState.PENDING, None, None),
    ("M", {}, "pbspro", JobState.UNKNOWN, None, None),
    ("Z", {}, "pbspro", JobState.UNKNOWN, None, None),
]


@pytest.mark.parametrize(("state", "attrs", "flavor", "expected", "code", "signal"), CLASSIFY_CASES)
def test_classify(
    state: str,
    attrs: dict[str, str],
    flavor: Flavor,
    expected: JobState,
    code: int | None,
    signal: int | None,
) -> None:
    verdict = states.classify(synthetic(state, **attrs), flavor)
    assert verdict.state == expected
    assert verdict.exit_code == code
    assert verdict.signal == signal


def test_same_code_means_different_things_per_flavor() -> None:
    job = synthetic("F", Exit_status="-11")
    assert states.classify(job, "pbspro").state == JobState.FAILED
    assert states.classify(job, "torque").state == JobState.TIMEOUT


def test_finished_job_is_never_completed_without_exit_zero() -> None:
    for state in ("F", "X", "C"):
        assert states.classify(synthetic(state), "pbspro").state != JobState.COMPLETED


# ---------------------------------------------------------------------- nodes
def test_pbsnodes_json_polaris() -> None:
    nodes = {
        n.name: n
        for n in pbsnodes.parse_pbsnodes_json(
            read("pbspro-2022.1.1/pbsnodes_a_F_json_excerpt.json")
        )
    }
    assert list(nodes) == ["x3006c0s13b1n0", "x3008c0s37b1n0", "x3009c0s19b0n0"]
    free, busy, down = nodes.values()
    assert (free.state, free.cpus_total, free.cpus_allocated) == ("free", 64, 0)
    assert (busy.state, busy.cpus_total, busy.cpus_allocated) == ("job-exclusive", 64, 1)
    assert (down.state, down.cpus_allocated) == ("down", 0)
    assert free.memory_total_mb == 527672488 // 1024
    assert free.memory_allocated_mb is None
    assert free.memory_free_mb is None
    assert free.cpu_load is None


def test_pbsnodes_text_torque() -> None:
    nodes = pbsnodes.parse_pbsnodes_text(read("torque-unknown-version/pbsnodes_a.txt"))
    assert [n.name for n in nodes] == ["e1165", "e1166"]
    idle, full = nodes
    assert (idle.state, idle.cpus_total, idle.cpus_allocated) == ("free", 40, 0)
    assert (full.state, full.cpus_total, full.cpus_allocated) == ("job-exclusive", 40, 40)
    assert idle.cpu_load == 0.0
    assert full.cpu_load == 0.17
    assert idle.memory_total_mb == 66071900 // 1024
    assert idle.memory_free_mb == 75062044 // 1024  # Torque's availmem includes swap
    assert full.memory_free_mb == 75077452 // 1024


def test_pbsnodes_text_slurm_wrapper() -> None:
    (node,) = pbsnodes.parse_pbsnodes_text(read("torque-wrappers-slurm-22.05/pbsnodes_a.txt"))
    assert (node.name, node.state, node.cpus_total) == ("vm", "mixed", 8)
    assert node.memory_total_mb == 4096
    assert node.memory_free_mb is None
    assert node.cpus_allocated == 0  # the wrapper prints no jobs line: allocation unknown
    assert node.cpu_load is None


def test_torque_slot_ranges() -> None:
    text = "n1\n     state = job-exclusive\n     np = 28\n     jobs = 0-13/307.srv,14-27/308.srv\n"
    (node,) = pbsnodes.parse_pbsnodes_text(text)
    assert node.cpus_allocated == 28


# ----------------------------------------------------------------------- qsub
@pytest.mark.parametrize(
    ("relative", "expected"),
    [
        ("pbspro-unknown-version/qsub.txt", JobId("1.pbs")),
        ("torque-unknown-version/qsub.txt", JobId("141.torque01.bcgsc.ca")),
        ("torque-unknown-version/qsub_array.txt", JobId("142[].torque01.bcgsc.ca")),
        ("torque-wrappers-slurm-22.05/qsub_plain.txt", JobId("93")),
        ("torque-wrappers-slurm-22.05/qsub_array_J.txt", JobId("96")),
    ],
)
def test_parse_qsub(relative: str, expected: JobId) -> None:
    assert qsub.parse_qsub(read(relative)) == expected


def test_parse_qsub_rejects_wrapper_error_text() -> None:
    with pytest.raises(OutputParseError):
        qsub.parse_qsub(read("torque-wrappers-slurm-22.05/qsub_bad_queue.txt"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1234.pbs01", JobId("1234.pbs01")),
        ("123[].srv.example.org", JobId("123[].srv.example.org")),
        ("123[4].srv.example.org", JobId("123[].srv.example.org", 4)),
        ("48[1].torque01.bcgsc.ca", JobId("48[].torque01.bcgsc.ca", 1)),
        ("55", JobId("55")),
        (" 56\n", JobId("56")),
    ],
)
def test_parse_job_id(text: str, expected: JobId) -> None:
    assert values.parse_job_id(text) == expected


@pytest.mark.parametrize("text", ["", "abc", "12 34", "[1].srv", "12[x].srv", "12.", "12;rm"])
def test_parse_job_id_rejects(text: str) -> None:
    with pytest.raises(OutputParseError):
        values.parse_job_id(text)


def test_job_key_ignores_server_spelling() -> None:
    assert values.job_key(JobId("12.pbs01")) == values.job_key(JobId("12.pbs01.example.org"))
    assert values.job_key(JobId("12[].a", 3)) == ("12", 3, True)
    assert values.job_key(JobId("12[].a")) != values.job_key(JobId("12.a"))


# ---------------------------------------------------------------- small values
@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("00:01:50", 110.0),
        ("4090:56:03", 4090 * 3600 + 56 * 60 + 3.0),
        ("01:02", 62.0),
        ("60.481239", 60.481239),
        ("0", 0.0),
        ("1:00:00.5", 3600.5),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert values.parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "kb"),
    [
        ("13378420kb", 13378420),
        ("0b", 0),
        ("524288000b", 512000),
        ("8gb", 8 * 1024 * 1024),
        ("12000mb", 12000 * 1024),
        ("524288000", 512000),
        ("1TB", 1 << 30),
    ],
)
def test_parse_size_kb(text: str, kb: int) -> None:
    assert values.parse_size_kb(text) == kb


@pytest.mark.parametrize("text", ["", "1kw", "-5kb", "kb", "1.5gb"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        values.parse_size_kb(text)


def test_parse_pbs_time_double_space_day_and_epoch() -> None:
    assert values.parse_pbs_time("Tue Apr  9 15:01:47 2013") == datetime(2013, 4, 9, 15, 1, 47)
    assert values.parse_pbs_time("1302534343").year == 2011


# ------------------------------------------------------------ probes and errors
def test_qsub_version_probe_on_wrappers() -> None:
    base = FIXTURES / "torque-wrappers-slurm-22.05"
    result = CommandResult(
        ("qsub", "--version"),
        int((base / "qsub_version.rc").read_text()),
        (base / "qsub_version.txt").read_text(),
        (base / "qsub_version.stderr").read_text(),
    )
    assert qsub.parse_qsub_version(result) == ("torque", True, None)
    assert qsub.is_unknown_option(result)


def test_qsub_version_probe_pbspro_and_torque_formats() -> None:
    pbspro = CommandResult(("qsub", "--version"), 0, "pbs_version = 2022.1.1\n", "")
    torque = CommandResult(("qsub", "--version"), 0, "Version: 6.1.2\nCommit: abc\n", "")
    assert qsub.parse_qsub_version(pbspro) == ("pbspro", False, "2022.1.1")
    assert qsub.parse_qsub_version(torque) == ("torque", False, "6.1.2")
    with pytest.raises(OutputParseError):
        qsub.parse_qsub_version(CommandResult(("qsub",), 1, "", "bash: qsub: not found"))


@pytest.mark.parametrize("name", ["qstat_f_F_json", "qstat_x_f", "pbsnodes_a_F_json"])
def test_wrapper_refuses_pbspro_options(name: str) -> None:
    base = FIXTURES / "torque-wrappers-slurm-22.05"
    result = CommandResult(
        ("qstat",),
        int((base / f"{name}.rc").read_text()),
        (base / f"{name}.txt").read_text(),
        (base / f"{name}.stderr").read_text(),
    )
    assert result.returncode == 2
    assert qsub.is_unknown_option(result)


def test_wrapper_missing_job_is_silent_153() -> None:
    base = FIXTURES / "torque-wrappers-slurm-22.05"
    assert (base / "qstat_f_missing.rc").read_text().strip() == "153"
    assert qstat.parse_qstat_text((base / "qstat_f_missing.txt").read_text()) == []


@pytest.mark.parametrize(
    "text",
    [
        "    job_state = R\n",  # attribute before any Job Id
        "Job Id: 1.srv\n    Job_Name = x\n",  # no job_state
        "Job Id: not-an-id\n    job_state = R\n",
        "Job id  Name  User\n----- ---- ----\n1 a b\n",  # the qstat table, not -f
        "Job Id: 1.srv\ncontinuation without attribute\n",
    ],
)
def test_text_garbage_raises(text: str) -> None:
    with pytest.raises(OutputParseError):
        qstat.parse_qstat_text(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "{",
        "[]",
        '{"Jobs": []}',
        '{"Jobs": {"1.srv": 3}}',
        '{"Jobs": {"1.srv": {}}}',
        '{"Jobs": {"x": {"job_state": "R"}}}',
        '{"Jobs": {"1.s": {"job_state": "R", "a": {"b": {}}}}}',
    ],
)
def test_json_garbage_raises(text: str) -> None:
    with pytest.raises(OutputParseError):
        qstat.parse_qstat_json(text)


def test_json_without_jobs_is_empty() -> None:
    # Gadi (and OpenPBS generally) omit "Jobs" when nothing matches
    assert qstat.parse_qstat_json('{"timestamp":1,"pbs_version":"2022.1.1","pbs_server":"s"}') == []


# ---------------------------------------------------------- hypothesis properties
ANY_TEXT = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=400)
QSTATISH = st.lists(
    st.sampled_from(
        [
            "Job Id: 1.srv",
            "Job Id:\t2",
            "    job_state = R",
            "\tjob_state = C",
            "    Job_Name = a",
            "\tcontinued",
            "        wrapped",
            "",
            " x",
            "}",
            "    exit_status = 271",
            "    Exit_status = -29",
            "    comment = job killed: walltime 5 exceeded limit 1",
        ]
    ),
    max_size=30,
).map("\n".join)


@settings(max_examples=300, deadline=None)
@given(st.one_of(ANY_TEXT, QSTATISH))
def test_text_parser_returns_jobs_or_parse_error(text: str) -> None:
    try:
        jobs = qstat.parse_qstat_text(text)
    except OutputParseError:
        return
    for job in jobs:
        assert isinstance(records.to_status(job, "torque").state, JobState)
        assert isinstance(records.to_accounting(job, "pbspro").state, JobState)


JSONISH = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8)),
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        ANY_TEXT,
        JSONISH.map(json.dumps),
        st.dictionaries(st.sampled_from(["Jobs", "nodes"]), JSONISH).map(json.dumps),
    )
)
def test_json_parsers_return_records_or_parse_error(text: str) -> None:
    for parser in (qstat.parse_qstat_json, pbsnodes.parse_pbsnodes_json):
        try:
            records = parser(text)
        except OutputParseError:
            continue
        assert isinstance(records, list)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        ANY_TEXT,
        st.lists(
            st.sampled_from(
                [
                    "n1",
                    "    state = free",
                    "    np = 4",
                    "    jobs = 0/1.s,1-2/2.s",
                    "    np = x",
                    "    status = physmem=10kb,loadave=abc",
                    "",
                    "  bad",
                ]
            ),
            max_size=12,
        ).map("\n".join),
    )
)
def test_pbsnodes_text_returns_records_or_parse_error(text: str) -> None:
    try:
        nodes = pbsnodes.parse_pbsnodes_text(text)
    except OutputParseError:
        return
    for node in nodes:
        assert node.cpus_allocated >= 0


@settings(max_examples=200, deadline=None)
@given(ANY_TEXT)
def test_qsub_parser_returns_id_or_parse_error(text: str) -> None:
    try:
        job_id = qsub.parse_qsub(text)
    except OutputParseError:
        return
    assert job_id.value
