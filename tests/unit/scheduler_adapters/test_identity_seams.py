"""Issue 15 seams: the job environment allow-list, ``sudo -n -u`` argv, ACL hand-over."""

from __future__ import annotations

import os
import pwd
from pathlib import PurePosixPath
from typing import Any

import pytest

from scheduler_adapters.environment import (
    BASE_NAMES,
    allowed_environment,
    check_names,
    command_environment,
    job_environment,
    passable_names,
)
from scheduler_adapters.runners.identity import check_account, sudo_argv
from scheduler_adapters.slurm import commands
from scheduler_adapters.slurm.adapter import SlurmAdapter
from scheduler_adapters.types import CommandResult, JobId

SOURCE = {
    "PATH": "/usr/bin:/bin",
    "HOME": "/root",
    "LANG": "C.UTF-8",
    "LC_TIME": "en_GB.UTF-8",
    "TZ": "UTC",
    "HPCGATE_SECRET_KEY": "s3cret",
    "HPCGATE_DATABASE_URL": "postgresql://u:p@h/db",
    "HPCGATE_SMTP__PASSWORD": "mailpw",
    "AWS_SECRET_ACCESS_KEY": "aws",
    "SLURM_CONF": "/etc/slurm/slurm.conf",
    "SLURM_JOB_ID": "17",
    "SITE_LICENSE": "27000@lic",
}


def test_only_basic_names_pass() -> None:
    env = allowed_environment(SOURCE)
    assert env == {k: SOURCE[k] for k in ("PATH", "HOME", "LANG", "LC_TIME", "TZ")}


def test_admin_names_pass_but_reserved_never() -> None:
    assert allowed_environment(SOURCE, ["SITE_LICENSE"])["SITE_LICENSE"] == "27000@lic"
    for bad in ("HPCGATE_SECRET_KEY", "SLURM_JOB_ID", "PBS_JOBID", "1X", "A-B", "", "A B"):
        with pytest.raises(ValueError):
            check_names([bad])


def test_command_environment_keeps_client_config_only() -> None:
    env = command_environment(SOURCE)
    assert env["SLURM_CONF"] == "/etc/slurm/slurm.conf"
    assert not {"HPCGATE_SECRET_KEY", "SLURM_JOB_ID", "AWS_SECRET_ACCESS_KEY"} & env.keys()


def test_job_environment_describes_the_account() -> None:
    me = pwd.getpwuid(os.getuid()).pw_name
    env = job_environment({"HPCGATE_SECRET_KEY": "x"}, account=me)
    assert env["USER"] == env["LOGNAME"] == me
    assert env["HOME"] == pwd.getpwnam(me).pw_dir
    assert env["PATH"]  # a default when the source has none
    assert "HPCGATE_SECRET_KEY" not in env


def test_passable_names_are_stable_and_include_basics() -> None:
    names = passable_names(["SITE_LICENSE"])
    assert names[: len(BASE_NAMES)] == BASE_NAMES
    assert names[-1] == "SITE_LICENSE"


def test_sudo_argv() -> None:
    assert sudo_argv(None, ["sbatch", "x"]) == ["sbatch", "x"]
    assert sudo_argv("hpcg-alice", ["sbatch", "x"], ["LIC"]) == [
        "sudo", "-n", "--preserve-env=LIC", "-u", "hpcg-alice", "--", "sbatch", "x",
    ]
    assert sudo_argv("hpcg-alice", ["sbatch", "x"]) == [
        "sudo", "-n", "-u", "hpcg-alice", "--", "sbatch", "x",
    ]
    for bad in ("-u", "root;id", "a b", "", "Alice", "x" * 40, "--"):
        with pytest.raises(ValueError):
            check_account(bad)


def test_sbatch_export_all() -> None:
    """--export=ALL: the job gets sbatch's own (allow-listed) environment; a list would make
    slurmd load the account's login environment into the job as well."""
    script = PurePosixPath("/s/j.sh")
    argv = commands.sbatch(script, export_all=True)
    assert "--export=ALL" in argv
    assert argv[-1] == str(script)
    assert not any(a.startswith("--export") for a in commands.sbatch(script))


