"""Files on the remote side through one SFTP session: atomic writes, reads, confined removal.

``write_text``/``write_bytes`` are atomic (a temporary file in the same directory, then
``posix-rename@openssh.com``). ``remove_tree`` only ever deletes strictly inside the scratch
root: the lexical check (``check_inside``) runs before any I/O, then the parent directory's
real path is resolved *on the remote side* and must stay inside the real scratch root. A
symlink as the target is removed as a link, never followed.
"""

from __future__ import annotations

import contextlib
import errno
import io
import logging
import stat
import uuid
from collections.abc import Callable, Sequence
from pathlib import PurePosixPath
from typing import BinaryIO, Protocol, TypeVar

import paramiko

from scheduler_adapters.errors import RunnerError, UnsafePath
from scheduler_adapters.runners.base import check_inside
from scheduler_adapters.runners.ssh_connection import (
    Connection,
    ConnectionPool,
    Dropped,
    Hung,
    peer_timed_out,
)
from scheduler_adapters.types import CommandResult

log = logging.getLogger("scheduler_adapters.runners.ssh")

T = TypeVar("T")
_CHUNK = 64 * 1024
_REMOVE_TIMEOUT_S = 600.0


class _Run(Protocol):
    def __call__(self, argv: Sequence[str], *, timeout: float) -> CommandResult: ...


def ensure_real_inside(real_root: PurePosixPath, real: PurePosixPath, shown: object) -> None:
    """Refuse ``real`` (a resolved remote path) unless it is ``real_root`` or below it."""
    if real != real_root and real_root not in real.parents:
        raise UnsafePath(
            f"{shown} resolves to {str(real)!r}, outside the scratch root {str(real_root)!r}"
        )


def _lstat_or_none(
    sftp: paramiko.SFTPClient, path: PurePosixPath
) -> paramiko.SFTPAttributes | None:
    try:
        return sftp.lstat(str(path))
    except FileNotFoundError:
        return None


