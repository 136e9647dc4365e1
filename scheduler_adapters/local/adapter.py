"""LocalAdapter: the "no cluster at all" executor (``hpcgate demo``, laptops, CI).

It honours the same contract as the Slurm adapter (see ``scheduler_adapters.base``)
with plain processes on this machine:

* ``submit`` renders the script like any adapter (header partial
  ``_local_directives.j2``), records the job under
  ``<scratch_root>/.hpcgate-local/jobs/<id>/`` and starts a detached
  *supervisor* (``subprocess.Popen(start_new_session=True)`` running
  ``python -m scheduler_adapters.local.adapter supervise <job dir>``).
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
* ``status``/``accounting`` are computed from those files only, so a restarted
  service (or a second process) sees the same jobs. Ids look like ``L12`` and
  ``L12_3`` so they can never be mistaken for a real scheduler's ids.

Limits: it is not a scheduler. Resources are advisory, there is no global limit
across jobs (only ``max_parallel`` per job), and a machine reboot loses running
jobs (they show as UNKNOWN with native state ``LOST``).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

from scheduler_adapters.cli_base import CliAdapter
from scheduler_adapters.environment import allowed_environment, job_environment
from scheduler_adapters.errors import JobNotFound, UnsupportedFeature
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

STATE_DIRNAME = ".hpcgate-local"
ID_PREFIX = "L"
# A task's stdout/stderr and working directory are opened by the task itself, after it
# switched to its account: $1 workdir, $2 stdout, $3 stderr, $4 script.
_TASK_BOOT = 'cd -- "$1" || exit 1; exec >>"$2" 2>>"$3" </dev/null; exec /bin/bash "$4"'

# Registry of supervisors started by this process, polled to reap them (no zombies).
_SPAWNED: list[subprocess.Popen[bytes]] = []


# ------------------------------------------------------------------ file helpers
def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except (FileNotFoundError, NotADirectoryError):
        return None


def _proc_starttime(pid: int) -> str | None:
    """Field 22 of /proc/PID/stat (clock ticks since boot): a pid + starttime is unique."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if len(fields) < 20 or fields[0] == "Z":
        return None
    return fields[19]


def _pid_record(pid: int) -> str:
    return f"{pid} {_proc_starttime(pid) or '?'}\n"


def _live_pid(record: str | None) -> int | None:
    """The pid in a ``"<pid> <starttime>"`` record if that very process is still alive."""
    if not record:
        return None
    parts = record.split()
    if len(parts) != 2 or not parts[0].isdigit():
        return None
    pid = int(parts[0])
    started = _proc_starttime(pid)
    return pid if started is not None and started == parts[1] else None


def _id_number(job_id: str) -> int:
    digits = job_id[len(ID_PREFIX):]
    return int(digits) if digits.isascii() and digits.isdigit() else 0


def _task_keys(job: dict[str, Any]) -> list[tuple[str, int | None]]:
    indices = job.get("indices")
    if indices is None:
        return [(job["id"], None)]
    return [(f"{job['id']}_{i}", int(i)) for i in indices]


@dataclass(frozen=True)
class _TaskView:
    job_id: JobId
    state: JobState
    native: str
    reason: str | None
    exit: dict[str, Any] | None
    ec: int | None


