"""The detached process that runs one local job (see ``scheduler_adapters.local.adapter``).

It runs in its own session and everything it knows comes from the job directory, so
the service that started it may stop and restart meanwhile. It waits while the job is
held, then for its ``after_ok`` parents, then runs the script once (or once per array
index, at most ``max_concurrent`` at a time), each task in its own process group.
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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from scheduler_adapters.environment import job_environment
from scheduler_adapters.local.files import pid_record, write_atomic
from scheduler_adapters.local.store import Store, TaskView, task_keys
from scheduler_adapters.types import JobId, JobState

# A task's stdout/stderr and working directory are opened by the task itself, after it
# switched to its account: $1 workdir, $2 stdout, $3 stderr, $4 script.
_TASK_BOOT = 'cd -- "$1" || exit 1; exec >>"$2" 2>>"$3" </dev/null; exec /bin/bash "$4"'


def _parent_verdict(views: list[TaskView]) -> bool | None:
    """True: these tasks all succeeded; False: one never will; None: still waiting."""
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


def _account_identity(run_as: str | None) -> dict[str, Any]:
    """``Popen`` keywords that start a task as ``run_as`` (nothing when unset)."""
    if not run_as:
        return {}
    import pwd

    entry = pwd.getpwnam(run_as)
    return {
        "user": entry.pw_uid,
        "group": entry.pw_gid,
        "extra_groups": os.getgrouplist(run_as, entry.pw_gid),
    }


def _exit_record(status: int, usage: Any, start: float) -> dict[str, Any]:
    return {
        "rc": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
        "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
        "start": start,
        "end": time.time(),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 6),
        "maxrss_kb": int(usage.ru_maxrss),
        "host": socket.gethostname(),
    }


class Supervisor:
    """Runs in its own session; everything it knows comes from the job directory."""

    def __init__(self, job_dir: Path) -> None:
        self.dir = job_dir
        self.store = Store(job_dir.parent.parent)
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
        write_atomic(self.dir / "phase", name + "\n")

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
            verdict = _parent_verdict(views)
            if verdict is not True:
                return verdict
        return True

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self.on_term)
        if self.wait_released() and self.wait_parents():
            self.run_tasks()
        return 0

    def wait_released(self) -> bool:
        """False when the job was cancelled while held."""
        self.phase("hold")
        while (self.dir / "held").exists():
            if self.cancelled():
                return False
            time.sleep(self.poll)
        return True

    def wait_parents(self) -> bool:
        """False when cancelled, or when a parent can never satisfy the dependency."""
        self.phase("dependency")
        while True:
            if self.cancelled():
                return False
            ok = self.parents_ok()
            if ok is True:
                return True
            if ok is False:
                write_atomic(
                    self.dir / "dependency_never_satisfied",
                    "afterok:" + ":".join(self.job.get("after_ok", [])) + " (failed)\n",
                )
                return False
            time.sleep(self.poll)

    def run_tasks(self) -> None:
        self.phase("run")
        limit = int(self.job.get("max_parallel") or 1)
        if self.job.get("max_concurrent"):
            limit = min(limit, int(self.job["max_concurrent"]))
        state_dir = self.store.records_dir(self.job)
        for key, index in task_keys(self.job):
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
        proc = subprocess.Popen(
            ["/bin/bash", "-c", _TASK_BOOT, "hpcgate-task",
             str(workdir), str(out), str(err), self.job["script"]],
            cwd="/",
            env=env,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # own process group: cancel kills the whole task
            close_fds=True,
            **_account_identity(run_as),
        )
        # os.wait4 below reaps it, so Popen must not try again.
        proc.returncode = 0
        self.running[proc.pid] = (key, time.time())
        write_atomic(state_dir / f"{key}.pid", pid_record(proc.pid))

    def reap_one(self, state_dir: Path) -> None:
        """Wait for one task to end and record it, passing on cancellations meanwhile."""
        deadline = None
        while True:
            if self.cancelled():
                if deadline is None:
                    deadline = time.monotonic() + self.kill_wait
                    self.signal_all(signal.SIGTERM)
                elif time.monotonic() > deadline:
                    self.signal_all(signal.SIGKILL)
            else:
                self.signal_cancelled_tasks()
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
            record = _exit_record(status, usage, start)
            write_atomic(state_dir / f"{key}.exit", json.dumps(record) + "\n")
            return

    def signal_cancelled_tasks(self) -> None:
        for pid, (key, _) in self.running.items():
            if (self.dir / f"cancel-{key}").exists():
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGTERM)

    def signal_all(self, signum: int) -> None:
        for pid in self.running:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signum)


def main(argv: Sequence[str]) -> int:
    if len(argv) != 2 or argv[0] != "supervise":
        print("usage: python -m scheduler_adapters.local.supervisor supervise <job dir>",
              file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO)
    return Supervisor(Path(argv[1])).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
