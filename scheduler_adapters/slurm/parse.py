"""Pure parsers for Slurm 22.05 command output.

Every function takes text and returns typed records or raises
:class:`OutputParseError` carrying the raw text; nothing here asserts on input
or lets a ``ValueError``/``IndexError`` escape (hypothesis-tested). Table tests
use verbatim captures in ``tests/fixtures/scheduler_output/slurm-22.05/``; when
real output fails to parse, capture it there and add a case.

Quirks encoded here (sources in docs/scheduler-adapters.md):

* ``sbatch --parsable`` prints ``jobid[;cluster]``; read the last line only
  (LLNL/maestrowf#443).
* sacct ``State`` can have words appended (``CANCELLED by 1000``): the
  normalized state comes from the first word, the native string is kept.
* State comes from the allocation line (``123``, ``123_4``); steps (``.batch``,
  ``.0``) may disagree (martius-lab/cluster_utils#87). ``MaxRSS`` only exists on
  steps, so it is the max over steps.
* Array tasks that never started share one "meta" row, ``123_[2-4%2]``; it is
  expanded to one record per task.
* A pending job whose dependency failed keeps state PENDING with reason
  ``DependencyNeverSatisfied`` (unless killed by kill_invalid_depend): that
  reason is final, mapped to DEPENDENCY_NEVER_SATISFIED.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Iterable, Sequence
from datetime import datetime

from scheduler_adapters.errors import OutputParseError
from scheduler_adapters.rendering import parse_walltime
from scheduler_adapters.slurm.commands import (
    SACCT_BASE_FIELDS,
    SACCT_FIELDS,
    SEP,
    SINFO_FIELDS,
    SQUEUE_FIELDS,
)
from scheduler_adapters.slurm.usage import optional_usage_of
from scheduler_adapters.types import AccountingRecord, JobId, JobState, JobStatus, NodeMetrics

log = logging.getLogger("scheduler_adapters.slurm")

# Long names (squeue %T, sacct State) and the short codes (squeue %t), from
# man squeue "JOB STATE CODES" (22.05).
_STATES: dict[str, JobState] = {
    "PENDING": JobState.PENDING, "PD": JobState.PENDING,
    "CONFIGURING": JobState.PENDING, "CF": JobState.PENDING,
    "REQUEUED": JobState.PENDING, "RQ": JobState.PENDING,
    "REQUEUE_FED": JobState.PENDING, "RF": JobState.PENDING,
    "POWER_UP_NODE": JobState.PENDING, "UPDATE_DB": JobState.PENDING,
    "REQUEUE_HOLD": JobState.HELD, "RH": JobState.HELD,
    "RESV_DEL_HOLD": JobState.HELD, "RD": JobState.HELD,
    "RUNNING": JobState.RUNNING, "R": JobState.RUNNING,
    "RESIZING": JobState.RUNNING, "RS": JobState.RUNNING,
    "SIGNALING": JobState.RUNNING, "SI": JobState.RUNNING,
    "SUSPENDED": JobState.RUNNING, "S": JobState.RUNNING,
    "STOPPED": JobState.RUNNING, "ST": JobState.RUNNING,
    "COMPLETING": JobState.COMPLETING, "CG": JobState.COMPLETING,
    "STAGE_OUT": JobState.COMPLETING, "SO": JobState.COMPLETING,
    "COMPLETED": JobState.COMPLETED, "CD": JobState.COMPLETED,
    "FAILED": JobState.FAILED, "F": JobState.FAILED,
    "SPECIAL_EXIT": JobState.FAILED, "SE": JobState.FAILED,
    "CANCELLED": JobState.CANCELLED, "CA": JobState.CANCELLED,
    "PREEMPTED": JobState.CANCELLED, "PR": JobState.CANCELLED,
    "REVOKED": JobState.CANCELLED, "RV": JobState.CANCELLED,
    "TIMEOUT": JobState.TIMEOUT, "TO": JobState.TIMEOUT,
    "DEADLINE": JobState.TIMEOUT, "DL": JobState.TIMEOUT,
    "OUT_OF_MEMORY": JobState.OUT_OF_MEMORY, "OOM": JobState.OUT_OF_MEMORY,
    "NODE_FAIL": JobState.NODE_FAIL, "NF": JobState.NODE_FAIL,
    "BOOT_FAIL": JobState.NODE_FAIL, "BF": JobState.NODE_FAIL,
}

_JOBID_RE = re.compile(r"^(?P<base>[0-9]+)(?:_(?P<task>[0-9]+|\[(?P<range>[0-9,\-%:]+)\]))?$")
_SBATCH_RE = re.compile(r"^(?P<id>[0-9]+)(?:;(?P<cluster>\S+))?$")
_RSS_RE = re.compile(r"^(?P<num>[0-9]+(?:\.[0-9]+)?)(?P<unit>[KMGTP]?)$")
_RSS_FACTOR_KB = {"": 1 / 1024, "K": 1, "M": 1024, "G": 1024**2, "T": 1024**3, "P": 1024**4}
_EMPTY = ("", "Unknown", "None", "None assigned", "N/A", "(null)")


def map_state(native: str, reason: str | None = None, *, raw: str | None = None) -> JobState:
    """Normalize a native state; unknown ones become UNKNOWN with a warning (never a crash)."""
    words = native.split()
    word = words[0].rstrip("+") if words else ""
    state = _STATES.get(word)
    if state is None:
        log.warning(
            "unknown Slurm state %r (raw: %r); please capture it under "
            "tests/fixtures/scheduler_output/", native, raw if raw is not None else native,
        )
        return JobState.UNKNOWN
    if state is JobState.PENDING and reason:
        if reason.startswith("JobHeld"):
            return JobState.HELD
        if reason == "DependencyNeverSatisfied":
            return JobState.DEPENDENCY_NEVER_SATISFIED
    return state


def parse_sbatch(text: str) -> JobId:
    """``sbatch --parsable`` stdout → id; warnings printed before the id are ignored."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    m = _SBATCH_RE.fullmatch(lines[-1]) if lines else None
    if m is None:
        raise OutputParseError("sbatch --parsable printed no job id", raw=text)
    return JobId(m["id"])


