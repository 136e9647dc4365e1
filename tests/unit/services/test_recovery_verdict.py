"""A job its scheduler ended at its walltime is the recovery ladder's ``incomplete``, whatever
the scheduler (issue 17): Slurm's TIMEOUT, PBS Pro's ``Exit_status = -29``
(JOB_EXEC_KILL_WALLTIME), Torque's ``-11`` (JOB_EXEC_OVERLIMIT_WT), or a MoM comment naming
the walltime. Each goes through the adapter's own parser (``qstat -f`` text in the captured
formats), the harvest's ``observe`` and ``verdict_of``. The Slurm-backed Torque wrappers
cannot show a walltime end at all (a real capture: ``C``, no exit status)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import pytest

from hpcgate.domain.states import StepState
from hpcgate.engine.observe import TIMEOUT_REASON, observe
from hpcgate.engine.work import ActiveStep, StepObservation
from hpcgate.services.recovery import verdict_of
from scheduler_adapters.pbs import qstat, records
from scheduler_adapters.pbs.commands import Flavor
from scheduler_adapters.types import AccountingRecord, JobId, JobState, JobStatus

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "scheduler_output"


@dataclass
class _Runner:
    def exists(self, path: PurePosixPath) -> bool:
        return False  # killed: no exit code file, no validation written

    def read_text(self, path: PurePosixPath, max_bytes: int) -> str:
        raise FileNotFoundError(path)


@dataclass
class _Adapter:
    acct: list[AccountingRecord]
    runner: _Runner = field(default_factory=_Runner)

    def status(self, ids: list[JobId]) -> dict[JobId, JobStatus]:
        return {}

    def accounting(self, ids: list[JobId]) -> list[AccountingRecord]:
        return list(self.acct)


def _observed(record: AccountingRecord) -> StepObservation:
    step = ActiveStep(1, 1, record.job_id.value, "/w/1", StepState.RUNNING, None)
    (obs,) = observe(_Adapter([record]), [step])  # type: ignore[arg-type]
    return obs


def _finished(relative: str, flavor: Flavor, edit: dict[str, str]) -> AccountingRecord:
    """A captured ``qstat -f`` with its end attributes set as the server sets them at a
    walltime kill (``key = value`` lines replaced or added, the capture's own indent)."""
    text = (FIXTURES / relative).read_text()
    indent = re.search(r"^(\s+)job_state = ", text, re.M)
    assert indent is not None
    for key, value in edit.items():
        line = f"{indent.group(1)}{key} = {value}"
        text, n = re.subn(rf"(?m)^\s+{re.escape(key)} = .*$", line, text)
        if not n:
            text = text.rstrip("\n") + "\n" + line + "\n"
    (job,) = qstat.parse_qstat_text(text)
    return records.to_accounting(job, flavor)


@pytest.mark.parametrize(
    ("relative", "flavor", "edit"),
    [
        (  # PBS Pro / OpenPBS history: F with JOB_EXEC_KILL_WALLTIME
            "pbspro-unknown-version/qstat_f_running.txt",
            "pbspro",
            {"job_state": "F", "Exit_status": "-29"},
        ),
        (  # an older PBS server: SIGTERM (256 + 15) and the MoM's comment
            "pbspro-unknown-version/qstat_f_running.txt",
            "pbspro",
            {"job_state": "F", "Exit_status": "271",
             "comment": "job killed: walltime 65 exceeded limit 60"},
        ),
        (  # Torque: C with JOB_EXEC_OVERLIMIT_WT
            "torque-unknown-version/qstat_f_completed.txt",
            "torque",
            {"exit_status": "-11"},
        ),
    ],
)  # fmt: skip
def test_a_pbs_walltime_end_is_incomplete(
    relative: str, flavor: Flavor, edit: dict[str, str]
) -> None:
    record = _finished(relative, flavor, edit)
    assert record.state is JobState.TIMEOUT
    assert not (record.native_state or "").upper().startswith("TIMEOUT")  # PBS words
    obs = _observed(record)
    assert obs.state is StepState.FAILED
    assert obs.reason == TIMEOUT_REASON
    assert verdict_of(obs) == "incomplete"
    # and across the agent's wire
    assert verdict_of(StepObservation.from_dict(obs.to_dict())) == "incomplete"


@pytest.mark.parametrize(
    ("relative", "flavor", "edit"),
    [
        ("torque-unknown-version/qstat_f_completed.txt", "torque", {}),  # exit_status = 0
        ("torque-unknown-version/qstat_f_completed.txt", "torque", {"exit_status": "271"}),
        ("pbspro-unknown-version/qstat_f_running.txt", "pbspro",
         {"job_state": "F", "Exit_status": "-27"}),  # JOB_EXEC_KILL_MEM
    ],
)  # fmt: skip
def test_other_pbs_ends_are_not_incomplete(
    relative: str, flavor: Flavor, edit: dict[str, str]
) -> None:
    assert verdict_of(_observed(_finished(relative, flavor, edit))) is None


def test_slurm_timeout_is_incomplete() -> None:
    record = AccountingRecord(JobId("7"), JobState.TIMEOUT, "TIMEOUT", exit_code=0)
    assert verdict_of(_observed(record)) == "incomplete"


def test_the_slurm_torque_wrappers_cannot_show_a_walltime_end() -> None:
    """Captured here: a job past ``walltime=00:01:00`` that Slurm ended TIMEOUT."""
    text = (FIXTURES / "torque-wrappers-slurm-22.05/qstat_f_timeout.txt").read_text()
    (job,) = qstat.parse_qstat_text(text)
    assert job.get("Resource_List.walltime") == "00:01:00"
    record = records.to_accounting(job, "torque", slurm_wrappers=True)
    assert record.state is JobState.UNKNOWN  # C without exit status: any end looks alike
    assert verdict_of(_observed(record)) is None
