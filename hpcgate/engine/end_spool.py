"""The end spool: a job announces its own end, so its step is harvested at once (issue 16).

Every job script's ``hpcgate_finish`` (templates/sbatch/_prologue.j2) creates an empty file
named after its job id in ``<scratch_root>/hpcgate/.ended/``, if that directory exists. The
dispatcher that watches the spool (the worker for local clusters, the agent for its own)
lists it a few times a second and, when it is not empty, harvests the cluster at once; the
periodic ``squeue``/``sacct`` harvest stays as the safety net (a job killed without its
epilogue, a node that died).

An entry is only a hint, never a verdict: the harvest still asks the scheduler and reads the
job's ``.ec`` file, so a forged or stray entry costs one early harvest and nothing else. That
is why no secret is needed and why the directory may be writable by every job account
(mode 1733: anyone may create, nobody else may list or delete, like ``/tmp`` without read).
The job's file is created in its last moments, while the scheduler still counts the job as
running, so an entry stays until a harvest sees its job settled (or it is ``max_age_s`` old);
while it waits it is looked at again after ``retry_s``, twice as long after each look that
settled nothing, up to ``max_retry_s`` (``due``): a scheduler slow to record an end (a busy
slurmctld or slurmdbd) is still caught through the spool, and a forged entry for a running
job costs about a dozen harvests over ``max_age_s``, not a stream of them.

The submitter creates the spool next to the first step directory it writes on a runner
(``prepare_spool``), so even the first job on a fresh scratch finds it when it ends; the
watcher creates it too, whichever comes first.

``EndSpool`` reads a spool on this machine (local clusters, the agent); ``RemoteEndSpool``
one on an SSH cluster, through the runner's ``follow_directory`` stream (one long-lived
channel, no remote command per look). Both follow the same rules.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import weakref
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

log = logging.getLogger(__name__)

SPOOL_DIRNAME = ".ended"
SPOOL_MODE = 0o1733


def spool_dir(scratch_root: str | Path) -> Path:
    return Path(scratch_root) / "hpcgate" / SPOOL_DIRNAME


_PREPARED: weakref.WeakSet[object] = weakref.WeakSet()  # runners whose spool exists


def prepare_spool(runner: Any, workdir: PurePosixPath) -> None:
    """Create the spool beside a step directory (``<scratch>/hpcgate/<calc>/<step>``) once
    per runner: one ``mkdir`` for the runner's lifetime. A failure only costs the hint."""
    with contextlib.suppress(TypeError):  # a runner that cannot be remembered: each time
        if runner in _PREPARED:
            return
    path = workdir.parent.parent / SPOOL_DIRNAME
    try:
        result = runner.run(["mkdir", "-p", "-m", "1733", "--", str(path)], timeout=30)
    except Exception as exc:  # the end is still harvested by the periodic tick
        log.info("end spool %s not created: %s", path, exc)
        return
    if result.returncode == 0:
        with contextlib.suppress(TypeError):
            _PREPARED.add(runner)
    else:
        log.info("end spool %s not created: %s", path, result.stderr.strip()[:200])


class EndSpool:
    def __init__(
        self,
        scratch_root: str | Path,
        max_age_s: float = 120.0,
        retry_s: float = 1.0,
        max_retry_s: float = 10.0,
    ) -> None:
        self.path = spool_dir(scratch_root)
        self.max_age_s = max_age_s
        self.retry_s = retry_s
        self.max_retry_s = max_retry_s
        self._kept: set[str] = set()
        self._kept_at = 0.0
        self._wait_s = retry_s

    def due(self, announced: dict[str, float]) -> bool:
        """A harvest is due: a new announcement, or kept ones last looked at long enough ago."""
        if any(job_id not in self._kept for job_id in announced):
            return True
        return bool(announced) and time.monotonic() - self._kept_at >= self._wait_s

    def ensure(self) -> bool:
        """Create the spool inside an existing ``<scratch_root>/hpcgate`` (never that directory
        itself: its owner and mode are the runner's business). False when it is not there yet."""
        if self.path.is_dir():
            return True
        if not self.path.parent.is_dir():
            return False
        with contextlib.suppress(FileExistsError):
            self.path.mkdir()
            os.chmod(self.path, SPOOL_MODE)  # mkdir's mode is cut by the umask
        return self.path.is_dir()

    def pending(self) -> dict[str, float]:
        """Job ids announced and not yet settled, with when they were announced."""
        found: dict[str, float] = {}
        try:
            with os.scandir(self.path) as entries:
                for entry in entries:
                    with contextlib.suppress(OSError):
                        if entry.is_file(follow_symlinks=False):
                            found[entry.name] = entry.stat(follow_symlinks=False).st_mtime
        except (FileNotFoundError, NotADirectoryError):
            return {}
        return found

    def settle(self, announced: dict[str, float], still_active: Iterable[str]) -> list[str]:
        """Remove the entries whose job is no longer active (array tasks ``123_4`` belong to
        job ``123``) or that are too old; returns the ids kept for another look."""
        active = set(still_active)
        now = time.time()
        kept = []
        done = []
        for job_id, mtime in announced.items():
            if job_of(job_id) in active and now - mtime < self.max_age_s:
                kept.append(job_id)
            else:
                done.append(job_id)
        self._remove(done)
        unchanged = not done and set(kept) == self._kept  # this look settled nothing
        self._wait_s = min(self._wait_s * 2, self.max_retry_s) if unchanged else self.retry_s
        self._kept = set(kept)
        self._kept_at = time.monotonic()
        return kept

    def _remove(self, job_ids: list[str]) -> None:
        for job_id in job_ids:
            with contextlib.suppress(FileNotFoundError):
                (self.path / job_id).unlink()


class DirStream(Protocol):
    """What ``SshRunner.follow_directory`` returns (scheduler_adapters' RemoteDirStream)."""

    def start(self) -> None: ...
    def stop(self, timeout: float = ...) -> None: ...
    def names(self) -> frozenset[str] | None: ...


class RemoteEndSpool(EndSpool):
    """The spool of an SSH cluster, followed over one channel; entries are removed with one
    ``rm -f`` per settle. An entry's age counts from when it was first seen here (no clock
    of the login node is trusted)."""

    def __init__(self, runner: Any, scratch_root: str, **kw: float) -> None:
        super().__init__(scratch_root, **kw)
        self.runner = runner
        self.remote_path = PurePosixPath(scratch_root) / "hpcgate" / SPOOL_DIRNAME
        self.stream: DirStream = runner.follow_directory(self.remote_path)
        self._first_seen: dict[str, float] = {}
        self._gone: set[str] = set()  # removed, until the stream's listing shows it
        self.stream.start()

    def ensure(self) -> bool:
        """Connected and listing (the remote loop creates the directory itself)."""
        return self.stream.names() is not None

    def pending(self) -> dict[str, float]:
        names = self.stream.names() or frozenset()
        self._gone &= names
        names = names - self._gone
        now = time.time()
        self._first_seen = {n: self._first_seen.get(n, now) for n in names}
        return dict(self._first_seen)

    def _remove(self, job_ids: list[str]) -> None:
        if job_ids:
            paths = [str(self.remote_path / j) for j in job_ids]
            self.runner.run(["rm", "-f", "--", *paths], timeout=30)
            self._gone.update(job_ids)

    def close(self) -> None:
        self.stream.stop()


def job_of(entry: str) -> str:
    """The scheduler id a step records for this entry (an array task's parent job)."""
    return entry.split("_", 1)[0]