def expand_job_id(text: str) -> list[JobId]:
    """``123`` / ``123_4`` / ``123_[2-4,7%2]`` → JobIds (the throttle suffix is dropped)."""
    m = _JOBID_RE.fullmatch(text.strip())
    if m is None:
        raise OutputParseError("not a Slurm job id", raw=text)
    base = m["base"]
    if m["task"] is None:
        return [JobId(base)]
    if m["range"] is None:
        return [JobId(base, int(m["task"]))]
    return [JobId(base, i) for i in _expand_ranges(m["range"].split("%", 1)[0], raw=text)]


def _expand_ranges(spec: str, *, raw: str) -> list[int]:
    out: list[int] = []
    for part in spec.split(","):
        step = 1
        if ":" in part:
            part, _, step_text = part.partition(":")
            step = _int(step_text, raw)
        if "-" in part:
            lo_text, _, hi_text = part.partition("-")
            lo, hi = _int(lo_text, raw), _int(hi_text, raw)
            if hi < lo or step < 1 or hi - lo > 1_000_000:
                raise OutputParseError("bad array range", raw=raw)
            out.extend(range(lo, hi + 1, step))
        else:
            out.append(_int(part, raw))
    return out


def _isint(text: str) -> bool:
    """ASCII digits only: str.isdigit() accepts '²', which int() rejects."""
    return text.isascii() and text.isdigit()


def _int(text: str, raw: str) -> int:
    if not _isint(text):
        raise OutputParseError(f"expected an integer, got {text!r}", raw=raw)
    return int(text)


def _opt(text: str) -> str | None:
    text = text.strip()
    return None if text in _EMPTY else text


# ---------------------------------------------------------------- squeue
def parse_squeue(text: str) -> list[JobStatus]:
    """Rows of ``squeue --array --format=%i<SEP>%A<SEP>%F<SEP>%K<SEP>%T<SEP>%r<SEP>%j``."""
    n = len(SQUEUE_FIELDS)
    out: list[JobStatus] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        fields = line.split(SEP, n - 1)
        if len(fields) != n:
            raise OutputParseError(f"squeue line has {len(fields)} fields, expected {n}", raw=line)
        shown, raw_id, array_id, task, native, reason, name = (f.strip() for f in fields)
        reason_opt = _opt(reason)
        state = map_state(native, reason_opt, raw=line)
        raw: str | None = None
        if task in ("N/A", ""):
            if not _isint(raw_id):
                raise OutputParseError("squeue: bad raw job id", raw=line)
            ids = [JobId(raw_id)]
            array_job_id: str | None = None
        else:
            if not _isint(array_id):
                raise OutputParseError("squeue: bad array job id", raw=line)
            if _isint(task):
                ids = [JobId(array_id, int(task))]
                raw = raw_id if _isint(raw_id) else None
            else:  # not expanded (no --array): "[2-4%2]"
                tasks = _expand_ranges(task.strip("[]").split("%", 1)[0], raw=line)
                ids = [JobId(array_id, t) for t in tasks]
            array_job_id = array_id
        if not shown:
            raise OutputParseError("squeue: empty job id", raw=line)
        for job_id in ids:
            out.append(
                JobStatus(
                    job_id=job_id,
                    state=state,
                    native_state=native,
                    reason=reason_opt,
                    name=name or None,
                    array_job_id=array_job_id,
                    raw_id=raw,
                )
            )
    return out


