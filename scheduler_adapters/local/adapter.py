"""LocalAdapter: the "no cluster at all" executor (``hpcgate demo``, laptops, CI).

It honours the same contract as the Slurm adapter (see ``scheduler_adapters.base``)
with plain processes on this machine:

* ``submit`` renders the script like any adapter (header partial
  ``_local_directives.j2``), records the job under
  ``<scratch_root>/.hpcgate-local/jobs/<id>/`` and starts a detached
  *supervisor* (``subprocess.Popen(start_new_session=True)`` running
  ``python -m scheduler_adapters.local.supervisor supervise <job dir>``;
  ``local/supervisor.py``). Job records live in ``local/store.py``.
* The supervisor waits while the job is held, then until every ``after_ok``
  parent has ended. A parent that did not end with all ``.ec`` files saying 0
  (failed, cancelled, itself never satisfied, or unknown) makes the child
  DEPENDENCY_NEVER_SATISFIED, which cascades down a chain, like Slurm's
  ``kill_invalid_depend``. Then it runs the script with bash once (or once per
  array index, at most ``max_concurrent`` at a time), each task in its own
  process group, recording ``<id>.pid`` and ``<id>.exit`` (exit status plus
  rusage) in the job's own record directory; the ``.ec`` file the template's
  epilogue writes stays in ``<workdir>/.hpcgate/``.
* A task starts with an allow-listed environment (``scheduler_adapters.environment``:
  basic login variables plus the ``pass_environment`` names), never the service's.
  With ``run_as`` (the service started as root), the supervisor stays root but each task
  runs as that account (``Popen(user=, group=, extra_groups=)``) and opens its own output
  files and working directory *as the account*, so nothing the account controls
  (a symlink planted in its directory) is ever followed by root.
* ``cancel`` marks the job, then SIGTERMs the supervisor and each running task's
  process group (SIGKILL after ``kill_wait`` seconds). Pids are checked against
  their recorded start time first, so a reused pid is never signalled.
* ``live_usage`` sums ``/proc`` over each running task's process group (``local/proc.py``).
* ``status``/``accounting`` are computed from those files only, so a restarted
  service (or a second process) sees the same jobs. Ids look like ``L12`` and
  ``L12_3`` so they can never be mistaken for a real scheduler's ids.

Limits: it is not a scheduler. Resources are advisory, there is no global limit
across jobs (only ``max_parallel`` per job), and a machine reboot loses running
jobs (they show as UNKNOWN with native state ``LOST``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

from scheduler_adapters.cli_base import CliAdapter
from scheduler_adapters.environment import allowed_environment
from scheduler_adapters.errors import JobNotFound, UnsupportedFeature
from scheduler_adapters.live import LiveUsage
from scheduler_adapters.local.files import live_pid, pid_record, read_text, write_atomic
from scheduler_adapters.local.proc import group_usage
from scheduler_adapters.local.store import STATE_DIRNAME, Store, TaskView, task_keys
from scheduler_adapters.queue_summary import PartitionLoad
from scheduler_adapters.runners.base import Runner
from scheduler_adapters.runners.local import LocalRunner
from scheduler_adapters.types import (
    AccountingRecord,
    JobId,
    JobSpec,
    JobState,
    JobStatus,
    NodeMetrics,
)

log = logging.getLogger("scheduler_adapters.local")

# Registry of supervisors started by this process, polled to reap them (no zombies).
_SPAWNED: list[subprocess.Popen[bytes]] = []


# ------------------------------------------------------------------ adapter
class LocalAdapter(CliAdapter):
    """See the module docstring. Works with :class:`LocalRunner` only."""

    name: ClassVar[str] = "local"
    directives: ClassVar[str] = "local"

    def __init__(
        self,
        runner: Runner,
        *,
        template_dirs: Sequence[str | Path] = (),
        max_parallel: int | None = None,
        poll_interval: float = 0.1,
        kill_wait: float = 5.0,
        **options: Any,
    ) -> None:
        if not isinstance(runner, LocalRunner):
            raise UnsupportedFeature(
                f"the local adapter runs jobs on this machine and needs a LocalRunner, "
                f"not {type(runner).__name__}"
            )
        super().__init__(runner, template_dirs=template_dirs, **options)
        if self.run_as is not None and os.geteuid() != 0:
            raise UnsupportedFeature(
                f"the local executor can run jobs as {self.run_as!r} only when started as root"
            )
        self.store = Store(Path(str(runner.scratch_root)) / STATE_DIRNAME)
        self.max_parallel = max(1, max_parallel or os.cpu_count() or 1)
        self.poll_interval = poll_interval
        self.kill_wait = kill_wait

    # ----------------------------------------------------------- submission
    def submit(
        self, spec: JobSpec, *, after_ok: Sequence[JobId] = (), hold: bool = False
    ) -> JobId:
        _reap()
        script = self.write_script(spec)
        job_id = self.store.next_id()
        d = self.store.job_dir(job_id)
        d.mkdir(parents=True)
        os.chmod(self.store.root, 0o700)  # job records: the service's, not the jobs'
        job = {
            "id": job_id,
            "name": spec.name,
            "workdir": str(spec.workdir),
            "script": str(script),
            "after_ok": [str(j) for j in after_ok],
            "indices": list(spec.array.indices) if spec.array else None,
            "max_concurrent": (spec.array.max_concurrent if spec.array else None),
            "max_parallel": self.max_parallel,
            "poll_interval": self.poll_interval,
            "kill_wait": self.kill_wait,
            "run_as": self.run_as,
            "pass_environment": list(self.pass_environment),
            "submitted": time.time(),
        }
        if hold:
            (d / "held").touch()
        write_atomic(d / "job.json", json.dumps(job, indent=1))
        with open(d / "supervisor.log", "ab") as logfile:
            proc = subprocess.Popen(
                [sys.executable, "-c", _SUPERVISOR_BOOT, "supervise", str(d)],
                env=_supervisor_env(),
                stdin=subprocess.DEVNULL,
                stdout=logfile,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
            )
        _SPAWNED.append(proc)
        write_atomic(d / "supervisor.pid", pid_record(proc.pid))
        self.log.info("submitted %s as %s", spec.name, job_id)
        return JobId(job_id)

    def release(self, job_id: JobId) -> None:
        if self.store.load(job_id.value) is None:
            raise JobNotFound(f"no local job {job_id}")
        with contextlib.suppress(FileNotFoundError):
            (self.store.job_dir(job_id.value) / "held").unlink()

    def cancel(self, job_ids: Sequence[JobId]) -> None:
        """Idempotent; unknown ids are ignored, as ``scancel`` does."""
        _reap()
        for jid in job_ids:
            job = self.store.load(jid.value)
            if job is None:
                continue
            d = self.store.job_dir(jid.value)
            keys = [k for k, i in task_keys(job) if jid.task is None or i == jid.task]
            if jid.task is None:
                (d / "cancelled").touch()
                supervisor = live_pid(read_text(d / "supervisor.pid"))
                if supervisor is not None:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(supervisor, signal.SIGTERM)
            for key in keys:
                (d / f"cancel-{key}").touch()
                pid = live_pid(read_text(self.store.records_dir(job) / f"{key}.pid"))
                if pid is not None:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(pid, signal.SIGTERM)

    # ---------------------------------------------------------------- reads
    def _views(self, job_ids: Sequence[JobId] | None) -> Iterator[TaskView]:
        _reap()
        wanted = None if job_ids is None else list(job_ids)
        values = self.store.all_ids() if wanted is None else sorted({j.value for j in wanted})
        for value in values:
            for view in self.store.view(value) or []:
                if wanted is None or view.job_id in wanted or JobId(value) in wanted:
                    yield view

    def status(self, job_ids: Sequence[JobId] | None = None) -> dict[JobId, JobStatus]:
        out: dict[JobId, JobStatus] = {}
        for v in self._views(job_ids):
            job = self.store.load(v.job_id.value) or {}
            out[v.job_id] = JobStatus(
                job_id=v.job_id,
                state=v.state,
                native_state=v.native,
                reason=v.reason,
                name=job.get("name"),
                array_job_id=v.job_id.value if v.job_id.task is not None else None,
            )
        return out

    def accounting(self, job_ids: Sequence[JobId]) -> list[AccountingRecord]:
        records: list[AccountingRecord] = []
        for v in self._views(job_ids):
            job = self.store.load(v.job_id.value) or {}
            ex = v.exit or {}
            start = ex.get("start")
            end = ex.get("end")
            signal_no = ex.get("signal")
            records.append(
                AccountingRecord(
                    job_id=v.job_id,
                    state=v.state,
                    native_state=v.native,
                    exit_code=ex.get("rc") if v.exit is not None else None,
                    signal=signal_no or None,
                    elapsed_s=int(end - start) if start is not None and end is not None else None,
                    cpu_time_s=ex.get("cpu_s"),
                    max_rss_kb=ex.get("maxrss_kb"),
                    node_list=ex.get("host"),
                    start=datetime.fromtimestamp(start) if start is not None else None,
                    end=datetime.fromtimestamp(end) if end is not None else None,
                    name=job.get("name"),
                    raw_id=str(v.job_id),
                )
            )
        return records

    def live_usage(self, job_ids: Sequence[JobId]) -> dict[JobId, LiveUsage]:
        """CPU time and memory of each running task's process group (``local/proc.py``)."""
        leaders: dict[int, JobId] = {}
        for v in self._views(job_ids):
            job = self.store.load(v.job_id.value)
            if job is None or v.state is not JobState.RUNNING:
                continue
            key = next((k for k, i in task_keys(job) if i == v.job_id.task), None)
            pid = live_pid(read_text(self.store.records_dir(job) / f"{key}.pid")) if key else None
            if pid is not None:
                leaders[pid] = v.job_id
        return {
            leaders[pgid]: LiveUsage(leaders[pgid], u.cpu_time_s, u.rss_kb, u.processes)
            for pgid, u in group_usage(leaders).items()
        }

    def find_by_name(self, name: str) -> list[JobId]:
        return [
            JobId(i) for i in self.store.all_ids() if (self.store.load(i) or {}).get("name") == name
        ]

    def node_metrics(self) -> list[NodeMetrics]:
        running = sum(
            1 for v in self._views(None) if v.state in (JobState.RUNNING, JobState.COMPLETING)
        )
        total = os.cpu_count() or 1
        meminfo = _meminfo_mb()
        return [
            NodeMetrics(
                name=socket.gethostname(),
                state="idle" if running == 0 else ("allocated" if running >= total else "mixed"),
                cpu_load=os.getloadavg()[0],
                cpus_allocated=min(running, total),
                cpus_total=total,
                memory_free_mb=meminfo.get("MemAvailable"),
                memory_total_mb=meminfo.get("MemTotal", 0),
                partitions=("local",),
            )
        ]

    def queue_summary(self) -> list[PartitionLoad]:
        """This machine is one partition, ``local``; its jobs are everyone's."""
        pending = running = 0
        for v in self._views(None):
            if v.state in (JobState.PENDING, JobState.HELD):
                pending += 1
            elif v.state in (JobState.RUNNING, JobState.COMPLETING):
                running += 1
        return [PartitionLoad("local", pending, running)]

    def submit_argv(
        self, script: PurePosixPath, spec: JobSpec, *, after_ok: Sequence[JobId], hold: bool
    ) -> list[str]:
        raise UnsupportedFeature("the local adapter does not submit through a CLI")


# ``-c`` rather than ``-m``: runpy warns when the module is already imported by the package.
_SUPERVISOR_BOOT = (
    "import sys; from scheduler_adapters.local.supervisor import main; sys.exit(main(sys.argv[1:]))"
)


def _supervisor_env() -> dict[str, str]:
    """The allow-listed part of our environment, plus this package's parent on PYTHONPATH
    (source checkouts). The supervisor never holds the service's secrets either."""
    env = allowed_environment(os.environ, ("VIRTUAL_ENV", "PYTHONPATH"))
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    return env


def _reap() -> None:
    for proc in list(_SPAWNED):
        if proc.poll() is not None:
            _SPAWNED.remove(proc)


def _meminfo_mb() -> dict[str, int]:
    out: dict[str, int] = {}
    text = read_text(Path("/proc/meminfo")) or ""
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        words = rest.split()
        if words and words[0].isdigit():
            out[key] = int(words[0]) // 1024
    return out
