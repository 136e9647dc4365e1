"""SlurmAdapter: drives Slurm (tested on 22.05.8) through its CLI and a Runner.

Command choices (all argv lists, built in ``commands.py``, parsed in ``parse.py``):

=============  ==============================================================
submit         ``sbatch --parsable [--dependency=afterok:a:b --kill-on-invalid-dep=yes]
               [--hold] script``
release        ``scontrol release <ids>``
cancel         ``scancel <ids>`` (unknown/finished ids are not an error)
status         one ``squeue --array --states=all --format=<0x1f separated>`` call
accounting     one ``sacct --parsable2 --noheader --delimiter=0x1f`` call
find_by_name   ``squeue --name`` (live) + ``sacct --name --starttime=now-7days``
node_metrics   ``sinfo --Node --Format=<long names>``, deduplicated per node
live_usage     one ``sstat --allsteps --parsable2`` call, summed per job (``sstat.py``)
queue_summary  ``squeue --all --array --format=%P<0x1f>%T`` (every user)
=============  ==============================================================

Semantics: ``status`` reports what squeue knows (including finished jobs for
``MinJobAge`` seconds); a job missing from it is *not* completed, callers ask
``accounting`` next. Array jobs are reported per task (``JobId("123", 4)``), and
asking for the array id (``JobId("123")``) returns all of its tasks.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

from scheduler_adapters.cli_base import COMMON_TRANSIENT_ERRORS, CliAdapter
from scheduler_adapters.errors import CommandFailed
from scheduler_adapters.live import LiveUsage
from scheduler_adapters.queue_summary import PartitionLoad
from scheduler_adapters.runners.base import Runner
from scheduler_adapters.slurm import commands, parse, queue, sstat
from scheduler_adapters.types import (
    AccountingRecord,
    CommandResult,
    JobId,
    JobSpec,
    JobStatus,
    NodeMetrics,
)

# sstat's only complaint about an id that has no running step (unknown, or finished).
_NO_STEPS = "couldn't get steps for job"


def _matches(job_id: JobId, wanted: set[JobId]) -> bool:
    """A task matches when asked for itself or for its whole array."""
    return job_id in wanted or (job_id.task is not None and JobId(job_id.value) in wanted)


class SlurmAdapter(CliAdapter):
    name: ClassVar[str] = "slurm"
    directives: ClassVar[str] = "slurm"
    # Request errors: retrying cannot help (messages from sbatch/slurmctld 22.05).
    permanent_errors: ClassVar[tuple[re.Pattern[str], ...]] = tuple(
        re.compile(p, re.IGNORECASE)
        for p in (
            r"Invalid partition",
            r"Invalid account",
            r"Invalid qos",
            r"Invalid job id",
            r"Invalid dependency",
            r"Job dependency problem",
            r"Requested node configuration is not available",
            r"Requested time limit is invalid",
            r"Memory specification can not be satisfied",
            r"More processors requested than permitted",
            r"Invalid generic resource",
            r"unrecognized option",
            r"invalid option",
            r"Unable to open file",
        )
    )
    # The controller is down, restarting or overloaded: the cluster's fault.
    transient_errors: ClassVar[tuple[re.Pattern[str], ...]] = (
        *(
            re.compile(p, re.IGNORECASE)
            for p in (
                r"Socket timed out",
                r"Unable to contact slurm controller",
                r"Slurm backup controller in standby mode",
                r"Connection refused",
                r"Zero Bytes were transmitted or received",
                r"Communication connection failure",
                r"slurm_load_(jobs|partitions|node) error: (?!Invalid)",
                r"Resource temporarily unavailable",
                r"Slurm temporarily unable to accept job",
                r"error: Sending PersistInit msg",  # slurmdbd down (sacct)
                r"Problem talking to the database",
            )
        ),
        *COMMON_TRANSIENT_ERRORS,
    )

    def __init__(
        self,
        runner: Runner,
        *,
        template_dirs: Sequence[str | Path] = (),
        timeout: float = 60.0,
        user_only: bool = True,
        find_window: str = commands.DEFAULT_FIND_WINDOW,
        **options: Any,
    ) -> None:
        super().__init__(runner, template_dirs=template_dirs, timeout=timeout, **options)
        self.user_only = user_only
        self.find_window = find_window

    # ----------------------------------------------------------- submission
    def submit_argv(
        self,
        script: PurePosixPath,
        spec: JobSpec,
        *,
        after_ok: Sequence[JobId],
        hold: bool,
    ) -> list[str]:
        return commands.sbatch(
            script, after_ok=after_ok, hold=hold, export_all=True
        )

    def parse_submit(self, result: CommandResult) -> JobId:
        return parse.parse_sbatch(result.stdout)

    def release(self, job_id: JobId) -> None:
        self._run(commands.scontrol_release([job_id]))

    def cancel(self, job_ids: Sequence[JobId]) -> None:
        """Idempotent: scancel exits 0 for finished/unknown ids (it only warns)."""
        if job_ids:
            self._run(commands.scancel(list(job_ids)))

    # ---------------------------------------------------------------- reads
    def status(self, job_ids: Sequence[JobId] | None = None) -> dict[JobId, JobStatus]:
        if job_ids is not None and not job_ids:
            return {}
        argv = commands.squeue(list(job_ids) if job_ids else None, user_only=self.user_only)
        rows = parse.parse_squeue(self._run(argv).stdout)
        wanted = set(job_ids) if job_ids else None
        return {r.job_id: r for r in rows if wanted is None or _matches(r.job_id, wanted)}

    def accounting(self, job_ids: Sequence[JobId]) -> list[AccountingRecord]:
        if not job_ids:
            return []
        records = parse.parse_sacct(self._run(commands.sacct(list(job_ids))).stdout)
        wanted = set(job_ids)
        return [r for r in records if _matches(r.job_id, wanted)]

    def find_by_name(self, name: str) -> list[JobId]:
        """Ids (array ids for arrays) of jobs named ``name``, live or finished recently."""
        found: dict[JobId, None] = {}
        live = parse.parse_squeue(
            self._run(commands.squeue_by_name(name, user_only=self.user_only)).stdout
        )
        for status in live:
            if status.name == name:
                found[JobId(status.job_id.value)] = None
        past = parse.parse_sacct(
            self._run(commands.sacct_by_name(name, since=self.find_window)).stdout
        )
        for record in past:
            if record.name == name:
                found[JobId(record.job_id.value)] = None
        return sorted(found)

    def job_owners(self, job_ids: Sequence[JobId]) -> dict[JobId, str]:
        """The user each live job runs as: a dispatcher that submits as several accounts
        cancels each job as its own (only the owner or root may ``scancel``)."""
        if not job_ids:
            return {}
        found = parse.parse_owners(self._run(commands.squeue_owners(list(job_ids))).stdout)
        return {j: found[str(j)] for j in job_ids if str(j) in found}

    def node_metrics(self, nodes: Sequence[str] | None = None) -> list[NodeMetrics]:
        return parse.parse_sinfo_nodes(
            self._run(commands.sinfo_nodes(nodes), as_self=True).stdout
        )

    def queue_summary(self) -> list[PartitionLoad]:
        """Every user's pending and running jobs per partition: one ``squeue --all``."""
        return queue.parse_queue_summary(self._run(queue.squeue_all(), as_self=True).stdout)

    def live_usage(self, job_ids: Sequence[JobId]) -> dict[JobId, LiveUsage]:
        """One ``sstat`` for all running jobs; a job with no step sampled yet is absent."""
        if not job_ids:
            return {}
        result = self._run(sstat.sstat(job_ids), ok_returncodes=range(256))
        complaints = [ln for ln in result.stderr.splitlines() if ln.strip()]
        if result.returncode != 0 and not all(_NO_STEPS in ln for ln in complaints):
            raise CommandFailed.from_result(result, transient=self.classify_transient(result))
        wanted = set(job_ids)
        return {j: u for j, u in sstat.parse_sstat(result.stdout).items() if _matches(j, wanted)}

    def test_only(self, spec: JobSpec) -> CommandResult:
        """``sbatch --test-only``: slurmctld validates the script without queueing it."""
        script = self.write_script(spec)
        return self._run(commands.sbatch_test_only(script))
