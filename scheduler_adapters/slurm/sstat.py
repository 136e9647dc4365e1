"""``sstat`` for the live usage of running jobs: argv and a pure, linear-time parser.

One call for every running job: ``sstat --allsteps --noheader --parsable2 --jobs=a,b,...``.
sstat reports *steps*: a batch job has ``<id>.batch`` (the script itself), one
``<id>.<n>`` per ``srun`` and ``<id>.extern`` with ``PrologFlags=contain``; each step's
processes are counted in that step only, so a job's CPU time is the sum over its steps and
its peak memory the largest step's. ``TRESUsageInTot``'s ``cpu=`` is the step's total over
its tasks (``AveCPU`` is per task; it is the fallback, times ``NTasks``). Figures come
from ``jobacct_gather`` and are as fresh as ``JobAcctGatherFrequency`` (``task=5`` on the
test cluster). Unknown or finished ids only make sstat print ``couldn't get steps for
job N`` on stderr (exit 0 on 22.05); they are absent from the result. An array's task is
reported under its raw job id (squeue's ``%A``), and any id of an array (``123``,
``123_4``) makes sstat print every running task of it: a step printed twice counts once.

Every malformed row raises ``OutputParseError`` (hypothesis-tested); no regex with nested
quantifiers touches the text, so hostile input costs time linear in its length.
"""

from __future__ import annotations

from collections.abc import Sequence

from scheduler_adapters.errors import OutputParseError
from scheduler_adapters.live import LiveUsage
from scheduler_adapters.rendering import parse_walltime
from scheduler_adapters.slurm.parse import parse_rss_kb
from scheduler_adapters.types import JobId

SEP = "|"
SSTAT_FIELDS: tuple[str, ...] = ("JobID", "NTasks", "AveCPU", "MaxRSS", "TRESUsageInTot")
_EMPTY = ("", "N/A", "Unknown", "INVALID")
_MAX_LINE = 8192  # a real row is ~150 bytes; TRES lists grow with GPUs and energy


def sstat(job_ids: Sequence[JobId]) -> list[str]:
    """One ``sstat`` for all jobs (``--allsteps``: the batch step and every srun step)."""
    ids = sorted({str(j) for j in job_ids})
    return [
        "sstat", "--allsteps", "--noheader", "--parsable2",
        "--format=" + ",".join(SSTAT_FIELDS), "--jobs=" + ",".join(ids),
    ]  # fmt: skip


def _duration(text: str, raw: str) -> float | None:
    value = text.strip()
    if value in _EMPTY:
        return None
    try:
        return parse_walltime(value)
    except ValueError as exc:
        raise OutputParseError("sstat: bad CPU time", raw=raw) from exc


def _tres_cpu(text: str, raw: str) -> float | None:
    """``cpu=00:01:02,mem=6312K,...`` -> the cpu entry's seconds (None when absent)."""
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if sep and key.strip() == "cpu":
            return _duration(value, raw)
    return None


def _job_of(step_text: str, raw: str) -> JobId:
    """``123.batch`` / ``123_4.0`` -> the job (or array task) the step belongs to."""
    job, dot, step = step_text.strip().partition(".")
    base, underscore, task = job.partition("_")
    ok_base = base.isascii() and base.isdigit()
    ok_task = not underscore or (task.isascii() and task.isdigit() and len(task) < 10)
    if not dot or not step or not ok_base or not ok_task:
        raise OutputParseError("sstat: bad step id", raw=raw)
    return JobId(base, int(task) if underscore else None)


def _row(line: str) -> tuple[JobId, float | None, int | None]:
    if len(line) > _MAX_LINE:
        raise OutputParseError("sstat: line too long", raw=line[:300])
    parts = line.split(SEP)
    if len(parts) != len(SSTAT_FIELDS):
        raise OutputParseError(
            f"sstat line has {len(parts)} fields, expected {len(SSTAT_FIELDS)}", raw=line
        )
    step, ntasks, ave_cpu, max_rss, tres = parts
    job = _job_of(step, line)
    cpu = _tres_cpu(tres, line)
    if cpu is None:
        ave = _duration(ave_cpu, line)
        tasks = ntasks.strip()
        n = int(tasks) if tasks.isascii() and tasks.isdigit() and len(tasks) < 7 else 1
        cpu = None if ave is None else ave * n
    rss_text = max_rss.strip()
    rss = None if rss_text in _EMPTY else parse_rss_kb(rss_text)
    return job, cpu, rss


def parse_sstat(text: str) -> dict[JobId, LiveUsage]:
    """Rows of ``sstat --parsable2 --noheader --format=<SSTAT_FIELDS>`` -> usage per job."""
    cpu: dict[JobId, float | None] = {}
    rss: dict[JobId, int | None] = {}
    parts: dict[JobId, int] = {}
    seen: set[str] = set()
    for line in text.splitlines():
        if not line.strip():
            continue
        job, step_cpu, step_rss = _row(line)
        step = line.split(SEP, 1)[0].strip()
        if step in seen:  # an array's task asked twice (sstat expands any id to the array)
            continue
        seen.add(step)
        parts[job] = parts.get(job, 0) + 1
        if step_cpu is not None:
            cpu[job] = (cpu.get(job) or 0.0) + step_cpu
        else:
            cpu.setdefault(job, None)
        if step_rss is not None:
            rss[job] = max(step_rss, rss.get(job) or 0)
        else:
            rss.setdefault(job, None)
    return {job: LiveUsage(job, cpu[job], rss[job], parts[job]) for job in parts}
