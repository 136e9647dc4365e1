"""What a PBS job's ``job_state``, ``Exit_status``, substate and comment mean.

:func:`classify` maps a :class:`PbsJob` to a normalized :class:`JobState`; see its
docstring and ``docs/pbs.md`` for the tables and their sources.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass

from scheduler_adapters.pbs.commands import Flavor
from scheduler_adapters.pbs.qstat import PbsJob
from scheduler_adapters.types import JobState

log = logging.getLogger("scheduler_adapters.pbs")

#: One-letter ``job_state`` codes (PBS Pro ``qstat(1B)``, Torque ``qstat(1)``).
#: F/X (PBS Pro history) and C (Torque) are final; their JobState comes from
#: :func:`classify`, never from this table.
LIVE_STATES: Mapping[str, JobState] = {
    "Q": JobState.PENDING,  # queued
    "W": JobState.PENDING,  # waiting for its execution time (qsub -a)
    "T": JobState.PENDING,  # transiting between queues/servers
    "H": JobState.HELD,  # held (user/operator/system; dependency holds see classify)
    "R": JobState.RUNNING,
    "B": JobState.RUNNING,  # PBS Pro: array job with at least one subjob started
    "S": JobState.RUNNING,  # suspended: started, holds its nodes (same as Slurm SUSPENDED)
    "U": JobState.RUNNING,  # PBS Pro: suspended, workstation busy (cycle harvesting)
    "E": JobState.COMPLETING,  # exiting after having run
    "M": JobState.UNKNOWN,  # PBS Pro: moved to another server; this one no longer knows
}
FINAL_STATES = frozenset({"F", "X", "C"})

#: PBS Pro / OpenPBS ``JOB_EXEC_*`` values (openpbs ``src/include/job.h``).
PBSPRO_EXEC_CODES: Mapping[int, tuple[str, JobState]] = {
    -1: ("JOB_EXEC_FAIL1", JobState.FAILED),
    -2: ("JOB_EXEC_FAIL2", JobState.FAILED),
    -3: ("JOB_EXEC_RETRY", JobState.FAILED),
    -4: ("JOB_EXEC_INITABT", JobState.NODE_FAIL),
    -5: ("JOB_EXEC_INITRST", JobState.NODE_FAIL),
    -6: ("JOB_EXEC_INITRMG", JobState.NODE_FAIL),
    -7: ("JOB_EXEC_BADRESRT", JobState.FAILED),
    -10: ("JOB_EXEC_FAILUID", JobState.FAILED),
    -11: ("JOB_EXEC_RERUN", JobState.FAILED),
    -12: ("JOB_EXEC_CHKP", JobState.FAILED),
    -13: ("JOB_EXEC_FAIL_PASSWORD", JobState.FAILED),
    -14: ("JOB_EXEC_RERUN_SIS_FAIL", JobState.NODE_FAIL),
    -15: ("JOB_EXEC_QUERST", JobState.FAILED),
    -16: ("JOB_EXEC_FAILHOOK_RERUN", JobState.FAILED),
    -17: ("JOB_EXEC_FAILHOOK_DELETE", JobState.FAILED),
    -18: ("JOB_EXEC_HOOK_RERUN", JobState.FAILED),
    -19: ("JOB_EXEC_HOOK_DELETE", JobState.FAILED),
    -20: ("JOB_EXEC_RERUN_MS_FAIL", JobState.NODE_FAIL),
    -21: ("JOB_EXEC_FAIL_SECURITY", JobState.FAILED),
    -22: ("JOB_EXEC_HOOKERROR", JobState.FAILED),
    -23: ("JOB_EXEC_FAIL_KRB5", JobState.FAILED),
    -24: ("JOB_EXEC_KILL_NCPUS_BURST", JobState.FAILED),
    -25: ("JOB_EXEC_KILL_NCPUS_SUM", JobState.FAILED),
    -26: ("JOB_EXEC_KILL_VMEM", JobState.OUT_OF_MEMORY),
    -27: ("JOB_EXEC_KILL_MEM", JobState.OUT_OF_MEMORY),
    -28: ("JOB_EXEC_KILL_CPUT", JobState.FAILED),
    -29: ("JOB_EXEC_KILL_WALLTIME", JobState.TIMEOUT),
    -30: ("JOB_EXEC_JOINJOB", JobState.NODE_FAIL),
}

#: Torque ``JOB_EXEC_*`` values (adaptivecomputing/torque ``src/include/job.h``;
#: Torque 6 split the old generic ``-10 OVERLIMIT`` into MEM/WT/CPUT).
TORQUE_EXEC_CODES: Mapping[int, tuple[str, JobState]] = {
    -1: ("JOB_EXEC_FAIL1", JobState.FAILED),
    -2: ("JOB_EXEC_FAIL2", JobState.FAILED),
    -3: ("JOB_EXEC_RETRY", JobState.FAILED),
    -4: ("JOB_EXEC_INITABT", JobState.NODE_FAIL),
    -5: ("JOB_EXEC_INITRST", JobState.NODE_FAIL),
    -6: ("JOB_EXEC_INITRMG", JobState.NODE_FAIL),
    -7: ("JOB_EXEC_BADRESRT", JobState.FAILED),
    -8: ("JOB_EXEC_CMDFAIL", JobState.FAILED),
    -9: ("JOB_EXEC_STDOUTFAIL", JobState.FAILED),
    -10: ("JOB_EXEC_OVERLIMIT_MEM", JobState.OUT_OF_MEMORY),
    -11: ("JOB_EXEC_OVERLIMIT_WT", JobState.TIMEOUT),
    -12: ("JOB_EXEC_OVERLIMIT_CPUT", JobState.FAILED),
}

# Server messages that name the cause better than the exit status. PBS MoM:
# "job killed: walltime 65 exceeded limit 60" / "job killed: mem 2097152kb
# exceeded limit 1048576kb"; Torque: "... its dependency of array ... can never
# be satisfied" (bcgsc/mavis capture).
_WALLTIME_KILL_RE = re.compile(r"\bwalltime\b.*\bexceeded limit\b", re.IGNORECASE)
_MEM_KILL_RE = re.compile(r"\b(?:p?v?mem)\b.*\bexceeded limit\b", re.IGNORECASE)
_DEPENDENCY_RE = re.compile(r"dependency.*never be satisfied", re.IGNORECASE)
_DELETED_RE = re.compile(r"\b(?:deleted|terminated|qdel)\b", re.IGNORECASE)

# PBS Pro history substates (openpbs job.h JOB_SUBSTATE_*).
SUBSTATE_DEPNHOLD = 22
SUBSTATE_TERMINATED = 91
SUBSTATE_FINISHED = 92
SUBSTATE_FAILED = 93


@dataclass(frozen=True)
class Verdict:
    """What a PBS job's state and exit status mean, with the evidence in ``reason``."""

    state: JobState
    exit_code: int | None = None
    signal: int | None = None
    reason: str | None = None


