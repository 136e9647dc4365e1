"""Status and accounting records from a :class:`PbsJob` and its :class:`Verdict`."""

from __future__ import annotations

from scheduler_adapters.pbs.commands import Flavor
from scheduler_adapters.pbs.qstat import PbsJob
from scheduler_adapters.pbs.states import FINAL_STATES, classify
from scheduler_adapters.pbs.usage import usage_of
from scheduler_adapters.pbs.values import optional, parse_duration, parse_pbs_time, parse_size_kb
from scheduler_adapters.types import AccountingRecord, JobStatus


def to_status(job: PbsJob, flavor: Flavor) -> JobStatus:
    verdict = classify(job, flavor)
    return JobStatus(
        job_id=job.job_id,
        state=verdict.state,
        native_state=job.state,
        reason=verdict.reason,
        name=job.name,
        array_job_id=job.array_job_id,
    )


def _hosts(exec_host: str | None) -> str | None:
    """``b141/0*16+b142/0*16`` -> ``b141,b142`` (first-seen order, no duplicates)."""
    if not exec_host:
        return None
    hosts: dict[str, None] = {}
    for chunk in exec_host.split("+"):
        host = chunk.split("/", 1)[0].strip()
        if host:
            hosts.setdefault(host, None)
    return ",".join(hosts) or None


def to_accounting(job: PbsJob, flavor: Flavor, *, slurm_wrappers: bool = False) -> AccountingRecord:
    """Accounting from ``qstat -f`` (``-x`` history on PBS Pro, kept C jobs on Torque).

    The Slurm wrapper's ``qstat -f`` puts Slurm's start time in ``mtime`` and
    its end time in ``ctime`` (``/usr/bin/qstat`` ``print_job_full``), unlike
    PBS where ``ctime`` is the creation time; ``slurm_wrappers`` reads them so.
    """
    verdict = classify(job, flavor)
    native_state = job.state
    if job.state in FINAL_STATES and job.exit_status is not None:
        native_state = f"{job.state} Exit_status={job.exit_status}"
    native = job.native_id
    walltime = optional(job.get("resources_used.walltime"), parse_duration, native, "walltime")
    cput = optional(job.get("resources_used.cput"), parse_duration, native, "cput")
    mem_kb = optional(job.get("resources_used.mem"), parse_size_kb, native, "mem")
    if slurm_wrappers:
        start_raw = job.get("mtime")
        end_raw = job.get("ctime") if job.state in FINAL_STATES else None
    else:
        start_raw = job.get("stime") or job.get("start_time")
        end_raw = None
        if job.state in FINAL_STATES:  # a held/requeued job's obittime is a past attempt's
            # last modification is the end when the server recorded no obit time
            end_raw = job.get("obittime") or job.get("comp_time") or job.get("mtime")
    start = optional(start_raw, parse_pbs_time, native, "stime")
    end = optional(end_raw, parse_pbs_time, native, "end")
    return AccountingRecord(
        job_id=job.job_id,
        state=verdict.state,
        native_state=native_state,
        exit_code=verdict.exit_code,
        signal=verdict.signal,
        elapsed_s=int(walltime) if walltime is not None else None,
        cpu_time_s=cput,
        max_rss_kb=mem_kb,
        node_list=_hosts(job.get("exec_host")),
        start=start,
        end=end,
        name=job.name,
        raw_id=job.native_id,
        **usage_of(job.get, walltime),
    )
