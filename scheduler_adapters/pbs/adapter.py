"""PbsAdapter: drives PBS Pro / OpenPBS or Torque through their CLI and a Runner.

=============  ===================================================================
submit         ``qsub [-h] [-W depend=afterok:a:b] [-J 0-9%k | -t 0-9%k] script``
release        ``qrls <ids>``
cancel         ``qdel <ids>`` (unknown or finished ids are not an error)
status         one ``qstat -f -F json [-t] <ids>`` (PBS Pro) / ``qstat -f [-t] <ids>``
accounting     one ``qstat -f -F json -x [-t] <ids>`` (PBS Pro history) /
               ``qstat -f <ids>`` (Torque keeps C jobs for ``keep_completed``)
find_by_name   the same qstat for all jobs (``-u user`` if configured), filtered
               on ``Job_Name``
node_metrics   ``pbsnodes -a -F json`` / ``pbsnodes -a``
live_usage     ``resources_used`` of running jobs in the same one ``qstat -f`` (not the
               Slurm wrappers: they print none)
queue_summary  ``qstat -Q`` (every user; the Slurm wrappers: ``qstat -f`` counted)
=============  ===================================================================

``flavor`` ("pbspro" | "torque") picks the array option, the dependency
spelling for arrays and the exit-code table. ``output="auto"`` uses JSON on
PBS Pro and falls back to text, once and for good, when qstat/pbsnodes answer
"Unknown option" (the capability probe of style.md 8.2); Torque is text only.

``slurm_wrappers=True`` targets Debian's ``slurm-wlm-torque`` (qsub/qstat/...
implemented over Slurm). They behave like Torque for submit, status, cancel,
dependencies and release, but cannot show a hold, per-task array state, an exit
status, or node allocation; :attr:`capabilities` is narrowed accordingly and
:attr:`unsupported_reasons` says why (the contract suite skips on it).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar, Literal

from scheduler_adapters.cli_base import COMMON_TRANSIENT_ERRORS, CliAdapter
from scheduler_adapters.errors import CommandFailed
from scheduler_adapters.live import LiveUsage
from scheduler_adapters.pbs import commands, pbsnodes, qstat, qsub, queues, records, values
from scheduler_adapters.pbs.commands import Flavor
from scheduler_adapters.queue_summary import PartitionLoad
from scheduler_adapters.rendering import format_mem_mb
from scheduler_adapters.runners.base import Runner
from scheduler_adapters.types import (
    AccountingRecord,
    CommandResult,
    JobId,
    JobSpec,
    JobStatus,
    NodeMetrics,
)

OutputFormat = Literal["auto", "json", "text"]

ALL_CAPABILITIES: frozenset[str] = frozenset(
    {
        "submit",
        "status",
        "cancel",
        "release",
        "hold",
        "dependencies",
        "arrays",
        "array_throttle",
        "accounting",
        "final_state",
        "find_by_name",
        "node_metrics",
        "live_usage",
    }
)

#: Why the slurm-wlm-torque wrappers cannot do what a real PBS does (verified
#: against the captures in tests/fixtures/scheduler_output/torque-wrappers-slurm-22.05).
WRAPPER_GAPS: Mapping[str, str] = {
    "hold": "qsub -h holds the job in Slurm, but the qstat wrapper maps every pending "
    "job to Q, so HELD is never observable (qrls works)",
    "arrays": "qsub -J/-t submits a Slurm array and prints only its id; qstat lists the "
    "tasks under their raw Slurm job ids, not as <id>[<index>], so tasks cannot be "
    "addressed or observed",
    "array_throttle": "the %k throttle reaches sbatch --array, but tasks are not observable",
    "accounting": "the wrappers have no qstat -x and print no exit_status; finished jobs "
    "are C for every outcome and vanish after Slurm's MinJobAge",
    "final_state": "every finished job is C without exit_status, so COMPLETED, FAILED, "
    "CANCELLED and TIMEOUT cannot be told apart (reported as UNKNOWN)",
    "node_metrics": "pbsnodes -a prints np and availmem but no per-node allocation",
    "live_usage": "the qstat wrapper prints no resources_used (cput, mem) for a running job",
}

# qstat/qdel complaints that only mean "that job is not (or no longer) here".
_BENIGN_LINE_RE = re.compile(
    r"Unknown Job Id|Job has finished|does not exist|Invalid job id"
    r"|already (?:done|finished|completed)",
    re.IGNORECASE,
)


class PbsAdapter(CliAdapter):
    """PBS Pro / OpenPBS / Torque adapter; see the module docstring."""

    name: ClassVar[str] = "pbs"
    directives: ClassVar[str] = "pbs"
    #: What this adapter can do against the configured backend (narrowed per instance).
    capabilities: frozenset[str] = ALL_CAPABILITIES
    #: capability -> why it is missing, for every capability not in ``capabilities``.
    unsupported_reasons: Mapping[str, str] = {}

    permanent_errors: ClassVar[tuple[re.Pattern[str], ...]] = tuple(
        re.compile(p, re.IGNORECASE)
        for p in (
            r"Unknown queue",
            r"Unauthorized Request",
            r"illegal -\w value",
            r"Illegal attribute or resource value",
            r"Unknown resource",
            r"Job exceeds queue (?:and/or server )?resource limits",
            r"Job violates queue and/or server resource limits",
            r"Bad UID for job execution",
            r"Invalid (?:partition|account)",  # the Slurm wrappers pass sbatch's message on
            r"Batch job submission failed",
            r"qsub: script file",
            r"Unknown option",
            r"invalid option",
        )
    )
    transient_errors: ClassVar[tuple[re.Pattern[str], ...]] = (
        *(
            re.compile(p, re.IGNORECASE)
            for p in (
                r"cannot connect to server",
                r"Connection refused",
                r"Server (?:is )?(?:unavailable|busy)",
                r"pbs_iff",
                r"Premature end of message",
                r"Unable to contact slurm controller",
                r"Socket timed out",
            )
        ),
        *COMMON_TRANSIENT_ERRORS,
    )

    def __init__(
        self,
        runner: Runner,
        *,
        flavor: Flavor = "pbspro",
        output: OutputFormat = "auto",
        slurm_wrappers: bool = False,
        user: str | None = None,
        template_dirs: Sequence[str | Path] = (),
        timeout: float = 60.0,
        **options: Any,
    ) -> None:
        super().__init__(runner, template_dirs=template_dirs, timeout=timeout, **options)
        if flavor not in commands.FLAVORS:
            raise ValueError(f"unknown PBS flavor {flavor!r} (expected one of {commands.FLAVORS})")
        if output not in ("auto", "json", "text"):
            raise ValueError(f"output must be auto, json or text, not {output!r}")
        if slurm_wrappers and flavor != "torque":
            raise ValueError("the slurm-wlm-torque wrappers imitate Torque: use flavor='torque'")
        if output == "json" and flavor == "torque":
            raise ValueError("Torque has no JSON output (qstat -F json is PBS Pro only)")
        self.flavor: Flavor = flavor
        self.slurm_wrappers = slurm_wrappers
        self.user = user
        self._output: OutputFormat = output
        # JSON until a probe says otherwise (PBS Pro); Torque and the wrappers: text.
        self._json = flavor == "pbspro" and output != "text"
        if slurm_wrappers:
            self.capabilities = ALL_CAPABILITIES - WRAPPER_GAPS.keys()
            self.unsupported_reasons = dict(WRAPPER_GAPS)

    @property
    def uses_json(self) -> bool:
        return self._json

    # ------------------------------------------------------------ rendering
    def output_paths(self, spec: JobSpec) -> tuple[PurePosixPath | None, PurePosixPath | None]:
        """Where stdout/stderr go; None for PBS Pro arrays (default names are per subjob)."""
        if spec.array is not None and self.flavor == "pbspro":
            return None, None
        return spec.workdir / f"{spec.name}.out", spec.workdir / f"{spec.name}.err"

    def render_extra(self, spec: JobSpec) -> Mapping[str, Any]:
        """Resource strings computed here so the template stays declarative.

        ``nodes`` chunks/nodes, each with ``ceil(tasks/nodes)`` MPI ranks of
        ``cpus_per_task`` cores; memory and GPUs are per node (like Slurm's
        ``--mem``), Torque's ``-l mem`` is the job total.
        """
        r = spec.resources
        ranks = math.ceil(r.tasks / r.nodes)
        ncpus = ranks * r.cpus_per_task
        gpus_per_node = math.ceil(r.gpus / r.nodes) if r.gpus else 0
        select = f"{r.nodes}:ncpus={ncpus}:mpiprocs={ranks}:ompthreads={r.cpus_per_task}"
        if r.memory_mb:
            select += f":mem={format_mem_mb(r.memory_mb, 'pbs')}"
        if gpus_per_node:
            select += f":ngpus={gpus_per_node}"
        nodes = f"{r.nodes}:ppn={ncpus}" + (f":gpus={gpus_per_node}" if gpus_per_node else "")
        stdout, stderr = self.output_paths(spec)
        return {
            "pbs_flavor": self.flavor,
            "pbs_select": select,
            "pbs_nodes": nodes,
            "pbs_total_mem_mb": r.memory_mb * r.nodes if r.memory_mb else None,
            "pbs_stdout": str(stdout) if stdout else None,
            "pbs_stderr": str(stderr) if stderr else None,
        }

    # ----------------------------------------------------------- submission
    def submit_argv(
        self,
        script: PurePosixPath,
        spec: JobSpec,
        *,
        after_ok: Sequence[JobId],
        hold: bool,
    ) -> list[str]:
        stdout, stderr = self.output_paths(spec)
        if self.slurm_wrappers and spec.array is not None and stdout and stderr:
            # sbatch expands %a; mirrors Torque's own "-<index>" suffix for array output
            stdout = stdout.with_name(stdout.name + "-%a")
            stderr = stderr.with_name(stderr.name + "-%a")
        return commands.qsub(
            script,
            flavor=self.flavor,
            after_ok=after_ok,
            hold=hold,
            array=spec.array,
            wrappers=self.slurm_wrappers,
            stdout_path=stdout,
            stderr_path=stderr,
        )

    def parse_submit(self, result: CommandResult) -> JobId:
        return qsub.parse_qsub(result)

    # ------------------------------------------------------------- control
    def release(self, job_id: JobId) -> None:
        self._run(commands.qrls([job_id]))

    def cancel(self, job_ids: Sequence[JobId]) -> None:
        """qdel all; jobs that already left the server are not an error."""
        if not job_ids:
            return
        self._run_tolerant(commands.qdel(job_ids))

    # --------------------------------------------------------------- reads
    def status(self, job_ids: Sequence[JobId] | None = None) -> dict[JobId, JobStatus]:
        """One qstat for all ``job_ids`` (live queue only: a missing job is absent, not done)."""
        if job_ids is not None and not job_ids:
            return {}
        jobs = self._qstat(job_ids, finished=False)
        selected = self._select(jobs, job_ids)
        return {key: records.to_status(job, self.flavor) for key, job in selected}

    def accounting(self, job_ids: Sequence[JobId]) -> list[AccountingRecord]:
        """One ``qstat -x`` (PBS Pro) or ``qstat`` (Torque keeps C jobs) for all ``job_ids``."""
        if not job_ids:
            return []
        jobs = self._qstat(job_ids, finished=True)
        out = []
        for key, job in self._select(jobs, job_ids):
            record = records.to_accounting(job, self.flavor, slurm_wrappers=self.slurm_wrappers)
            out.append(record if key == record.job_id else _with_id(record, key))
        return out

    def find_by_name(self, name: str) -> list[JobId]:
        """Jobs (live and, on PBS Pro, finished) whose ``Job_Name`` is ``name``."""
        jobs = self._qstat(None, finished=True)
        return sorted({job.job_id for job in jobs if job.name == name})

    def node_metrics(self) -> list[NodeMetrics]:
        if self._json:
            result = self._run_json_or_fallback(commands.pbsnodes(json=True), as_self=True)
            if result is not None:
                return pbsnodes.parse_pbsnodes_json(result.stdout)
        return pbsnodes.parse_pbsnodes_text(
            self._run(commands.pbsnodes(json=False), as_self=True).stdout
        )

    def queue_summary(self) -> list[PartitionLoad]:
        """Every user's jobs per queue: ``qstat -Q``; the Slurm wrappers print ``?`` there, so
        with them one all-users ``qstat -f`` is counted instead."""
        if not self.slurm_wrappers:
            loads = queues.parse_qstat_queues(self._run(queues.qstat_queues(), as_self=True).stdout)
            if loads is not None:
                return loads
        argv = commands.qstat_full(None, json=False)
        return queues.count_jobs(qstat.parse_qstat_text(self._run_tolerant(argv).stdout))

    def live_usage(self, job_ids: Sequence[JobId]) -> dict[JobId, LiveUsage]:
        """``resources_used.cput``/``mem`` of the running jobs, from one ``qstat -f``."""
        if not job_ids or "live_usage" not in self.capabilities:
            return {}
        out: dict[JobId, LiveUsage] = {}
        for key, job in self._select(self._qstat(job_ids, finished=False), job_ids):
            if job.state != "R":
                continue
            native = job.native_id
            cput = values.optional(job.get("resources_used.cput"), values.parse_duration,
                                   native, "cput")  # fmt: skip
            mem = values.optional(job.get("resources_used.mem"), values.parse_size_kb,
                                  native, "mem")  # fmt: skip
            if cput is not None or mem is not None:
                out[key] = LiveUsage(key, cput, mem)
        return out

    # ------------------------------------------------------------- helpers
    def _qstat(self, job_ids: Sequence[JobId] | None, *, finished: bool) -> list[qstat.PbsJob]:
        """Run one ``qstat -f`` in the best available format and parse it."""
        subjobs = not self.slurm_wrappers and (
            job_ids is None or any(commands.is_array_id(j) or j.task is not None for j in job_ids)
        )
        user = None if self.slurm_wrappers else self.user  # wrapper -u switches to a table
        if self._json:
            argv = commands.qstat_full(
                job_ids,
                json=True,
                finished=finished and self.flavor == "pbspro",
                subjobs=subjobs,
                user=user,
            )
            result = self._run_json_or_fallback(argv, tolerant=True)
            if result is not None:
                return qstat.parse_qstat_json(result.stdout) if result.stdout.strip() else []
        argv = commands.qstat_full(
            job_ids,
            json=False,
            finished=finished and self.flavor == "pbspro",
            subjobs=subjobs,
            user=user,
        )
        return qstat.parse_qstat_text(self._run_tolerant(argv).stdout)

    def _run_json_or_fallback(
        self, argv: Sequence[str], *, tolerant: bool = False, as_self: bool = False
    ) -> CommandResult | None:
        """Run a ``-F json`` command; None (and text mode from now on) if it is refused."""
        try:
            return self._run_tolerant(argv) if tolerant else self._run(argv, as_self=as_self)
        except CommandFailed as exc:
            if (
                self._output == "auto"
                and exc.result is not None
                and qsub.is_unknown_option(exc.result)
            ):
                self.log.warning("%s refuses -F json; using text output from now on", argv[0])
                self._json = False
                return None
            raise

    def _run_tolerant(self, argv: Sequence[str]) -> CommandResult:
        """Like ``_run`` but a non-zero exit caused only by unknown/finished ids is fine.

        PBS exits 153 (PBSE_UNKJOBID & 0xff) or 35 (finished, history) and names
        the job on stderr, yet still prints the jobs it knows. The Slurm qdel
        wrapper exits with the number of failed ids and prints nothing for an
        id that is done or unknown.
        """
        result = self._run(argv, ok_returncodes=range(-64, 256))
        if result.returncode == 0:
            return result
        complaints = [line for line in result.stderr.splitlines() if line.strip()]
        if complaints:
            benign = all(_BENIGN_LINE_RE.search(line) for line in complaints)
        else:
            benign = not result.stdout.strip() and (self.slurm_wrappers or result.returncode == 153)
        if not benign:
            raise CommandFailed.from_result(result, transient=self.classify_transient(result))
        return result

    def _select(
        self, jobs: Sequence[qstat.PbsJob], job_ids: Sequence[JobId] | None
    ) -> list[tuple[JobId, qstat.PbsJob]]:
        """Pair parsed jobs with the ids the caller used (server spelling may differ).

        Asking for an array id (``123[].srv``) also returns its subjobs, keyed
        ``JobId("123[].srv", i)``.
        """
        if job_ids is None:
            return [(job.job_id, job) for job in jobs]
        wanted = {values.job_key(j): j for j in job_ids}
        out: list[tuple[JobId, qstat.PbsJob]] = []
        for job in jobs:
            key = values.job_key(job.job_id)
            if key in wanted:
                out.append((wanted[key], job))
                continue
            parent = (key[0], None, key[2])
            if job.job_id.task is not None and parent in wanted:
                out.append((JobId(wanted[parent].value, job.job_id.task), job))
        return out

    # --------------------------------------------------------------- probe
    @classmethod
    def detect(cls, runner: Runner, **kwargs: Any) -> PbsAdapter:
        """Build an adapter for whatever ``qsub --version`` says is installed.

        PBS Pro/OpenPBS print ``pbs_version = ...``, Torque ``Version: ...``;
        the Slurm wrappers refuse the option (``Unknown option: version``).
        """
        result = runner.run(commands.qsub_version(), timeout=kwargs.get("timeout", 60.0))
        flavor, wrappers, _version = qsub.parse_qsub_version(result)
        return cls(runner, flavor=flavor, slurm_wrappers=wrappers, **kwargs)


def _with_id(record: AccountingRecord, job_id: JobId) -> AccountingRecord:
    return replace(record, job_id=job_id)