def _exec_codes(flavor: Flavor) -> Mapping[int, tuple[str, JobState]]:
    return TORQUE_EXEC_CODES if flavor == "torque" else PBSPRO_EXEC_CODES


def classify(job: PbsJob, flavor: Flavor) -> Verdict:
    """Map a job to a normalized state; finished jobs by the evidence they carry.

    Live states come from :data:`LIVE_STATES`, except ``H`` with PBS Pro
    substate 22 (held *by a dependency*, not by anybody), which is PENDING.
    Finished jobs (F/X/C), strongest evidence first:

    1. negative ``Exit_status`` = a ``JOB_EXEC_*`` code of the flavor
       (PBS Pro -29 KILL_WALLTIME -> TIMEOUT, -27/-26 KILL_(V)MEM -> OUT_OF_MEMORY;
       Torque -11 OVERLIMIT_WT -> TIMEOUT, -10 OVERLIMIT_MEM -> OUT_OF_MEMORY);
    2. the server's ``comment`` naming a walltime/memory kill or a dependency
       that can never be satisfied;
    3. ``Exit_status`` 0 -> COMPLETED;
    4. PBS Pro substate 91 (TERMINATED: deleted) -> CANCELLED;
    5. ``Exit_status`` > 256 = killed by signal ``n - 256`` (271 = SIGTERM: qdel
       *or* an older server's walltime kill, indistinguishable without a comment)
       -> FAILED with the signal; 1..255 -> FAILED with that exit code;
    6. no exit status at all (the Slurm wrappers never print one) -> UNKNOWN.

    A finished job is never COMPLETED without ``Exit_status == 0``.
    """
    if job.state not in FINAL_STATES:
        return _classify_live(job)
    return _classify_finished(job, flavor)


