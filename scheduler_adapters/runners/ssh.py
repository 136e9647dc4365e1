"""Run argv lists on a cluster login node over SSH (paramiko), with LocalRunner's contract.

Contract (shared with ``LocalRunner``; checked by ``tests/integration/test_runner_contract.py``):

* ``run`` returns a ``CommandResult`` for anything the remote side executed, whatever its
  exit code: a missing program or ``cwd`` gives rc 127, a program killed by a signal a
  negative rc (``-1`` here: paramiko drops OpenSSH's ``exit-signal``, LocalRunner gives
  ``-N``). Output is decoded as UTF-8 with replacement and newlines translated, like
  ``subprocess.run(text=True)``. The argv travels as ``shlex.join(argv)``, so every
  element arrives verbatim and nothing in it is ever interpreted by the remote shell
  (which must be POSIX: bash/sh). A timeout kills the remote process and raises
  ``RunnerError``; so does every connection problem (refused, unreachable, dead or hung
  peer). ``RunnerError`` is transient: callers may retry. A host key that does not
  match ``known_hosts`` raises ``HostKeyError`` (a ``RunnerError`` that is *not*
  transient: retrying cannot fix it).
* ``write_text`` and ``write_bytes`` are atomic (temporary file in the same directory, then
  ``posix-rename@openssh.com``), ``remove_tree`` only ever deletes strictly inside
  ``scratch_root``: the lexical check (``check_inside``) runs before any I/O, then the
  parent directory's real path is resolved *on the remote side* and must stay inside the
  real scratch root. A symlink as the target is removed as a link, never followed.

Connection handling: one SSH connection per runner, opened lazily on our own socket with
TCP_NODELAY (paramiko's default costs ~48 ms per command through Nagle/delayed ACK, 4.5 ms
without) and TCP_USER_TIMEOUT (paramiko's keepalive alone never notices a black-holed
peer; with it the kernel kills the socket after ``dead_peer_timeout_ms`` of unacknowledged
data, and the transport keepalive makes sure there is data). A connection found dead at
the start of a call is replaced once; one that stops acknowledging *during* the call is
not (the host was unreachable a moment ago: the call fails at once and the next call
reconnects), and a TCP connect is given no longer than the dead-peer timeout either, so an
unreachable host fails a call in about ``dead_peer_timeout_ms``. A call never re-sends a
command whose exec request may already have reached the server (no double ``sbatch``). A
peer that accepts TCP but does not answer (a hung sshd) is given ``request_timeout`` to
open a channel and ``connect_timeout`` to start the command (PAM may run there), then the
connection is dropped and the call fails; the next call reconnects. At most
``max_channels`` commands run at once per connection (OpenSSH's ``MaxSessions`` is 10 and
freed slots come back late), plus one long-lived SFTP channel and, for a dispatcher that
follows the end spool, one long-lived stream channel (``follow_directory``).

Parts: ``ssh_connection`` (login, host keys, the cached connection), ``ssh_exec`` (running
a command), ``ssh_files`` (SFTP), ``ssh_end_stream`` (a directory followed over one
channel). This module puts them together behind the ``Runner`` protocol.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import PurePosixPath
from typing import BinaryIO, TypeVar

import paramiko

from scheduler_adapters.runners.ssh_connection import Connection, ConnectionPool, SshTarget
from scheduler_adapters.runners.ssh_end_stream import RemoteDirStream
from scheduler_adapters.runners.ssh_exec import RemoteExec
from scheduler_adapters.runners.ssh_files import RemoteFiles
from scheduler_adapters.types import CommandResult

log = logging.getLogger("scheduler_adapters.runners.ssh")

T = TypeVar("T")


class SshRunner:
    """Runs argv lists and moves small files on one remote host; thread-safe.

    Timeouts: ``connect_timeout`` bounds the SSH login (banner, key exchange, auth) and the
    start of a command; ``request_timeout`` bounds a channel open on an established
    connection (sshd answers it at once, whatever the login node's load);
    ``dead_peer_timeout_ms`` bounds unacknowledged data and the TCP connect.
    ``io_timeout`` bounds each SFTP reply (a hung peer
    must not block a file operation forever), ``source_address`` binds our end of the TCP
    connection (multi-homed gateways; the fault tests use it to scope firewall rules).
    """

    def __init__(
        self,
        host: str,
        port: int,
        user: str,
        *,
        key_filename: str | os.PathLike[str] | None = None,
        known_hosts: str | os.PathLike[str],
        scratch_root: str | PurePosixPath,
        connect_timeout: float = 10,
        request_timeout: float = 5,
        keepalive_s: int = 5,
        dead_peer_timeout_ms: int = 5000,
        max_channels: int = 6,
        insecure_auto_add: bool = False,
        io_timeout: float = 30,
        source_address: str | None = None,
        pkey: paramiko.PKey | None = None,
        private_dirs: bool = False,
    ) -> None:
        root = PurePosixPath(scratch_root)
        if (key_filename is None) == (pkey is None):
            # pkey: a key held in memory only (a user's own key, decrypted by the service)
            raise ValueError("give exactly one of key_filename and pkey")
        if not root.is_absolute() or ".." in root.parts or root == PurePosixPath("/"):
            raise ValueError(f"scratch_root {str(root)!r} must be an absolute path below '/'")
        self.target = SshTarget(
            host=host, port=port, user=user, known_hosts=os.fspath(known_hosts),
            key_filename=os.fspath(key_filename) if key_filename is not None else None,
            pkey=pkey, connect_timeout=connect_timeout, request_timeout=request_timeout,
            keepalive_s=keepalive_s, dead_peer_timeout_ms=dead_peer_timeout_ms,
            io_timeout=io_timeout, insecure_auto_add=insecure_auto_add,
            source_address=source_address,
        )
        self.host, self.port, self.user = host, port, user
        self.scratch_root = root
        # Directories created two or more levels below the scratch root (a calculation's,
        # its steps') are 0700: a user mapped to their own login keeps them to themselves.
        # The first level is shared structure (the admin makes it 1777 or group-writable).
        self._pool = ConnectionPool(self.target)
        self._exec = RemoteExec(self._pool, max_channels)
        self.max_channels = max_channels
        self._files = RemoteFiles(self._pool, root, self._run_rm, private_dirs=private_dirs)
        if insecure_auto_add:
            log.warning(
                "SshRunner(%s): insecure_auto_add=True, host keys are NOT verified (tests only)",
                self.target.label,
            )

    def __repr__(self) -> str:
        return f"SshRunner({self.target.label}, scratch_root={str(self.scratch_root)!r})"

    # ------------------------------------------------------------------ connection
    def is_connected(self) -> bool:
        """A live connection is cached (a black-holed peer turns this False within seconds)."""
        conn = self._pool.current()
        return conn is not None and conn.alive()

    @property
    def local_endpoint(self) -> tuple[str, int] | None:
        """Our end of the current connection: for logs, and for tests to find its sshd."""
        conn = self._pool.current()
        return conn.local_endpoint if conn is not None else None

    def close(self) -> None:
        """Drop the connection; a later call opens a new one."""
        self._pool.close()

    # ------------------------------------------------------------------ commands
    def run(
        self,
        argv: Sequence[str],
        *,
        stdin: str | None = None,
        cwd: PurePosixPath | None = None,
        timeout: float = 60,
    ) -> CommandResult:
        return self._exec.run(argv, stdin=stdin, cwd=cwd, timeout=timeout)

    def _run_rm(self, argv: Sequence[str], *, timeout: float) -> CommandResult:
        return self.run(argv, timeout=timeout)

    def follow_directory(self, path: PurePosixPath, *, every_s: float = 0.2) -> RemoteDirStream:
        """A stream of ``path``'s job-id entries over one long-lived channel (not started)."""
        return RemoteDirStream(self._exec, PurePosixPath(path), every_s=every_s)

    # ------------------------------------------------------------------ files (SFTP)
    def _sftp_call(self, what: str, op: Callable[[paramiko.SFTPClient, Connection], T]) -> T:
        """An idempotent SFTP operation on the shared session (``engine/outputs.py``)."""
        return self._files.call(what, op)

    def write_text(self, path: PurePosixPath, text: str, *, mode: int = 0o644) -> None:
        """Atomic: a temporary file beside the target, then an atomic POSIX rename."""
        self._files.write_bytes(path, text.encode("utf-8"), mode=mode)

    def write_bytes(
        self, path: PurePosixPath, data: bytes | BinaryIO, *, mode: int = 0o644
    ) -> None:
        self._files.write_bytes(path, data, mode=mode)

    def read_text(self, path: PurePosixPath, *, max_bytes: int = 1 << 20) -> str:
        return self._files.read_bytes(path, max_bytes).decode("utf-8", errors="replace")

    def exists(self, path: PurePosixPath) -> bool:
        return self._files.exists(path)

    def remove_tree(self, path: PurePosixPath) -> None:
        self._files.remove_tree(path)