# ----------------------------------------------------------------- sacct
def parse_exit_code(text: str) -> tuple[int | None, int | None]:
    """sacct ``ExitCode`` ``rc:signal`` → (rc, signal or None)."""
    rc_text, sep, sig_text = text.strip().partition(":")
    if not sep or not _isint(rc_text) or not _isint(sig_text):
        raise OutputParseError("bad ExitCode", raw=text)
    sig = int(sig_text)
    return int(rc_text), (sig or None)


def parse_rss_kb(text: str) -> int | None:
    """MaxRSS like ``4504K``, ``1.5M``, ``0`` → kB (sacct default units)."""
    text = text.strip()
    if not text:
        return None
    m = _RSS_RE.fullmatch(text)
    if m is None:
        raise OutputParseError("bad MaxRSS", raw=text)
    return round(float(m["num"]) * _RSS_FACTOR_KB[m["unit"]])


def _datetime(text: str) -> datetime | None:
    value = _opt(text)
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError as exc:
        raise OutputParseError("bad timestamp", raw=text) from exc


def _duration(text: str) -> float | None:
    value = _opt(text)
    if value is None or value in ("INVALID", "UNLIMITED"):
        return None
    try:
        return parse_walltime(value)
    except ValueError as exc:
        raise OutputParseError("bad duration", raw=text) from exc


def _split_sacct(lines: Iterable[str], fields: Sequence[str], delim: str) -> list[dict[str, str]]:
    n = len(fields)
    rows: list[dict[str, str]] = []
    for line in lines:
        parts = line.split(delim)
        if len(parts) > n and delim == "|" and "JobName" in fields:
            # '|' inside a job name: the name is the only free-text column.
            k = fields.index("JobName")
            extra = len(parts) - n
            parts = [*parts[:k], "|".join(parts[k : k + extra + 1]), *parts[k + extra + 1 :]]
        if len(parts) == len(SACCT_BASE_FIELDS) and fields == SACCT_FIELDS:
            rows.append(dict(zip(SACCT_BASE_FIELDS, parts, strict=True)))  # before usage
            continue
        if len(parts) != n:
            raise OutputParseError(f"sacct line has {len(parts)} fields, expected {n}", raw=line)
        rows.append(dict(zip(fields, parts, strict=True)))
    return rows


def parse_sacct(
    text: str, fields: Sequence[str] = SACCT_FIELDS, *, delimiter: str | None = None
) -> list[AccountingRecord]:
    """``sacct --parsable2 --noheader`` rows → one record per job or array task.

    A header line (``JobIDRaw|JobID|...``) is honoured if present, so a capture
    with any field order parses. The delimiter defaults to 0x1f when present,
    else ``|``.
    """
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        return []
    delim = delimiter or (SEP if SEP in text else "|")
    first = [f.strip() for f in lines[0].split(delim)]
    if "JobID" in first and "State" in first:
        fields, lines = first, lines[1:]
    for required in ("JobID", "State"):
        if required not in fields:
            raise OutputParseError(f"sacct fields lack {required}", raw=text[:300])
    allocations, max_rss = _sacct_allocations(_split_sacct(lines, fields, delim))
    records: list[AccountingRecord] = []
    for alloc, row in allocations.items():
        records.extend(_sacct_records(alloc, row, max_rss.get(alloc), delim))
    return records


def _sacct_allocations(
    rows: Iterable[dict[str, str]],
) -> tuple[dict[str, dict[str, str]], dict[str, int]]:
    """Allocation rows by id (first-seen order, last row wins) and MaxRSS over their steps."""
    allocations: dict[str, dict[str, str]] = {}
    max_rss: dict[str, int] = {}
    for row in rows:
        job_id_text = row["JobID"].strip()
        alloc, dot, _step = job_id_text.partition(".")
        rss = parse_rss_kb(row["MaxRSS"]) if "MaxRSS" in row else None
        if rss is not None:
            max_rss[alloc] = max(rss, max_rss.get(alloc, 0))
        if not dot:
            allocations[alloc] = row
    return allocations, max_rss


