"""Run argv lists on this machine (the agent on a login node, or the local executor)."""

from __future__ import annotations

import errno
import logging
import os
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from scheduler_adapters.environment import command_environment
from scheduler_adapters.errors import RunnerError, UnsafePath
from scheduler_adapters.runners.base import check_inside
from scheduler_adapters.runners.identity import check_account, hand_over_dir, hand_over_file
from scheduler_adapters.types import CommandResult

log = logging.getLogger("scheduler_adapters.runners.local")
_CHUNK = 1 << 20


class LocalRunner:
    """``job_user``: the account jobs run as. Directories this runner creates two or more
    levels below the scratch root (a calculation's and its steps') are handed over to it,
    private (0700) unless ``shared_read``; the first level (``<scratch>/hpcgate``) is shared
    structure and stays ours, traversable only (0711)."""

    def __init__(
        self,
        scratch_root: str | PurePosixPath,
        *,
        env: Mapping[str, str] | None = None,
        job_user: str | None = None,
        shared_read: bool = False,
    ) -> None:
        self.scratch_root = PurePosixPath(os.path.realpath(str(scratch_root)))
        # Never our whole environment: a submit command may export it all to the job.
        self._env = dict(env) if env is not None else command_environment()
        self.job_user = check_account(job_user) if job_user else None
        self.shared_read = shared_read

    def run(
        self,
        argv: Sequence[str],
        *,
        stdin: str | None = None,
        cwd: PurePosixPath | None = None,
        timeout: float = 60,
    ) -> CommandResult:
        started = time.monotonic()
        try:
            proc = subprocess.run(
                list(argv),
                input=stdin if stdin is not None else "",
                capture_output=True,
                text=True,
                errors="replace",
                cwd=str(cwd) if cwd else None,
                timeout=timeout,
                env=self._env,
                check=False,
            )
        except FileNotFoundError as exc:
            return CommandResult(tuple(argv), 127, "", str(exc), time.monotonic() - started)
        except PermissionError as exc:  # like a shell: "permission denied" is rc 126
            return CommandResult(tuple(argv), 126, "", str(exc), time.monotonic() - started)
        except subprocess.TimeoutExpired as exc:
            raise RunnerError(f"command {argv[0]!r} timed out after {timeout}s") from exc
        result = CommandResult(
            tuple(argv), proc.returncode, proc.stdout, proc.stderr, time.monotonic() - started
        )
        log.debug(
            "ran %s rc=%s in %.3fs (%d bytes out)",
            argv[0], result.returncode, result.duration_s, len(result.stdout),
        )
        return result

    def _inside(self, path: PurePosixPath) -> Path:
        norm = check_inside(self.scratch_root, PurePosixPath(path))
        # Resolve symlinks of the *parent*: a link inside scratch pointing outside is refused.
        real_parent = Path(os.path.realpath(str(norm.parent)))
        if real_parent != Path(str(self.scratch_root)) and Path(
            str(self.scratch_root)
        ) not in real_parent.parents:
            raise UnsafePath(f"{norm} resolves outside the scratch root")
        return Path(str(norm))

    def write_text(self, path: PurePosixPath, text: str, *, mode: int = 0o644) -> None:
        target = self._inside(path)
        self._make_dirs(target.parent)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            # Atomic (rename) but not fsynced: everything written here is re-creatable
            # (staged inputs, scripts), and 1000 fsyncs cost seconds on a busy login node.
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            os.chmod(tmp, mode)
            if self.job_user:
                hand_over_file(tmp, self.job_user)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _make_dirs(self, directory: Path) -> None:
        """``mkdir -p``, handing each new directory below the first level to the job user."""
        if self.job_user is None:
            directory.mkdir(parents=True, exist_ok=True)
            return
        root = Path(str(self.scratch_root))
        missing: list[Path] = []
        d = directory
        while not d.exists() and d != root and root in d.parents:
            missing.append(d)
            d = d.parent
        for d in reversed(missing):
            try:
                d.mkdir()
            except FileExistsError:
                continue  # another submitter created it meanwhile: not ours to hand over
            if d.parent == root:
                os.chmod(d, 0o711)  # noqa: S103 - traverse only: the shared first level
            else:
                hand_over_dir(str(d), self.job_user, shared_read=self.shared_read)

    def write_bytes(
        self, path: PurePosixPath, data: bytes | BinaryIO, *, mode: int = 0o644
    ) -> None:
        target = self._inside(path)
        self._make_dirs(target.parent)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                if isinstance(data, bytes | bytearray | memoryview):
                    fh.write(data)
                else:
                    shutil.copyfileobj(data, fh, _CHUNK)
            os.chmod(tmp, mode)
            if self.job_user:
                hand_over_file(tmp, self.job_user)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def read_text(self, path: PurePosixPath, *, max_bytes: int = 1 << 20) -> str:
        if self.job_user is not None:
            return self._read_job_file(PurePosixPath(path), max_bytes)
        with open(str(path), "rb") as fh:
            return fh.read(max_bytes).decode("utf-8", errors="replace")

    def _read_job_file(self, path: PurePosixPath, max_bytes: int) -> str:
        """Read a file in a directory the job's account controls: walk down from the scratch
        root without following any symlink, and read only a regular file (never a FIFO that
        would hang us, nor a link to one of our own secrets)."""
        norm = check_inside(self.scratch_root, path)
        fd = os.open(str(self.scratch_root), os.O_RDONLY | os.O_DIRECTORY)
        try:
            parts = norm.relative_to(self.scratch_root).parts
            for part in parts[:-1]:
                nxt = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
                os.close(fd)
                fd = nxt
            leaf = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=fd)
        finally:
            os.close(fd)
        try:
            if not stat.S_ISREG(os.fstat(leaf).st_mode):
                raise OSError(errno.EINVAL, f"{norm} is not a regular file")
            chunks: list[bytes] = []
            size = 0
            while size < max_bytes and (chunk := os.read(leaf, min(1 << 16, max_bytes - size))):
                chunks.append(chunk)
                size += len(chunk)
            return b"".join(chunks).decode("utf-8", errors="replace")
        finally:
            os.close(leaf)

    def remove_tree(self, path: PurePosixPath) -> None:
        target = self._inside(path)
        if target.is_symlink():
            target.unlink()
        elif target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()

    def exists(self, path: PurePosixPath) -> bool:
        return os.path.lexists(str(path))

    def close(self) -> None:
        return None
