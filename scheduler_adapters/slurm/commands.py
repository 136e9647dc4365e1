"""Pure argv builders for the Slurm CLI (no I/O; unit-tested by value).

Formats are chosen so the parsers in :mod:`scheduler_adapters.slurm.parse` can be
strict: fields are separated by the ASCII unit separator (0x1f), which no job
name, state or reason contains in practice, instead of ``|`` (a job name may
contain ``|``, see snakemake/snakemake#2167 for the sacct variant of the trap).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import PurePosixPath

from scheduler_adapters.types import JobId

SEP = "\x1f"

# squeue -o fields (man squeue, 22.05): %i job id as shown (123, 123_4), %A raw
# job id, %F array job id, %K array task id (N/A), %T long state, %r reason,
# %j name LAST, so an 0x1f inside a name (never seen) would stay in the name.
SQUEUE_FIELDS: tuple[str, ...] = ("%i", "%A", "%F", "%K", "%T", "%r", "%j")
SQUEUE_FORMAT = SEP.join(SQUEUE_FIELDS)

# The first eleven are what older captures hold; the usage columns come last
# (scheduler_adapters/slurm/usage.py, docs/accounting.md).
SACCT_BASE_FIELDS: tuple[str, ...] = (
    "JobIDRaw", "JobID", "JobName", "State", "ExitCode", "Elapsed",
    "TotalCPU", "MaxRSS", "NodeList", "Start", "End",
)
SACCT_FIELDS: tuple[str, ...] = (*SACCT_BASE_FIELDS, "CPUTimeRAW", "AllocCPUS", "ReqMem")

# sinfo -O long names (man sinfo, 22.05). ":0<SEP>" = no padding, SEP as suffix.
SINFO_FIELDS: tuple[str, ...] = (
    "NodeList", "Partition", "StateLong", "CPUsLoad", "FreeMem", "Memory",
    "AllocMem", "CPUsState",
)
SINFO_FORMAT = ",".join(f"{f}:0{SEP}" for f in SINFO_FIELDS)

# How far back find_by_name looks in accounting (sacct -S syntax).
DEFAULT_FIND_WINDOW = "now-7days"


def sbatch(
    script: PurePosixPath,
    *,
    after_ok: Sequence[JobId] = (),
    hold: bool = False,
    workdir: PurePosixPath | None = None,
    export_all: bool = False,
) -> list[str]:
    """``sbatch --parsable``; dependencies and hold are options, not script content.

    ``--kill-on-invalid-dep=yes`` makes a dependent of a failed parent end
    CANCELLED instead of pending forever with DependencyNeverSatisfied (the
    cluster may also set DependencyParameters=kill_invalid_depend).

    ``export_all``: ``--export=ALL``, the job inherits exactly sbatch's own environment
    (plus Slurm's ``SLURM_*``). Only safe when that environment is the allow-list (the
    runners give every scheduler command ``environment.command_environment``). A list or
    ``NONE`` would look stricter but is not: Slurm then loads the account's whole login
    environment into the job (``SLURM_GET_USER_ENV``, an ``su -`` per job, which doubles a
    short job's run time).
    """
    argv = ["sbatch", "--parsable"]
    if export_all:
        argv.append("--export=ALL")
    if workdir is not None:
        argv.append(f"--chdir={workdir}")
    if after_ok:
        argv += [
            "--dependency=afterok:" + ":".join(str(j) for j in after_ok),
            "--kill-on-invalid-dep=yes",
        ]
    if hold:
        argv.append("--hold")
    argv.append(str(script))
    return argv


def sbatch_test_only(script: PurePosixPath) -> list[str]:
    """Validate a script against slurmctld without queueing it."""
    return ["sbatch", "--test-only", str(script)]


def scontrol_release(job_ids: Sequence[JobId]) -> list[str]:
    return ["scontrol", "release", ",".join(str(j) for j in job_ids)]


def scancel(job_ids: Sequence[JobId]) -> list[str]:
    return ["scancel", *(str(j) for j in job_ids)]


def squeue(job_ids: Sequence[JobId] | None = None, *, user_only: bool = True) -> list[str]:
    """One squeue call for every job; ``-t all`` keeps finished jobs (MinJobAge).

    Asking for a single unknown id makes squeue fail with "Invalid job id
    specified", while a list of ids is filtered quietly; so a single id is
    listed twice (the trick AiiDA uses, aiidateam/aiida-core#4326).
    """
    argv = ["squeue", "--noheader", "--array", "--states=all", f"--format={SQUEUE_FORMAT}"]
    if job_ids:
        ids = sorted({str(j) for j in job_ids})
        if len(ids) == 1:
            ids = ids * 2
        argv.append("--jobs=" + ",".join(ids))
    elif user_only:
        argv.append("--me")
    return argv


def squeue_by_name(name: str, *, user_only: bool = True) -> list[str]:
    argv = [
        "squeue", "--noheader", "--array", "--states=all",
        f"--format={SQUEUE_FORMAT}", f"--name={name}",
    ]
    if user_only:
        argv.append("--me")
    return argv


def sacct(job_ids: Sequence[JobId]) -> list[str]:
    """One sacct call; with ``--jobs`` sacct searches all time (no -S default of midnight)."""
    return [
        "sacct", "--parsable2", "--noheader", f"--delimiter={SEP}",
        "--format=" + ",".join(SACCT_FIELDS),
        "--jobs=" + ",".join(sorted({str(j) for j in job_ids})),
    ]


def squeue_owners(job_ids: Sequence[JobId]) -> list[str]:
    """Who owns each live job (raw id, id as shown, user): to cancel it as that user.

    The live queue, not accounting: after a reinstall, accounting still holds older jobs
    with the same ids. A single id is listed twice (see ``squeue``).
    """
    ids = sorted({str(j) for j in job_ids})
    if len(ids) == 1:
        ids = ids * 2
    return [
        "squeue", "--noheader", "--array", f"--format=%A{SEP}%i{SEP}%u", "--jobs=" + ",".join(ids),
    ]


def sacct_by_name(name: str, *, since: str = DEFAULT_FIND_WINDOW) -> list[str]:
    return [
        "sacct", "--parsable2", "--noheader", f"--delimiter={SEP}",
        "--format=" + ",".join(SACCT_FIELDS),
        f"--name={name}", f"--starttime={since}",
    ]


def sinfo_nodes(nodes: Sequence[str] | None = None) -> list[str]:
    """``sinfo -N`` prints one row per node *and partition*; the parser dedupes."""
    argv = ["sinfo", "--Node", "--noheader", f"--Format={SINFO_FORMAT}"]
    if nodes:
        argv.append("--nodes=" + ",".join(nodes))
    return argv

