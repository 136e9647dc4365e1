"""Pure parsers for PBS Pro / OpenPBS and Torque output.

Every function takes text (or a :class:`CommandResult`) and returns records, or
raises :class:`OutputParseError`; nothing else escapes (hypothesis-tested).
*Structural* garbage (invalid JSON, text without ``Job Id:``, a job without a
``job_state``) raises. An *optional* value that does not parse (a memory size in
an unknown unit) becomes ``None`` with a warning: one odd attribute must not
stop a poll of every job.

Formats (all captured under ``tests/fixtures/scheduler_output/``):

* ``qstat -f -F json`` (PBS Pro >= 13): ``{"Jobs": {"<id>": {attr: value,
  "Resource_List": {...}, "resources_used": {...}}}}``; numbers are JSON
  numbers, ``Jobs`` is absent when nothing matches.
* ``qstat -f`` text: ``Job Id: <id>`` then indented ``key = value`` lines.
  Long values continue on the next line: PBS Pro indents continuations with a
  TAB, Torque with 8 spaces, and a value that itself contains a newline (an
  exported bash function in ``Variable_List``) continues at column 0 or 1.
  The Slurm wrappers indent *attributes* with a TAB and never continue.
  So the attribute indent is learned from the first attribute of each block.
* ``pbsnodes -a -F json`` (PBS Pro) and ``pbsnodes -a`` text (Torque).

States and exit codes are mapped in :func:`classify`; see its docstring and
``docs/pbs.md`` for the tables and their sources.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from scheduler_adapters.errors import OutputParseError
from scheduler_adapters.pbs.commands import NATIVE_ID_RE, Flavor
from scheduler_adapters.types import (
    AccountingRecord,
    CommandResult,
    JobId,
    JobState,
    JobStatus,
    NodeMetrics,
)

log = logging.getLogger("scheduler_adapters.pbs")
_T = TypeVar("_T")

# ---------------------------------------------------------------- state tables
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

_JOB_HEADER_RE = re.compile(r"^Job Id:\s*(?P<id>\S+)\s*$")
_ATTR_RE = re.compile(r"^(?P<indent>[ \t]+)(?P<key>[A-Za-z_][A-Za-z0-9_.\-]*) = ?(?P<value>.*)$")
_DURATION_RE = re.compile(r"^(?:(?P<h>\d+):)?(?P<m>\d+):(?P<s>\d+(?:\.\d+)?)$")
_SECONDS_RE = re.compile(r"^\d+(?:\.\d+)?$")
_SIZE_RE = re.compile(r"^(?P<n>\d+)(?P<unit>[kmgtp]?b)?$", re.IGNORECASE)
_SIZE_FACTORS = {"b": 1, "kb": 1 << 10, "mb": 1 << 20, "gb": 1 << 30, "tb": 1 << 40, "pb": 1 << 50}
_TIME_FORMAT = "%a %b %d %H:%M:%S %Y"


# --------------------------------------------------------------- small values
def parse_job_id(text: str) -> JobId:
    """``123.srv`` -> ``JobId("123.srv")``; ``123[4].srv`` -> ``JobId("123[].srv", 4)``."""
    text = text.strip()
    m = NATIVE_ID_RE.match(text)
    if m is None:
        raise OutputParseError("not a PBS job id", raw=text)
    index, server = m["index"], m["server"] or ""
    if index:
        return JobId(f"{m['seq']}[]{server}", int(index))
    return JobId(text)


def job_key(job_id: JobId) -> tuple[str, int | None, bool]:
    """Identity of a job regardless of how the server name is spelled.

    qsub may print ``12.pbs01`` while qstat says ``12.pbs01.example.org``;
    matching on (sequence number, task, is-array) makes both the same job.
    """
    m = NATIVE_ID_RE.match(job_id.value)
    if m is None:
        return (job_id.value, job_id.task, False)
    return (m["seq"], job_id.task, m["index"] is not None)


def parse_duration(text: str) -> float:
    """``HHH:MM:SS[.f]``, ``MM:SS`` or plain seconds -> seconds (ValueError otherwise).

    PBS prints hours beyond 99 (``4090:56:03`` cput in the aiida capture).
    """
    text = text.strip()
    m = _DURATION_RE.match(text)
    if m is not None:
        hours = int(m["h"]) if m["h"] is not None else 0
        return hours * 3600 + int(m["m"]) * 60 + float(m["s"])
    if _SECONDS_RE.match(text):
        return float(text)
    raise ValueError(f"not a PBS duration: {text!r}")


def parse_size_kb(text: str) -> int:
    """A PBS size (``13378420kb``, ``8gb``, ``0b``, ``524288000``) in KiB, rounded down.

    PBS sizes without a unit are bytes. Word units (``kw``) are refused.
    """
    m = _SIZE_RE.match(text.strip())
    if m is None:
        raise ValueError(f"not a PBS size: {text!r}")
    unit = (m["unit"] or "b").lower()
    return int(m["n"]) * _SIZE_FACTORS[unit] // 1024


def parse_pbs_time(text: str) -> datetime:
    """``Tue Apr  9 15:01:47 2013`` (server local time, naive) or epoch seconds (UTC)."""
    text = text.strip()
    if text.isascii() and text.isdigit():
        return datetime.fromtimestamp(int(text), tz=UTC)
    return datetime.strptime(text, _TIME_FORMAT)  # PBS prints server local time


# ----------------------------------------------------------------- job record
@dataclass(frozen=True)
class PbsJob:
    """One job as qstat reported it; attributes flattened to ``a.b`` keys and text values."""

    native_id: str
    job_id: JobId
    state: str
    attributes: Mapping[str, str] = field(default_factory=dict)

    def get(self, key: str) -> str | None:
        return self.attributes.get(key)

    @property
    def name(self) -> str | None:
        return self.get("Job_Name")

    @property
    def comment(self) -> str | None:
        return self.get("comment")

    @property
    def exit_status(self) -> int | None:
        """PBS Pro ``Exit_status``, Torque ``exit_status``; None when absent or odd."""
        raw = self.get("Exit_status") or self.get("exit_status")
        return _optional(raw, int, self, "Exit_status")

    @property
    def substate(self) -> int | None:
        return _optional(self.get("substate"), int, self, "substate")

    @property
    def array_job_id(self) -> str | None:
        """The parent array id of a subjob (``123[].srv``), else None."""
        return self.job_id.value if self.job_id.task is not None else None


def _optional(
    raw: str | None, convert: Callable[[str], _T], job: PbsJob | None, key: str
) -> _T | None:
    if raw is None or raw == "":
        return None
    try:
        return convert(raw)
    except (ValueError, OverflowError):
        log.warning("job %s: cannot read %s=%r, ignoring it", job and job.native_id, key, raw)
        return None


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    if value is None:
        return ""
    if isinstance(value, int | float | str):
        return str(value)
    if isinstance(value, list):
        return ",".join(_scalar_text(v) for v in value)
    raise TypeError(f"unexpected JSON value {value!r}")


def _flatten(attrs: Mapping[str, Any], raw: str) -> dict[str, str]:
    flat: dict[str, str] = {}
    for key, value in attrs.items():
        try:
            if isinstance(value, dict):
                for sub, subvalue in value.items():
                    flat[f"{key}.{sub}"] = _scalar_text(subvalue)
            else:
                flat[key] = _scalar_text(value)
        except TypeError as exc:
            raise OutputParseError(f"attribute {key!r}: {exc}", raw=raw) from exc
    return flat


def _make_job(native: str, attrs: dict[str, str], raw: str) -> PbsJob:
    state = attrs.get("job_state", "").strip()
    if not state:
        raise OutputParseError(f"job {native!r} has no job_state", raw=raw)
    return PbsJob(
        native_id=native, job_id=parse_job_id_or_raise(native, raw), state=state, attributes=attrs
    )


def parse_job_id_or_raise(native: str, raw: str) -> JobId:
    try:
        return parse_job_id(native)
    except OutputParseError as exc:
        raise OutputParseError(f"bad job id {native!r}", raw=raw) from exc


# ----------------------------------------------------------------------- qsub
def parse_qsub(result: CommandResult | str) -> JobId:
    """qsub prints the id on its last line (``1234.srv``, ``123[].srv``, wrappers: ``55``)."""
    text = result.stdout if isinstance(result, CommandResult) else result
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise OutputParseError("qsub printed no job id", raw=text)
    try:
        return parse_job_id(lines[-1])
    except OutputParseError as exc:
        raise OutputParseError("qsub output does not end with a job id", raw=text) from exc


# ---------------------------------------------------------------------- qstat
def parse_qstat_json(text: str) -> list[PbsJob]:
    """``qstat -f -F json [-x] [-t]`` -> jobs (empty when ``Jobs`` is absent)."""
    try:
        doc = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise OutputParseError(f"qstat JSON does not decode ({exc})", raw=text) from exc
    if not isinstance(doc, dict):
        raise OutputParseError("qstat JSON is not an object", raw=text)
    jobs = doc.get("Jobs", {})
    if not isinstance(jobs, dict):
        raise OutputParseError("qstat JSON 'Jobs' is not an object", raw=text)
    out: list[PbsJob] = []
    for native, attrs in jobs.items():
        if not isinstance(attrs, dict):
            raise OutputParseError(f"qstat JSON job {native!r} is not an object", raw=text)
        out.append(_make_job(native, _flatten(attrs, text), text))
    return out


def _text_blocks(text: str) -> Iterator[tuple[str, dict[str, str]]]:
    """Yield (job id, attributes) for each ``Job Id:`` block of ``qstat -f`` text."""
    native: str | None = None
    attrs: dict[str, str] = {}
    indent: str | None = None
    last_key: str | None = None
    for line in text.splitlines():
        if not line.strip():
            continue
        header = _JOB_HEADER_RE.match(line)
        if header is not None:
            if native is not None:
                yield native, attrs
            native, attrs, indent, last_key = header["id"], {}, None, None
            continue
        if native is None:
            raise OutputParseError("qstat -f text: content before the first 'Job Id:'", raw=text)
        attr = _ATTR_RE.match(line)
        if attr is not None and (indent is None or attr["indent"] == indent):
            indent = attr["indent"]
            last_key = attr["key"]
            attrs[last_key] = attr["value"].rstrip()
            continue
        if last_key is None:
            raise OutputParseError(
                f"qstat -f text: line {line!r} is neither an attribute nor a continuation",
                raw=text,
            )
        # Continuation: wrapped value (TAB for PBS Pro, 2x indent for Torque) or
        # a value with a real newline in it (exported bash functions).
        if line.startswith("\t") and indent != "\t":
            attrs[last_key] += line[1:].rstrip()
        elif indent is not None and line.startswith(indent * 2):
            attrs[last_key] += line[len(indent) * 2 :].rstrip()
        else:
            attrs[last_key] += "\n" + line.rstrip()
    if native is not None:
        yield native, attrs


def parse_qstat_text(text: str) -> list[PbsJob]:
    """``qstat -f`` key = value blocks (PBS Pro, Torque, slurm-wlm-torque)."""
    return [_make_job(native, attrs, text) for native, attrs in _text_blocks(text)]


def parse_qstat(text: str, *, json_format: bool) -> list[PbsJob]:
    return parse_qstat_json(text) if json_format else parse_qstat_text(text)


# ------------------------------------------------------------- classification
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
    state = job.state
    comment = job.comment or ""
    if state not in FINAL_STATES:
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

    status = job.exit_status
    if status is not None and status < 0:
        name, mapped = _exec_codes(flavor).get(status, (f"JOB_EXEC_{status}", JobState.FAILED))
        return Verdict(mapped, reason=f"Exit_status={status} ({name}) {comment}".strip())
    if _WALLTIME_KILL_RE.search(comment):
        return Verdict(JobState.TIMEOUT, *_code_and_signal(status), reason=comment)
    if _MEM_KILL_RE.search(comment):
        return Verdict(JobState.OUT_OF_MEMORY, *_code_and_signal(status), reason=comment)
    if _DEPENDENCY_RE.search(comment):
        return Verdict(
            JobState.DEPENDENCY_NEVER_SATISFIED, *_code_and_signal(status), reason=comment
        )
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
        JobState.UNKNOWN, reason=comment or f"finished ({state}); no exit status reported"
    )


def _code_and_signal(status: int | None) -> tuple[int | None, int | None]:
    """PBS and Torque report death by signal n as 256 + n."""
    if status is None:
        return None, None
    if status > 256:
        return None, status - 256
    return status, None


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
    walltime = _optional(job.get("resources_used.walltime"), parse_duration, job, "walltime")
    cput = _optional(job.get("resources_used.cput"), parse_duration, job, "cput")
    mem_kb = _optional(job.get("resources_used.mem"), parse_size_kb, job, "mem")
    if slurm_wrappers:
        start_raw = job.get("mtime")
        end_raw = job.get("ctime") if job.state in FINAL_STATES else None
    else:
        start_raw = job.get("stime") or job.get("start_time")
        end_raw = None
        if job.state in FINAL_STATES:  # a held/requeued job's obittime is a past attempt's
            # last modification is the end when the server recorded no obit time
            end_raw = job.get("obittime") or job.get("comp_time") or job.get("mtime")
    start = _optional(start_raw, parse_pbs_time, job, "stime")
    end = _optional(end_raw, parse_pbs_time, job, "end")
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
    )


# ------------------------------------------------------------------- pbsnodes
def _int(value: Any, raw: str, what: str) -> int:
    if isinstance(value, bool):
        raise OutputParseError(f"{what} is not a number: {value!r}", raw=raw)
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise OutputParseError(f"{what} is not a number: {value!r}", raw=raw) from exc


def _mb(value: Any) -> int | None:
    if value is None:
        return None
    try:
        return parse_size_kb(str(value)) // 1024
    except ValueError:
        log.warning("pbsnodes: cannot read size %r, ignoring it", value)
        return None


def parse_pbsnodes_json(text: str) -> list[NodeMetrics]:
    """``pbsnodes -a -F json`` (PBS Pro): ncpus/mem available vs assigned per vnode.

    PBS Pro reports no load average and no free OS memory, so ``cpu_load`` and
    ``memory_free_mb`` are None.
    """
    try:
        doc = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise OutputParseError(f"pbsnodes JSON does not decode ({exc})", raw=text) from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("nodes", {}), dict):
        raise OutputParseError("pbsnodes JSON has no 'nodes' object", raw=text)
    out: list[NodeMetrics] = []
    for name, node in doc.get("nodes", {}).items():
        if not isinstance(node, dict):
            raise OutputParseError(f"pbsnodes JSON node {name!r} is not an object", raw=text)
        available = node.get("resources_available", {})
        assigned = node.get("resources_assigned", {})
        if not isinstance(available, dict) or not isinstance(assigned, dict):
            raise OutputParseError(f"pbsnodes JSON node {name!r}: bad resources", raw=text)
        state = node.get("state")
        if not isinstance(state, str):
            raise OutputParseError(f"pbsnodes JSON node {name!r} has no state", raw=text)
        total = available.get("ncpus", node.get("pcpus"))
        queue = node.get("queue")
        out.append(
            NodeMetrics(
                name=str(name),
                state=state,
                cpu_load=None,
                cpus_allocated=_int(assigned.get("ncpus", 0), text, f"{name} ncpus assigned"),
                cpus_total=_int(total if total is not None else 0, text, f"{name} ncpus"),
                memory_free_mb=None,
                memory_total_mb=_mb(available.get("mem")) or 0,
                memory_allocated_mb=_mb(assigned.get("mem")),
                partitions=(queue,) if isinstance(queue, str) and queue else (),
            )
        )
    return out


def _count_slots(jobs: str) -> int:
    """Torque ``jobs = 0/1.srv,1/1.srv`` or ``0-13/307.srv,14-27/308.srv`` -> cores in use."""
    count = 0
    for entry in jobs.split(","):
        slots = entry.strip().split("/", 1)[0]
        if not slots:
            continue
        if "-" in slots:
            lo, _, hi = slots.partition("-")
            count += int(hi) - int(lo) + 1
        else:
            int(slots)
            count += 1
    return count


def parse_pbsnodes_text(text: str) -> list[NodeMetrics]:
    """Torque ``pbsnodes -a`` (and the Slurm wrapper's imitation of it).

    Node name at column 0, then indented ``key = value``. ``np`` is the core
    count, ``jobs`` lists the cores in use, ``status`` is a ``k=v,...`` list with
    ``physmem``/``availmem`` (Torque's availmem counts swap, so it may exceed
    physmem) and ``loadave``.
    """
    nodes: list[tuple[str, dict[str, str]]] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        if not line[0].isspace():
            nodes.append((line.strip(), {}))
            continue
        if not nodes:
            raise OutputParseError("pbsnodes text: attribute before the first node name", raw=text)
        key, sep, value = line.strip().partition(" = ")
        if not sep:
            raise OutputParseError(f"pbsnodes text: cannot read line {line!r}", raw=text)
        nodes[-1][1][key] = value
    out: list[NodeMetrics] = []
    for name, attrs in nodes:
        status: dict[str, str] = {}
        for item in attrs.get("status", "").split(","):
            k, sep, v = item.partition("=")
            if sep:
                status.setdefault(k.strip(), v.strip())
        if "state" not in attrs:
            raise OutputParseError(f"pbsnodes text: node {name!r} has no state", raw=text)
        try:
            allocated = _count_slots(attrs.get("jobs", ""))
        except ValueError as exc:
            raise OutputParseError(f"pbsnodes text: node {name!r} jobs list", raw=text) from exc
        cpus = attrs.get("np") or status.get("ncpus") or "0"
        load = _optional(status.get("loadave"), float, None, "loadave")
        total_mb = _mb(status.get("physmem")) or _mb(status.get("availmem")) or 0
        free_mb = _mb(status.get("availmem")) if "physmem" in status else None
        out.append(
            NodeMetrics(
                name=name,
                state=attrs["state"],
                cpu_load=load,
                cpus_allocated=allocated,
                cpus_total=_int(cpus, text, f"{name} np"),
                memory_free_mb=free_mb,
                memory_total_mb=total_mb,
                memory_allocated_mb=None,
            )
        )
    return out


_PBSPRO_VERSION_RE = re.compile(r"pbs_version\s*=\s*(\S+)")
_TORQUE_VERSION_RE = re.compile(r"^\s*Version:\s*(\S+)", re.MULTILINE | re.IGNORECASE)


def parse_qsub_version(result: CommandResult) -> tuple[Flavor, bool, str | None]:
    """``qsub --version`` -> (flavor, is the Slurm wrapper, version).

    PBS Pro / OpenPBS: ``pbs_version = 2022.1.1``; Torque: ``Version: 6.1.2``;
    slurm-wlm-torque: ``Unknown option: version`` and exit status 2 (captured).
    """
    text = f"{result.stdout}\n{result.stderr}"
    m = _PBSPRO_VERSION_RE.search(text)
    if m is not None:
        return "pbspro", False, m.group(1)
    m = _TORQUE_VERSION_RE.search(text)
    if m is not None:
        return "torque", False, m.group(1)
    if "Unknown option: version" in text:
        return "torque", True, None
    raise OutputParseError("qsub --version names no known PBS implementation", raw=text)


def is_unknown_option(result: CommandResult) -> bool:
    """True when a command refused an option (Torque getopt, Perl Getopt in the wrappers)."""
    text = f"{result.stderr}\n{result.stdout}"
    return bool(re.search(r"unknown option|invalid option|illegal option", text, re.IGNORECASE))