def _classify_live(job: PbsJob) -> Verdict:
    state = job.state
    comment = job.comment or ""
    mapped = LIVE_STATES.get(state)
    if mapped is None:
        log.warning(
            "job %s: unknown PBS state %r (attributes %r)",
            job.native_id,
            state,
            dict(job.attributes),
        )
        return Verdict(JobState.UNKNOWN, reason=f"unknown PBS state {state!r}")
    if state == "H" and job.substate == SUBSTATE_DEPNHOLD:
        return Verdict(JobState.PENDING, reason=comment or "waiting on a dependency")
    if state == "H":
        holds = job.get("Hold_Types")
        hold_reason = f"Hold_Types={holds}" if holds else "held"
        return Verdict(mapped, reason=f"{hold_reason}: {comment}" if comment else hold_reason)
    return Verdict(mapped, reason=comment or None)


def _classify_finished(job: PbsJob, flavor: Flavor) -> Verdict:
    """F/X/C jobs, strongest evidence first (the steps of :func:`classify`)."""
    comment = job.comment or ""
    status = job.exit_status
    if status is not None and status < 0:
        name, mapped = _exec_codes(flavor).get(status, (f"JOB_EXEC_{status}", JobState.FAILED))
        return Verdict(mapped, reason=f"Exit_status={status} ({name}) {comment}".strip())
    by_comment = _classify_by_comment(comment, status)
    if by_comment is not None:
        return by_comment
    if status == 0:
        return Verdict(JobState.COMPLETED, exit_code=0, reason=comment or None)
    if job.substate == SUBSTATE_TERMINATED:
        return Verdict(
            JobState.CANCELLED,
            *_code_and_signal(status),
            reason=comment or "terminated (substate 91)",
        )
    if status is not None:
        code, signal = _code_and_signal(status)
        if signal in (9, 15) and _DELETED_RE.search(comment):
            return Verdict(JobState.CANCELLED, code, signal, reason=comment)
        return Verdict(JobState.FAILED, code, signal, reason=comment or None)
    return Verdict(
        JobState.UNKNOWN, reason=comment or f"finished ({job.state}); no exit status reported"
    )


def _classify_by_comment(comment: str, status: int | None) -> Verdict | None:
    """The server's comment naming a walltime/memory kill or a dead dependency."""
    if _WALLTIME_KILL_RE.search(comment):
        return Verdict(JobState.TIMEOUT, *_code_and_signal(status), reason=comment)
    if _MEM_KILL_RE.search(comment):
        return Verdict(JobState.OUT_OF_MEMORY, *_code_and_signal(status), reason=comment)
    if _DEPENDENCY_RE.search(comment):
        return Verdict(
            JobState.DEPENDENCY_NEVER_SATISFIED, *_code_and_signal(status), reason=comment
        )
    return None


def _code_and_signal(status: int | None) -> tuple[int | None, int | None]:
    """PBS and Torque report death by signal n as 256 + n."""
    if status is None:
        return None, None
    if status > 256:
        return None, status - 256
    return status, None