class _Recorder:
    """Records argv lists; answers sbatch with a job id."""

    scratch_root = PurePosixPath("/s")

    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []

    def run(self, argv: Any, **kw: Any) -> CommandResult:
        self.calls.append(tuple(argv))
        out = "5\n" if "sbatch" in argv else ""
        return CommandResult(tuple(argv), 0, out, "")

    def write_text(self, path: PurePosixPath, text: str, *, mode: int = 0o644) -> None:
        return None


def test_run_as_prefixes_job_commands_but_not_sinfo() -> None:
    runner = _Recorder()
    adapter = SlurmAdapter(
        runner, run_as="hpcg-bob", pass_environment=["SITE_LICENSE"]  # type: ignore[arg-type]
    )
    from scheduler_adapters.types import JobSpec

    spec = JobSpec(name="j", template="generic.j2", workdir=PurePosixPath("/s/a/j"),
                   context={"command": ["true"]})
    adapter.submit(spec)
    adapter.cancel([JobId("5")])
    adapter.release(JobId("5"))
    adapter.accounting([JobId("5")])
    adapter.status([JobId("5")])
    adapter.node_metrics()
    prefix = ("sudo", "-n", "--preserve-env=SITE_LICENSE", "-u", "hpcg-bob", "--")
    job_calls = runner.calls[:-1]
    commands_run = [c[len(prefix)] for c in job_calls]
    assert commands_run == ["sbatch", "scancel", "scontrol", "sacct", "squeue"]
    assert all(c[: len(prefix)] == prefix for c in job_calls)
    assert runner.calls[-1][0] == "sinfo"
    assert "--export=ALL" in runner.calls[0]



def test_job_owners_from_squeue() -> None:
    from scheduler_adapters.slurm import parse

    sep = commands.SEP
    argv = commands.squeue_owners([JobId("9"), JobId("7", 2)])
    assert argv[-1] == "--jobs=7_2,9"
    assert commands.squeue_owners([JobId("9")])[-1] == "--jobs=9,9"
    assert f"--format=%A{sep}%i{sep}%u" in argv
    text = f"9{sep}9{sep}hpcg-alice\n12{sep}7_2{sep}hpcg-bob\n13{sep}7_3{sep}\n"
    assert parse.parse_owners(text) == {
        "9": "hpcg-alice", "12": "hpcg-bob", "7_2": "hpcg-bob",
    }


def test_local_job_user_setting() -> None:
    from hpcgate.settings import Settings

    base = {"env": "test", "auth": {"secret_key": "x" * 32}}
    assert Settings(**base, local={"job_user": ""}).local.job_user is None
    assert Settings(**base, local={"job_user": "hpcg-bob"}).local.job_user == "hpcg-bob"
    for bad in ("root", "-x", "a b"):
        with pytest.raises(ValueError):
            Settings(**base, local={"job_user": bad})


def test_can_execute_follows_modes() -> None:
    """The check behind the "job account cannot run our interpreter" warning."""
    import shutil
    import tempfile
    from pathlib import Path

    from hpcgate.services.job_identity import can_execute

    base = Path(tempfile.mkdtemp(prefix="hpcgate-canexec-"))  # pytest's tmp dirs are 0700
    base.chmod(0o711)
    try:
        _check_can_execute(can_execute, base)
    finally:
        shutil.rmtree(base)


def _check_can_execute(can_execute: Any, base: Any) -> None:
    tool = base / "private" / "tool"
    tool.parent.mkdir(mode=0o700)
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    other = "nobody" if os.getuid() != pwd.getpwnam("nobody").pw_uid else "root"
    assert can_execute(other, "/bin/sh") is True
    assert can_execute(other, str(tool)) is (os.getuid() == pwd.getpwnam(other).pw_uid)
    tool.parent.chmod(0o711)
    assert can_execute(other, str(tool)) is True
    assert can_execute("no-such-account-x", "/bin/sh") is False