def _sacct_records(
    alloc: str, row: dict[str, str], max_rss_kb: int | None, delim: str
) -> list[AccountingRecord]:
    """One allocation row -> a record per job or array task (a meta row is expanded)."""
    native = row["State"].strip()
    if not native:
        raise OutputParseError("sacct: empty State", raw=SEP.join(row.values()))
    state = map_state(native, raw=delim.join(row.values()))
    exit_code, signal = (
        parse_exit_code(row["ExitCode"]) if _opt(row.get("ExitCode", "")) else (None, None)
    )
    elapsed = _duration(row.get("Elapsed", ""))
    usage = optional_usage_of(row)
    return [
        AccountingRecord(
            job_id=job_id,
            state=state,
            native_state=native,
            exit_code=exit_code,
            signal=signal,
            elapsed_s=None if elapsed is None else int(elapsed),
            cpu_time_s=_duration(row.get("TotalCPU", "")),
            max_rss_kb=max_rss_kb,
            node_list=_opt(row.get("NodeList", "")),
            start=_datetime(row.get("Start", "")),
            end=_datetime(row.get("End", "")),
            name=row.get("JobName") or None,
            raw_id=_opt(row.get("JobIDRaw", "")),
            **usage,
        )
        for job_id in expand_job_id(alloc)
    ]


# ----------------------------------------------------------------- sinfo
def parse_owners(text: str) -> dict[str, str]:
    """``squeue_owners`` rows -> {job id as shown (123, 123_4) and raw id: user}."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        fields = line.split(SEP)
        if len(fields) != 3 or not fields[2].strip():
            continue
        raw, shown, user = (f.strip() for f in fields)
        out[shown] = user
        out[raw] = user
    return out


def parse_sinfo_nodes(text: str) -> list[NodeMetrics]:
    """``sinfo --Node --Format=<field>:0<SEP>,...`` rows → one record per node.

    sinfo -N prints a node once per partition; rows are merged and the
    partitions collected (the default partition carries a ``*``). CPUsLoad and
    FreeMem are ``N/A`` until slurmd has reported, and only as fresh as the
    last slurmctld→slurmd ping.
    """
    n = len(SINFO_FIELDS)
    nodes: dict[str, NodeMetrics] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = line.split(SEP)
        if parts and parts[-1].strip() == "":
            parts = parts[:-1]
        if len(parts) != n:
            raise OutputParseError(f"sinfo line has {len(parts)} fields, expected {n}", raw=line)
        row = dict(zip(SINFO_FIELDS, (p.strip() for p in parts), strict=True))
        name = row["NodeList"]
        if not name:
            raise OutputParseError("sinfo: empty node name", raw=line)
        partition = row["Partition"].rstrip("*")
        if name in nodes:
            prev = nodes[name]
            if partition and partition not in prev.partitions:
                nodes[name] = dataclasses.replace(prev, partitions=(*prev.partitions, partition))
            continue
        cpus = row["CPUsState"].split("/")
        if len(cpus) != 4 or not all(_isint(c) for c in cpus):
            raise OutputParseError("sinfo: bad CPUsState", raw=line)
        nodes[name] = NodeMetrics(
            name=name,
            state=row["StateLong"],
            cpu_load=_float_or_none(row["CPUsLoad"], line),
            cpus_allocated=int(cpus[0]),
            cpus_total=int(cpus[3]),
            memory_free_mb=_int_or_none(row["FreeMem"], line),
            memory_total_mb=_int_or_none(row["Memory"], line) or 0,
            memory_allocated_mb=_int_or_none(row["AllocMem"], line),
            partitions=(partition,) if partition else (),
        )
    return list(nodes.values())


def _float_or_none(text: str, raw: str) -> float | None:
    if _opt(text) is None:
        return None
    try:
        return float(text)
    except ValueError as exc:
        raise OutputParseError("expected a number", raw=raw) from exc


def _int_or_none(text: str, raw: str) -> int | None:
    if _opt(text) is None:
        return None
    if not _isint(text):
        raise OutputParseError("expected an integer", raw=raw)
    return int(text)
