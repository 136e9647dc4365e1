"""A step's raw outputs on the cluster: list a directory and read byte ranges, confined.

The same code runs wherever the files are: in the API (local access: ``LocalOutputs``; SSH:
``SftpOutputs`` over the runner's SFTP connection) and in the agent (``LocalOutputs`` on the
login node). Every path is relative to the step's run directory and checked twice:
lexically (``relative_path``: no ``..``, no absolute path, no NUL) and on the cluster side
with real paths, because the job's account owns the directory and can plant symlinks: the
step directory must resolve inside the scratch root, and the file inside the step
directory. Only regular files are read (never a FIFO that would hang the reader).
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import PurePosixPath
from typing import Any, Protocol

MAX_LISTING = 5000  # entries of one directory listing; more are cut (and said so)
MAX_PATH = 1024


class OutputPathError(ValueError):
    """The path names nothing a client may read (escapes the directory, not a file...)."""


@dataclass(frozen=True)
class OutputEntry:
    name: str
    kind: str  # "file" | "dir" | "link" | "other"
    size: int
    mtime: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Chunk:
    """``data`` read at ``offset`` of a file of ``size`` bytes (as it was when read)."""

    offset: int
    data: bytes
    size: int
    mtime: float


def relative_path(raw: str) -> PurePosixPath:
    """The lexical check: a relative path of plain names; ``""`` is the directory itself."""
    if len(raw) > MAX_PATH or "\x00" in raw or "\\" in raw:
        raise OutputPathError("the path is too long or contains NUL or backslash characters")
    if raw.startswith("/"):
        raise OutputPathError(f"{raw!r} is absolute: give a path inside the step's directory")
    parts = [p for p in raw.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise OutputPathError(f"{raw!r} contains '..': give a path inside the step's directory")
    return PurePosixPath(*parts) if parts else PurePosixPath()


def _inside(root: str, real: str) -> bool:
    return real == root or real.startswith(root.rstrip("/") + "/")


def _kind(mode: int) -> str:
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISLNK(mode):
        return "link"
    return "other"


class OutputsAccess(Protocol):
    def list_dir(self, workdir: str, rel: str) -> tuple[list[OutputEntry], bool]:
        """The entries (sorted by name) and whether the listing was cut at ``MAX_LISTING``."""
        ...

    def read(self, workdir: str, rel: str, offset: int, length: int) -> Chunk: ...


class LocalOutputs:
    """Files on this machine (the API with local access, or the agent on its login node)."""

    def __init__(self, scratch_root: str) -> None:
        self.scratch_root = os.path.realpath(scratch_root)

    def _resolve(self, workdir: str, rel: str) -> str:
        real_dir = os.path.realpath(workdir)
        if not _inside(self.scratch_root, real_dir) or real_dir == self.scratch_root:
            raise OutputPathError("the step's directory resolves outside the scratch root")
        path = relative_path(rel)
        real = os.path.realpath(os.path.join(real_dir, str(path)))
        if not _inside(real_dir, real):
            raise OutputPathError(f"{rel!r} resolves outside the step's directory")
        return real

    def list_dir(self, workdir: str, rel: str) -> tuple[list[OutputEntry], bool]:
        real = self._resolve(workdir, rel)
        if not os.path.isdir(real):
            raise FileNotFoundError(errno.ENOENT, f"{rel or '.'} is not a directory")
        entries: list[OutputEntry] = []
        cut = False
        with os.scandir(real) as it:
            for entry in it:
                if len(entries) >= MAX_LISTING:
                    cut = True
                    break
                st = entry.stat(follow_symlinks=False)
                entries.append(OutputEntry(entry.name, _kind(st.st_mode), st.st_size, st.st_mtime))
        return sorted(entries, key=lambda e: e.name), cut

    def read(self, workdir: str, rel: str, offset: int, length: int) -> Chunk:
        real = self._resolve(workdir, rel)
        # O_NOFOLLOW: the leaf was resolved above; a link swapped in since is refused.
        fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise OutputPathError(f"{rel!r} is not a regular file")
            data = os.pread(fd, max(0, length), max(0, offset)) if length > 0 else b""
            return Chunk(offset, data, st.st_size, st.st_mtime)
        finally:
            os.close(fd)


class SftpOutputs:
    """Files on an SSH cluster, through the ``SshRunner``'s managed SFTP connection (its
    reconnect-once policy; server-side errors surface as ``OSError`` like locally)."""

    def __init__(self, runner: Any) -> None:
        self.runner = runner
        self.scratch_root = str(runner.scratch_root)

    def _call(self, what: str, op: Callable[[Any], Any]) -> Any:
        return self.runner._sftp_call(what, lambda sftp, _conn: op(sftp))

    def _resolve(self, sftp: Any, workdir: str, rel: str) -> str:
        root = sftp.normalize(self.scratch_root)
        real_dir = sftp.normalize(workdir)
        if not _inside(root, real_dir) or real_dir == root:
            raise OutputPathError("the step's directory resolves outside the scratch root")
        path = relative_path(rel)
        target = f"{real_dir}/{path}" if str(path) != "." else real_dir
        real = sftp.normalize(target)  # the server's realpath: symlinks resolved
        if not _inside(real_dir, real):
            raise OutputPathError(f"{rel!r} resolves outside the step's directory")
        return str(real)

    def list_dir(self, workdir: str, rel: str) -> tuple[list[OutputEntry], bool]:
        def op(sftp: Any) -> tuple[list[OutputEntry], bool]:
            real = self._resolve(sftp, workdir, rel)
            attrs = sftp.listdir_attr(real)
            entries = [
                OutputEntry(a.filename, _kind(a.st_mode or 0), a.st_size or 0, a.st_mtime or 0)
                for a in attrs[:MAX_LISTING]
            ]
            return sorted(entries, key=lambda e: e.name), len(attrs) > MAX_LISTING

        result: tuple[list[OutputEntry], bool] = self._call(f"list({workdir}/{rel})", op)
        return result

    def read(self, workdir: str, rel: str, offset: int, length: int) -> Chunk:
        def op(sftp: Any) -> Chunk:
            real = self._resolve(sftp, workdir, rel)
            st = sftp.lstat(real)
            if not stat.S_ISREG(st.st_mode or 0):
                raise OutputPathError(f"{rel!r} is not a regular file")
            data = b""
            want = min(length, (st.st_size or 0) - max(0, offset))
            if want > 0:
                with sftp.open(real, "rb") as fh:
                    # readv pipelines the requests: one round trip's latency, not one per 32 KiB
                    data = b"".join(fh.readv([(max(0, offset), want)]))
            return Chunk(offset, data, st.st_size or 0, float(st.st_mtime or 0))

        result: Chunk = self._call(f"read({workdir}/{rel})", op)
        return result