class RemoteFiles:
    """The runner's file operations; ``run`` executes a command (``rm -rf`` of a whole tree)."""

    def __init__(
        self, pool: ConnectionPool, scratch_root: PurePosixPath, run: _Run, *,
        private_dirs: bool,
    ) -> None:
        self.pool = pool
        self.target = pool.target
        self.scratch_root = scratch_root
        self.private_dirs = private_dirs
        self._run = run

    def call(self, what: str, op: Callable[[paramiko.SFTPClient, Connection], T]) -> T:
        """Run an idempotent SFTP operation, replacing a dead connection once.

        Server-side errors (``FileNotFoundError``, ``PermissionError``...) propagate as
        they would locally; connection problems become ``RunnerError``.
        """
        t = self.target
        label = t.label
        for attempt in (1, 2):
            conn = self.pool.get()
            try:
                with conn.sftp_lock:
                    sftp = conn.sftp(t.request_timeout, t.connect_timeout, t.io_timeout)
                    return op(sftp, conn)
            except Hung as exc:
                self.pool.discard(conn)
                raise RunnerError(f"{what} on {label}: {exc} (hung peer?)") from exc
            except (Dropped, paramiko.SSHException, EOFError, OSError) as exc:
                if conn.alive() and isinstance(exc, TimeoutError):
                    self.pool.discard(conn)
                    raise RunnerError(
                        f"{what} on {label}: no SFTP reply within {t.io_timeout}s"
                    ) from exc
                if conn.alive() and isinstance(exc, OSError):
                    raise  # the server answered with an error status: same as locally
                self.pool.discard(conn)
                if attempt == 1 and not peer_timed_out(exc):
                    log.info("SFTP to %s failed (%r); reconnecting", label, exc)
                    continue
                raise RunnerError(f"{what} on {label} failed: {exc!r}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _real_root(
        self, sftp: paramiko.SFTPClient, conn: Connection, *, create: bool
    ) -> PurePosixPath | None:
        """The scratch root's real path on the remote side (``None`` if it does not exist)."""
        if conn.real_root is not None:
            return conn.real_root
        root = str(self.scratch_root)
        try:
            if not stat.S_ISDIR(sftp.stat(root).st_mode or 0):
                raise NotADirectoryError(errno.ENOTDIR, f"scratch root {root} is not a directory")
        except FileNotFoundError:
            if not create:
                return None
            cur = PurePosixPath("/")
            for part in self.scratch_root.parts[1:]:
                cur = cur / part
                if _lstat_or_none(sftp, cur) is None:
                    try:
                        sftp.mkdir(str(cur))
                    except OSError:
                        if _lstat_or_none(sftp, cur) is None:
                            raise
        conn.real_root = PurePosixPath(sftp.normalize(root))
        return conn.real_root

    def _step_down(
        self, sftp: paramiko.SFTPClient, cur: PurePosixPath, part: str, *,
        real_root: PurePosixPath, norm: PurePosixPath, create: bool,
    ) -> PurePosixPath | None:
        """One level below ``cur`` (real), created if asked; a link must stay in scratch."""
        nxt = cur / part
        st = _lstat_or_none(sftp, nxt)
        if st is None:
            if not create:
                return None
            try:
                private = self.private_dirs and cur != real_root
                sftp.mkdir(str(nxt), mode=0o700 if private else 0o777)
                return nxt
            except OSError:
                # a concurrent creator won: look again (it may have made a symlink)
                st = _lstat_or_none(sftp, nxt)
                if st is None:
                    raise
        if stat.S_ISLNK(st.st_mode or 0):
            try:
                resolved = PurePosixPath(sftp.normalize(str(nxt)))
            except FileNotFoundError:
                if not create:
                    return None
                raise
            ensure_real_inside(real_root, resolved, norm)
            return resolved
        if stat.S_ISDIR(st.st_mode or 0):
            return nxt
        raise NotADirectoryError(errno.ENOTDIR, f"{nxt} is not a directory")

    def real_parent(
        self, sftp: paramiko.SFTPClient, conn: Connection, norm: PurePosixPath, *, create: bool
    ) -> PurePosixPath | None:
        """Resolve (and with ``create`` make) ``norm.parent`` remotely, confined to scratch.

        Walks down from the real scratch root so no directory is ever created through a
        symlink that points outside. ``None``: the parent does not exist (nothing to remove).
        """
        real_root = self._real_root(sftp, conn, create=create)
        if real_root is None:
            return None
        parent = norm.parent
        try:  # common case, two round trips: the directory exists
            if stat.S_ISDIR(sftp.stat(str(parent)).st_mode or 0):
                real = PurePosixPath(sftp.normalize(str(parent)))
                ensure_real_inside(real_root, real, norm)
                return real
            raise NotADirectoryError(errno.ENOTDIR, f"{parent} is not a directory")
        except FileNotFoundError:
            pass
        cur: PurePosixPath | None = real_root
        for part in parent.relative_to(self.scratch_root).parts:
            assert cur is not None
            cur = self._step_down(sftp, cur, part, real_root=real_root, norm=norm,
                                  create=create)
            if cur is None:
                return None
        return cur

    def write_bytes(self, path: PurePosixPath, data: bytes | BinaryIO, *, mode: int) -> None:
        """Atomic; a file object is sent in 64 KiB chunks (pipelined), so a large input never
        sits in memory. A retried attempt (dead connection replaced) starts again from the
        file object's starting position."""
        norm = check_inside(self.scratch_root, PurePosixPath(path))
        source: BinaryIO = (
            io.BytesIO(data) if isinstance(data, bytes | bytearray | memoryview) else data
        )
        start = source.tell()

        def op(sftp: paramiko.SFTPClient, conn: Connection) -> None:
            source.seek(start)
            parent = self.real_parent(sftp, conn, norm, create=True)
            if parent is None:  # pragma: no cover - create=True always returns a path
                raise FileNotFoundError(errno.ENOENT, f"cannot create {norm.parent}")
            tmp = str(parent / f".{norm.name}.{uuid.uuid4().hex}.tmp")
            try:
                with sftp.open(tmp, "wbx") as fh:
                    fh.chmod(mode)  # before the content: a secret is never world-readable
                    fh.set_pipelined(True)
                    while chunk := source.read(_CHUNK):
                        fh.write(chunk)
                sftp.posix_rename(tmp, str(parent / norm.name))
            except BaseException:
                if conn.alive():
                    with contextlib.suppress(OSError, paramiko.SSHException):
                        sftp.remove(tmp)
                raise

        self.call(f"write({norm})", op)

    def read_bytes(self, path: PurePosixPath, max_bytes: int) -> bytes:
        def op(sftp: paramiko.SFTPClient, conn: Connection) -> bytes:
            with sftp.open(str(path), "rb") as fh:
                return fh.read(max_bytes)

        return self.call(f"read_text({path})", op)

    def exists(self, path: PurePosixPath) -> bool:
        """Like ``os.path.lexists``: a dangling symlink exists, an unreadable path does not."""

        def op(sftp: paramiko.SFTPClient, conn: Connection) -> bool:
            try:
                sftp.lstat(str(path))
            except TimeoutError:
                raise  # a hung peer is not "absent"
            except OSError:
                if not conn.alive():
                    raise
                return False
            return True

        return self.call(f"exists({path})", op)

    def remove_tree(self, path: PurePosixPath) -> None:
        """Remove ``path`` (file, link or directory tree) strictly inside the scratch root."""
        norm = check_inside(self.scratch_root, PurePosixPath(path))

        def op(sftp: paramiko.SFTPClient, conn: Connection) -> PurePosixPath | None:
            parent = self.real_parent(sftp, conn, norm, create=False)
            if parent is None:
                return None
            target = parent / norm.name
            try:
                st = sftp.lstat(str(target))
            except FileNotFoundError:
                return None
            if stat.S_ISDIR(st.st_mode or 0):
                return target  # a real directory (lstat): removed below with rm -rf
            sftp.remove(str(target))  # a file, or a symlink removed as a link
            return None

        tree = self.call(f"remove_tree({norm})", op)
        if tree is None:
            return
        # One round trip instead of one per file; rm never follows symlinks inside the
        # tree, and ``tree`` is the resolved path that was just checked.
        result = self._run(["rm", "-rf", "--", str(tree)], timeout=_REMOVE_TIMEOUT_S)
        if result.returncode != 0:
            raise OSError(
                errno.EIO, f"rm -rf {tree} on {self.target.label} exited {result.returncode}: "
                f"{result.stderr.strip()[:500]}"
            )