class _Store:
    """The on-disk layout; shared by the adapter and the supervisor process."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.jobs = root / "jobs"

    def job_dir(self, job_id: str) -> Path:
        return self.jobs / job_id

    def load(self, job_id: str) -> dict[str, Any] | None:
        text = _read(self.job_dir(job_id) / "job.json")
        if text is None:
            return None
        try:
            data = json.loads(text)
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    def next_id(self) -> str:
        self.jobs.mkdir(parents=True, exist_ok=True)
        with open(self.root / "counter.lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            counter = self.root / "counter"
            n = int(_read(counter) or "0") + 1
            _write_atomic(counter, f"{n}\n")
        return f"{ID_PREFIX}{n}"

    def all_ids(self) -> list[str]:
        if not self.jobs.is_dir():
            return []
        ids = [p.name for p in self.jobs.iterdir() if (p / "job.json").is_file()]
        return sorted(ids, key=_id_number)

    @staticmethod
    def state_dir(job: dict[str, Any]) -> Path:
        """Where the job script writes its ``.ec`` files (the job's account owns it)."""
        return Path(job["workdir"]) / ".hpcgate"

    def records_dir(self, job: dict[str, Any]) -> Path:
        """Where the supervisor writes ``.pid``/``.exit``: ours, never the job's directory."""
        return self.job_dir(job["id"])

    def read_exit(self, job: dict[str, Any], key: str) -> dict[str, Any] | None:
        text = _read(self.records_dir(job) / f"{key}.exit")
        if text is None:
            return None
        try:
            data = json.loads(text)
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    def read_ec(self, job: dict[str, Any], key: str) -> int | None:
        text = (_read_untrusted(self.state_dir(job) / f"{key}.ec") or "").strip()
        return int(text) if text.lstrip("-").isdigit() else None

    def view(self, job_id: str) -> list[_TaskView] | None:
        """Current state of every task of a job, from files only."""
        job = self.load(job_id)
        if job is None:
            return None
        d = self.job_dir(job_id)
        supervisor = _live_pid(_read(d / "supervisor.pid"))
        cancelled = (d / "cancelled").exists()
        held = (d / "held").exists()
        never = (d / "dependency_never_satisfied").exists()
        phase = (_read(d / "phase") or "").strip()
        out: list[_TaskView] = []
        for key, index in _task_keys(job):
            jid = JobId(job["id"], index)
            ex = self.read_exit(job, key)
            ec = self.read_ec(job, key)
            task_cancelled = cancelled or (d / f"cancel-{key}").exists()
            if ex is not None:
                sig = ex.get("signal")
                rc = ex.get("rc")
                if sig:
                    state = JobState.CANCELLED if task_cancelled else JobState.FAILED
                elif rc == 0:
                    state = JobState.COMPLETED
                else:
                    # the epilogue's TERM trap exits 143: still a cancellation
                    state = JobState.CANCELLED if task_cancelled else JobState.FAILED
                out.append(_TaskView(jid, state, state.name, None, ex, ec))
                continue
            pid = _live_pid(_read(self.records_dir(job) / f"{key}.pid"))
            started = (self.records_dir(job) / f"{key}.pid").exists()
            if started and (pid is not None or supervisor is not None):
                state = JobState.COMPLETING if task_cancelled else JobState.RUNNING
                out.append(_TaskView(jid, state, state.name, None, None, ec))
            elif never:
                reason = (_read(d / "dependency_never_satisfied") or "").strip() or None
                out.append(
                    _TaskView(jid, JobState.DEPENDENCY_NEVER_SATISFIED,
                              "DEPENDENCY_NEVER_SATISFIED", reason, None, ec)
                )
            elif task_cancelled and (supervisor is None or not started):
                out.append(_TaskView(jid, JobState.CANCELLED, "CANCELLED", None, None, ec))
            elif supervisor is None:
                out.append(_TaskView(jid, JobState.UNKNOWN, "LOST", "supervisor gone", None, ec))
            elif held:
                out.append(_TaskView(jid, JobState.HELD, "PENDING", "JobHeldUser", None, ec))
            elif phase == "run":
                out.append(
                    _TaskView(jid, JobState.PENDING, "PENDING", "JobArrayTaskLimit", None, ec)
                )
            else:
                reason = "Dependency" if job.get("after_ok") else "None"
                out.append(_TaskView(jid, JobState.PENDING, "PENDING", reason, None, ec))
        return out


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
        self.store = _Store(Path(str(runner.scratch_root)) / STATE_DIRNAME)
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
        _write_atomic(d / "job.json", json.dumps(job, indent=1))
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
        _write_atomic(d / "supervisor.pid", _pid_record(proc.pid))
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
            keys = [k for k, i in _task_keys(job) if jid.task is None or i == jid.task]
            if jid.task is None:
                (d / "cancelled").touch()
                supervisor = _live_pid(_read(d / "supervisor.pid"))
                if supervisor is not None:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(supervisor, signal.SIGTERM)
            for key in keys:
                (d / f"cancel-{key}").touch()
                pid = _live_pid(_read(self.store.records_dir(job) / f"{key}.pid"))
                if pid is not None:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(pid, signal.SIGTERM)

    # ---------------------------------------------------------------- reads
    def _views(self, job_ids: Sequence[JobId] | None) -> Iterator[_TaskView]:
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

    def submit_argv(
        self, script: PurePosixPath, spec: JobSpec, *, after_ok: Sequence[JobId], hold: bool
    ) -> list[str]:
        raise UnsupportedFeature("the local adapter does not submit through a CLI")


# ``-c`` rather than ``-m``: runpy warns when the module is already imported by the package.
_SUPERVISOR_BOOT = (
    "import sys; from scheduler_adapters.local.adapter import main; sys.exit(main(sys.argv[1:]))"
)


def _supervisor_env() -> dict[str, str]:
    """The allow-listed part of our environment, plus this package's parent on PYTHONPATH
    (source checkouts). The supervisor never holds the service's secrets either."""
    env = allowed_environment(os.environ, ("VIRTUAL_ENV", "PYTHONPATH"))
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    return env


def _read_untrusted(path: Path, limit: int = 64) -> str | None:
    """A small file in a job's directory: no symlink, no FIFO (a job could plant either)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        import stat

        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return os.read(fd, limit).decode("utf-8", errors="replace")
    finally:
        os.close(fd)


def _reap() -> None:
    for proc in list(_SPAWNED):
        if proc.poll() is not None:
            _SPAWNED.remove(proc)


def _meminfo_mb() -> dict[str, int]:
    out: dict[str, int] = {}
    text = _read(Path("/proc/meminfo")) or ""
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        words = rest.split()
        if words and words[0].isdigit():
            out[key] = int(words[0]) // 1024
    return out


# ------------------------------------------------------------------ supervisor
class _Supervisor:
    """Runs in its own session; everything it knows comes from the job directory."""

    def __init__(self, job_dir: Path) -> None:
        self.dir = job_dir
        self.store = _Store(job_dir.parent.parent)
        job = self.store.load(job_dir.name)
        if job is None:
            raise SystemExit(f"no job.json in {job_dir}")
        self.job = job
        self.poll = float(job.get("poll_interval", 0.1))
        self.kill_wait = float(job.get("kill_wait", 5.0))
        self.stopping = False
        self.running: dict[int, tuple[str, float]] = {}  # pid -> (key, start)

    def on_term(self, signum: int, frame: object) -> None:
        self.stopping = True

    def cancelled(self, key: str | None = None) -> bool:
        if self.stopping or (self.dir / "cancelled").exists():
            return True
        return key is not None and (self.dir / f"cancel-{key}").exists()

    def phase(self, name: str) -> None:
        _write_atomic(self.dir / "phase", name + "\n")

    def parents_ok(self) -> bool | None:
        """True: all parents succeeded; False: one never will; None: still waiting."""
        for text in self.job.get("after_ok", []):
            parent = JobId.parse(text)
            job = self.store.load(parent.value)
            views = self.store.view(parent.value)
            if job is None or views is None:
                return False
            if parent.task is not None:
                views = [v for v in views if v.job_id.task == parent.task]
            for v in views:
                if not v.state.is_final and v.state is not JobState.UNKNOWN:
                    return None
                if v.state is JobState.UNKNOWN:
                    return False
                # the program's own verdict: the .ec file, else the exit record
                rc = v.ec if v.ec is not None else (v.exit or {}).get("rc")
                if v.state is not JobState.COMPLETED or rc != 0:
                    return False
        return True

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self.on_term)
        self.phase("hold")
        while (self.dir / "held").exists():
            if self.cancelled():
                return 0
            time.sleep(self.poll)
        self.phase("dependency")
        while True:
            if self.cancelled():
                return 0
            ok = self.parents_ok()
            if ok is True:
                break
            if ok is False:
                _write_atomic(
                    self.dir / "dependency_never_satisfied",
                    "afterok:" + ":".join(self.job.get("after_ok", [])) + " (failed)\n",
                )
                return 0
            time.sleep(self.poll)
        self.phase("run")
        limit = int(self.job.get("max_parallel") or 1)
        if self.job.get("max_concurrent"):
            limit = min(limit, int(self.job["max_concurrent"]))
        queue = _task_keys(self.job)
        state_dir = self.store.records_dir(self.job)
        for key, index in queue:
            while len(self.running) >= limit:
                self.reap_one(state_dir)
            if self.cancelled():
                break
            if self.cancelled(key):
                continue
            self.start(key, index, state_dir)
        while self.running:
            self.reap_one(state_dir)
        self.phase("done")
        return 0

    def start(self, key: str, index: int | None, state_dir: Path) -> None:
        run_as = self.job.get("run_as")
        env = job_environment(
            os.environ, self.job.get("pass_environment") or (), account=run_as or None
        )
        env["HPCGATE_LOCAL_JOB_ID"] = key
        env["HPCGATE_LOCAL_TASK_INDEX"] = "" if index is None else str(index)
        workdir = Path(self.job["workdir"])
        out = workdir / f"{self.job['name']}-{key}.out"
        err = workdir / f"{self.job['name']}-{key}.err"
        identity: dict[str, Any] = {}
        if run_as:
            import pwd

            entry = pwd.getpwnam(run_as)
            identity = {
                "user": entry.pw_uid,
                "group": entry.pw_gid,
                "extra_groups": os.getgrouplist(run_as, entry.pw_gid),
            }
        proc = subprocess.Popen(
            ["/bin/bash", "-c", _TASK_BOOT, "hpcgate-task",
             str(workdir), str(out), str(err), self.job["script"]],
            cwd="/",
            env=env,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # own process group: cancel kills the whole task
            close_fds=True,
            **identity,
        )
        # os.wait4 below reaps it, so Popen must not try again.
        proc.returncode = 0
        self.running[proc.pid] = (key, time.time())
        _write_atomic(state_dir / f"{key}.pid", _pid_record(proc.pid))

    def reap_one(self, state_dir: Path) -> None:
        deadline = None
        while True:
            if self.cancelled():
                if deadline is None:
                    deadline = time.monotonic() + self.kill_wait
                    self.signal_all(signal.SIGTERM)
                elif time.monotonic() > deadline:
                    self.signal_all(signal.SIGKILL)
            else:
                for pid, (key, _) in self.running.items():
                    if (self.dir / f"cancel-{key}").exists():
                        with contextlib.suppress(ProcessLookupError):
                            os.killpg(pid, signal.SIGTERM)
            try:
                pid, status, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                self.running.clear()
                return
            if pid == 0:
                time.sleep(min(self.poll, 0.05))
                continue
            if pid not in self.running:
                continue
            key, start = self.running.pop(pid)
            sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
            record = {
                "rc": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
                "signal": sig,
                "start": start,
                "end": time.time(),
                "cpu_s": round(usage.ru_utime + usage.ru_stime, 6),
                "maxrss_kb": int(usage.ru_maxrss),
                "host": socket.gethostname(),
            }
            _write_atomic(state_dir / f"{key}.exit", json.dumps(record) + "\n")
            return

    def signal_all(self, signum: int) -> None:
        for pid in self.running:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signum)


def main(argv: Sequence[str]) -> int:
    if len(argv) != 2 or argv[0] != "supervise":
        print("usage: python -m scheduler_adapters.local.adapter supervise <job dir>",
              file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO)
    return _Supervisor(Path(argv[1])).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
