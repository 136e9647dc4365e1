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
freed slots come back late), plus one long-lived SFTP channel.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import io
import logging
import os
import select
import shlex
import socket
import stat
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import PurePosixPath
from typing import BinaryIO, NoReturn, TypeVar

import paramiko

from scheduler_adapters.errors import RunnerError, UnsafePath
from scheduler_adapters.runners.base import check_inside
from scheduler_adapters.types import CommandResult

log = logging.getLogger("scheduler_adapters.runners.ssh")

T = TypeVar("T")

# Printed by the remote shell before ``exec``: the pid lets a timeout kill the command
# (LocalRunner kills its child too), and anything a login script printed before it is
# dropped. Stripped from stdout before the caller sees it.
_PID_MARK = b"__hpcgate_pid="
_PID_SCAN = 64 * 1024
_CHUNK = 64 * 1024
_REMOVE_TIMEOUT_S = 600.0


class HostKeyError(RunnerError):
    """The server's host key is unknown or does not match known_hosts: never retried."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.transient = False


class _Dropped(Exception):
    """The transport died before our request reached the server: safe to retry once."""


def _peer_timed_out(exc: BaseException | None) -> bool:
    """The kernel gave up on the peer (TCP_USER_TIMEOUT: ETIMEDOUT), somewhere in the chain.

    An unreachable host, not a restarted sshd: reconnecting in the same call would only
    wait out another timeout.
    """
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, OSError) and exc.errno == errno.ETIMEDOUT:
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


class _Hung(Exception):
    """The peer accepted a request but did not answer in time."""


class _RejectUnknownHost(paramiko.RejectPolicy):
    """RejectPolicy, raising our typed error instead of a bare SSHException."""

    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> NoReturn:
        raise HostKeyError(
            f"host key of {hostname} ({key.get_name()} {key.fingerprint}) is not in "
            "known_hosts: refusing to connect"
        )


class _WarnAutoAdd(paramiko.AutoAddPolicy):
    """Tests only: accept an unknown host key in memory (never saved) and say so."""

    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> None:
        log.warning(
            "insecure_auto_add: accepting unverified host key %s %s for %s",
            key.get_name(), key.fingerprint, hostname,
        )
        client.get_host_keys().add(hostname, key.get_name(), key)


def build_command(argv: Sequence[str], cwd: PurePosixPath | None = None) -> str:
    """The remote shell command for ``argv``: only ever ``shlex``-quoted words.

    ``exec`` keeps the pid printed by the marker valid for the command itself, so a
    timeout kills the right process; ``cd`` failing gives rc 127 like LocalRunner.
    """
    if not argv:
        raise ValueError("argv must not be empty")
    for arg in argv:
        if "\x00" in arg:
            raise ValueError("embedded null byte in argv")
    if argv[0].startswith("-"):
        raise ValueError(f"program name {argv[0]!r} must not start with '-'")
    parts = [f"printf '{_PID_MARK.decode()}%s\\n' \"$$\""]
    if cwd is not None:
        parts.append(f"cd -- {shlex.quote(str(cwd))} || exit 127")
    parts.append(f"exec {shlex.join(argv)}")
    return "; ".join(parts)


def ensure_real_inside(real_root: PurePosixPath, real: PurePosixPath, shown: object) -> None:
    """Refuse ``real`` (a resolved remote path) unless it is ``real_root`` or below it."""
    if real != real_root and real_root not in real.parents:
        raise UnsafePath(
            f"{shown} resolves to {str(real)!r}, outside the scratch root {str(real_root)!r}"
        )


def _split_pid(raw: bytes) -> tuple[int | None, bytes]:
    """Pid from the marker line, and stdout without it (and without login-script noise)."""
    at = raw.find(_PID_MARK, 0, _PID_SCAN)
    if at < 0:
        return None, raw
    end = raw.find(b"\n", at)
    if end < 0:
        return None, raw
    digits = raw[at + len(_PID_MARK) : end]
    return (int(digits) if digits.isdigit() else None), raw[end + 1 :]


def _text(raw: bytes) -> str:
    """Decode like ``subprocess.run(text=True, errors="replace")`` (universal newlines)."""
    return raw.decode("utf-8", errors="replace").replace("\r\n", "\n").replace("\r", "\n")


def _bounded(chan: paramiko.Channel, action: Callable[[], None], timeout: float) -> None:
    """Run a blocking channel request (exec, subsystem) that paramiko never times out.

    A watchdog closes the channel after ``timeout``, which wakes paramiko's wait.
    """
    fired = threading.Event()

    def fire() -> None:
        fired.set()
        chan.close()

    timer = threading.Timer(max(timeout, 0.0), fire)
    timer.daemon = True
    timer.start()
    try:
        action()
    except (paramiko.SSHException, EOFError, OSError) as exc:
        if fired.is_set():
            raise _Hung(f"no answer within {timeout:.1f}s") from exc
        raise
    finally:
        timer.cancel()
    if fired.is_set():
        raise _Hung(f"no answer within {timeout:.1f}s")


class _Connection:
    """One SSH connection: client, transport, and a lazily opened SFTP session."""

    def __init__(
        self, client: paramiko.SSHClient, transport: paramiko.Transport, sock: socket.socket
    ) -> None:
        self.client = client
        self.transport = transport
        self.local_endpoint: tuple[str, int] = sock.getsockname()[:2]
        self.sftp_lock = threading.Lock()
        self.real_root: PurePosixPath | None = None
        self._sftp: paramiko.SFTPClient | None = None

    def alive(self) -> bool:
        return self.transport.is_active()

    def sftp(
        self, open_timeout: float, start_timeout: float, io_timeout: float
    ) -> paramiko.SFTPClient:
        """The SFTP session (caller holds ``sftp_lock``); each reply bounded by ``io_timeout``.

        The channel open is answered at once by sshd; starting the subsystem may run the
        login node's session setup, hence the two bounds.
        """
        if self._sftp is None:
            try:
                chan = self.transport.open_session(timeout=open_timeout)
            except (paramiko.SSHException, EOFError, OSError) as exc:
                if not self.alive():
                    raise _Dropped(str(exc)) from exc
                raise _Hung(f"SFTP channel not opened within {open_timeout:.1f}s") from exc
            _bounded(chan, lambda: chan.invoke_subsystem("sftp"), start_timeout)
            chan.settimeout(io_timeout)
            self._sftp = paramiko.SFTPClient(chan)
        return self._sftp

    def close(self) -> None:
        try:
            if self._sftp is not None:
                self._sftp.close()
        except Exception:  # closing a broken session: nothing left to save
            log.debug("error closing SFTP session", exc_info=True)
        self._sftp = None
        self.client.close()


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
        if max_channels < 1:
            raise ValueError("max_channels must be >= 1")
        self.host = host
        self.port = port
        self.user = user
        self.scratch_root = root
        self.key_filename = os.fspath(key_filename) if key_filename is not None else None
        self._pkey = pkey
        # Directories created two or more levels below the scratch root (a calculation's,
        # its steps') are 0700: a user mapped to their own login keeps them to themselves.
        # The first level is shared structure (the admin makes it 1777 or group-writable).
        self.private_dirs = private_dirs
        self.known_hosts = os.fspath(known_hosts)
        self.connect_timeout = connect_timeout
        self.request_timeout = request_timeout
        self.keepalive_s = keepalive_s
        self.dead_peer_timeout_ms = dead_peer_timeout_ms
        self.max_channels = max_channels
        self.insecure_auto_add = insecure_auto_add
        self.io_timeout = io_timeout
        self.source_address = source_address
        self._lock = threading.Lock()
        self._conn: _Connection | None = None
        self._slots = threading.BoundedSemaphore(max_channels)
        if insecure_auto_add:
            log.warning(
                "SshRunner(%s): insecure_auto_add=True, host keys are NOT verified (tests only)",
                self._label,
            )

    def __repr__(self) -> str:
        return f"SshRunner({self._label}, scratch_root={str(self.scratch_root)!r})"

    @property
    def _label(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"

    # ------------------------------------------------------------------ connection
    def _connect(self) -> _Connection:
        started = time.monotonic()
        src = (self.source_address, 0) if self.source_address else None
        try:
            # an unanswered SYN is a dead peer too: no longer than the dead-peer timeout
            tcp_timeout = min(self.connect_timeout, self.dead_peer_timeout_ms / 1000)
            sock = socket.create_connection(
                (self.host, self.port), timeout=tcp_timeout, source_address=src
            )
        except OSError as exc:
            raise RunnerError(f"cannot connect to {self._label}: {exc}") from exc
        client = paramiko.SSHClient()
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if hasattr(socket, "TCP_USER_TIMEOUT"):  # Linux: dead peers noticed in seconds
                sock.setsockopt(
                    socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, int(self.dead_peer_timeout_ms)
                )
            if self.insecure_auto_add:
                if os.path.exists(self.known_hosts):
                    client.get_host_keys().load(self.known_hosts)
                client.set_missing_host_key_policy(_WarnAutoAdd())
            else:
                try:
                    # get_host_keys().load, not load_host_keys: the file is never rewritten
                    client.get_host_keys().load(self.known_hosts)
                except OSError as exc:
                    raise HostKeyError(
                        f"cannot read known_hosts {self.known_hosts!r}: {exc}"
                    ) from exc
                client.set_missing_host_key_policy(_RejectUnknownHost())
            client.connect(
                self.host,
                port=self.port,
                username=self.user,
                key_filename=self.key_filename,
                pkey=self._pkey,
                sock=sock,
                look_for_keys=False,
                allow_agent=False,
                timeout=self.connect_timeout,
                banner_timeout=self.connect_timeout,
                auth_timeout=self.connect_timeout,
            )
            transport = client.get_transport()
            if transport is None or not transport.is_active():
                raise RunnerError(f"SSH transport to {self._label} closed during login")
            transport.set_keepalive(self.keepalive_s)
        except HostKeyError:
            client.close()
            sock.close()
            raise
        except paramiko.BadHostKeyException as exc:
            client.close()
            sock.close()
            raise HostKeyError(
                f"host key of {self._label} does not match known_hosts "
                f"(got {exc.key.get_name()} {exc.key.fingerprint}): refusing to connect"
            ) from exc
        except RunnerError:
            client.close()
            sock.close()
            raise
        except (paramiko.SSHException, EOFError, OSError) as exc:
            client.close()
            sock.close()
            raise RunnerError(f"SSH login to {self._label} failed: {exc!r}") from exc
        log.debug("connected to %s in %.3fs", self._label, time.monotonic() - started)
        return _Connection(client, transport, sock)

    def _connection(self) -> _Connection:
        """The live connection; a dropped one is replaced here (that is the one reconnect)."""
        with self._lock:
            conn = self._conn
            if conn is not None and conn.alive():
                return conn
            if conn is not None:
                log.info("SSH connection to %s was lost; reconnecting", self._label)
                conn.close()
                self._conn = None
            self._conn = self._connect()
            return self._conn

    def _discard(self, conn: _Connection) -> None:
        with self._lock:
            if self._conn is conn:
                self._conn = None
        conn.close()

    def is_connected(self) -> bool:
        """A live connection is cached (a black-holed peer turns this False within seconds)."""
        conn = self._conn
        return conn is not None and conn.alive()

    @property
    def local_endpoint(self) -> tuple[str, int] | None:
        """Our end of the current connection: for logs, and for tests to find its sshd."""
        conn = self._conn
        return conn.local_endpoint if conn is not None else None

    def close(self) -> None:
        """Drop the connection; a later call opens a new one."""
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    # ------------------------------------------------------------------ run
    def run(
        self,
        argv: Sequence[str],
        *,
        stdin: str | None = None,
        cwd: PurePosixPath | None = None,
        timeout: float = 60,
    ) -> CommandResult:
        args = tuple(argv)
        # surrogateescape: argv from os.fsdecode round-trips, as with subprocess locally
        command = build_command(args, cwd).encode("utf-8", errors="surrogateescape")
        payload = stdin.encode("utf-8", errors="replace") if stdin is not None else b""
        started = time.monotonic()
        deadline = started + timeout
        if not self._slots.acquire(timeout=max(timeout, 0.0)):
            raise RunnerError(
                f"command {args[0]!r} timed out after {timeout}s waiting for one of "
                f"{self.max_channels} SSH channels to {self._label}"
            )
        try:
            conn, chan = self._start(command, args, deadline)
            try:
                out, err, rc = self._collect(conn, chan, args, payload, deadline, timeout)
            finally:
                chan.close()
        finally:
            self._slots.release()
        _, out = _split_pid(out)
        result = CommandResult(args, rc, _text(out), _text(err), time.monotonic() - started)
        log.debug(
            "ran %s on %s rc=%s in %.3fs (%d bytes out)",
            args[0], self._label, result.returncode, result.duration_s, len(result.stdout),
        )
        return result

    def _open_channel(self, conn: _Connection, deadline: float) -> paramiko.Channel:
        delay = 0.05
        while True:
            wait = min(self.request_timeout, deadline - time.monotonic())
            if wait <= 0:
                raise RunnerError(f"no SSH channel to {self._label} before the deadline")
            try:
                return conn.transport.open_session(timeout=wait)
            except paramiko.ChannelException as exc:
                # The server said no (MaxSessions: a closed channel's slot comes back late).
                if time.monotonic() + delay >= deadline or delay > 1.6:
                    raise RunnerError(f"{self._label} refused a new channel: {exc}") from exc
                time.sleep(delay)
                delay *= 2
            except (paramiko.SSHException, EOFError, OSError) as exc:
                if not conn.alive():
                    raise _Dropped(str(exc)) from exc
                self._discard(conn)
                raise RunnerError(
                    f"{self._label} did not open a channel within {wait:.1f}s (hung peer?)"
                ) from exc

    def _start(
        self, command: bytes, args: tuple[str, ...], deadline: float
    ) -> tuple[_Connection, paramiko.Channel]:
        """Open a channel and send the exec request; reconnect once if the transport died."""
        for attempt in (1, 2):
            conn = self._connection()
            try:
                chan = self._open_channel(conn, deadline)
            except _Dropped as exc:
                self._discard(conn)
                if _peer_timed_out(exc):
                    raise RunnerError(
                        f"{self._label} stopped acknowledging (unreachable?): {exc}"
                    ) from exc
                if attempt == 1:
                    log.info("SSH connection to %s dropped (%s); reconnecting", self._label, exc)
                    continue
                raise RunnerError(f"SSH connection to {self._label} lost: {exc}") from exc
            wait = min(self.connect_timeout, deadline - time.monotonic())
            try:
                _bounded(chan, functools.partial(chan.exec_command, command), wait)
            except _Hung as exc:
                self._discard(conn)
                raise RunnerError(
                    f"{self._label} did not start {args[0]!r} within {wait:.1f}s (hung peer?)"
                ) from exc
            except (paramiko.SSHException, EOFError, OSError) as exc:
                chan.close()
                if not conn.alive():  # the request may have arrived: never resend
                    self._discard(conn)
                    raise RunnerError(
                        f"SSH connection to {self._label} lost while starting {args[0]!r}"
                    ) from exc
                raise RunnerError(f"{self._label} refused to run {args[0]!r}: {exc}") from exc
            return conn, chan
        raise AssertionError("unreachable")  # pragma: no cover

    def _collect(
        self,
        conn: _Connection,
        chan: paramiko.Channel,
        args: tuple[str, ...],
        payload: bytes,
        deadline: float,
        timeout: float,
    ) -> tuple[bytes, bytes, int]:
        """Feed stdin and drain stdout+stderr *together* until EOF, then read the status.

        Reading one stream to the end first deadlocks once the other fills the window
        (paramiko #1778); the exit status is only trusted after both are drained.
        """
        out = bytearray()
        err = bytearray()
        sent = 0
        if not payload:
            chan.shutdown_write()
        while True:
            while chan.recv_ready():
                out += chan.recv(_CHUNK)
            while chan.recv_stderr_ready():
                err += chan.recv_stderr(_CHUNK)
            if sent < len(payload) and chan.send_ready():
                try:
                    sent += chan.send(payload[sent : sent + _CHUNK])
                except OSError:  # remote closed its stdin early (like BrokenPipe locally)
                    sent = len(payload)
                if sent >= len(payload):
                    chan.shutdown_write()
            if (chan.eof_received or chan.closed) and not (
                chan.recv_ready() or chan.recv_stderr_ready()
            ):
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._timed_out(conn, chan, bytes(out), args, timeout)
            # stdin waiting for window space is not signalled through the fd: poll it
            select.select([chan], [], [], min(remaining, 0.02 if sent < len(payload) else 1.0))
        if not chan.status_event.wait(max(deadline - time.monotonic(), 0.0)):
            self._timed_out(conn, chan, bytes(out), args, timeout)
        rc = chan.exit_status
        if rc == -1 and not conn.alive():
            self._discard(conn)
            raise RunnerError(f"SSH connection to {self._label} lost while {args[0]!r} ran")
        return bytes(out), bytes(err), rc

    def _timed_out(
        self,
        conn: _Connection,
        chan: paramiko.Channel,
        out: bytes,
        args: tuple[str, ...],
        timeout: float,
    ) -> NoReturn:
        """Kill the remote command (as LocalRunner kills its child) and raise."""
        chan.close()
        pid, _ = _split_pid(out)
        if pid is not None and conn.alive():
            try:
                kill = self._open_channel(conn, time.monotonic() + min(self.connect_timeout, 5))
                try:
                    _bounded(kill, functools.partial(kill.exec_command, f"kill -KILL {pid}"), 5)
                    kill.status_event.wait(5)
                finally:
                    kill.close()
            except (RunnerError, _Dropped, _Hung, paramiko.SSHException, OSError):
                log.warning("could not kill timed-out %s (pid %s) on %s", args[0], pid, self._label)
        raise RunnerError(f"command {args[0]!r} timed out after {timeout}s")

    # ------------------------------------------------------------------ files (SFTP)
    def _sftp_call(self, what: str, op: Callable[[paramiko.SFTPClient, _Connection], T]) -> T:
        """Run an idempotent SFTP operation, replacing a dead connection once.

        Server-side errors (``FileNotFoundError``, ``PermissionError``...) propagate as
        they would locally; connection problems become ``RunnerError``.
        """
        for attempt in (1, 2):
            conn = self._connection()
            try:
                with conn.sftp_lock:
                    sftp = conn.sftp(self.request_timeout, self.connect_timeout, self.io_timeout)
                    return op(sftp, conn)
            except _Hung as exc:
                self._discard(conn)
                raise RunnerError(f"{what} on {self._label}: {exc} (hung peer?)") from exc
            except (_Dropped, paramiko.SSHException, EOFError, OSError) as exc:
                if conn.alive() and isinstance(exc, TimeoutError):
                    self._discard(conn)
                    raise RunnerError(
                        f"{what} on {self._label}: no SFTP reply within {self.io_timeout}s"
                    ) from exc
                if conn.alive() and isinstance(exc, OSError):
                    raise  # the server answered with an error status: same as locally
                self._discard(conn)
                if attempt == 1 and not _peer_timed_out(exc):
                    log.info("SFTP to %s failed (%r); reconnecting", self._label, exc)
                    continue
                raise RunnerError(f"{what} on {self._label} failed: {exc!r}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _real_root(
        self, sftp: paramiko.SFTPClient, conn: _Connection, *, create: bool
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

    def _real_parent(
        self, sftp: paramiko.SFTPClient, conn: _Connection, norm: PurePosixPath, *, create: bool
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
        cur = real_root
        for part in parent.relative_to(self.scratch_root).parts:
            nxt = cur / part
            st = _lstat_or_none(sftp, nxt)
            if st is None:
                if not create:
                    return None
                try:
                    private = self.private_dirs and cur != real_root
                    sftp.mkdir(str(nxt), mode=0o700 if private else 0o777)
                    cur = nxt
                    continue
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
                cur = resolved
            elif stat.S_ISDIR(st.st_mode or 0):
                cur = nxt
            else:
                raise NotADirectoryError(errno.ENOTDIR, f"{nxt} is not a directory")
        return cur

    def write_text(self, path: PurePosixPath, text: str, *, mode: int = 0o644) -> None:
        """Atomic: a temporary file beside the target, then an atomic POSIX rename."""
        self.write_bytes(path, text.encode("utf-8"), mode=mode)

    def write_bytes(
        self, path: PurePosixPath, data: bytes | BinaryIO, *, mode: int = 0o644
    ) -> None:
        """Atomic like ``write_text``; a file object is sent in 64 KiB chunks (pipelined), so a
        large input never sits in memory. A retried attempt (dead connection replaced)
        starts again from the file object's starting position."""
        norm = check_inside(self.scratch_root, PurePosixPath(path))
        source: BinaryIO = (
            io.BytesIO(data) if isinstance(data, bytes | bytearray | memoryview) else data
        )
        start = source.tell()

        def op(sftp: paramiko.SFTPClient, conn: _Connection) -> None:
            source.seek(start)
            parent = self._real_parent(sftp, conn, norm, create=True)
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

        self._sftp_call(f"write({norm})", op)

    def read_text(self, path: PurePosixPath, *, max_bytes: int = 1 << 20) -> str:
        def op(sftp: paramiko.SFTPClient, conn: _Connection) -> bytes:
            with sftp.open(str(path), "rb") as fh:
                return fh.read(max_bytes)

        return self._sftp_call(f"read_text({path})", op).decode("utf-8", errors="replace")

    def exists(self, path: PurePosixPath) -> bool:
        """Like ``os.path.lexists``: a dangling symlink exists, an unreadable path does not."""

        def op(sftp: paramiko.SFTPClient, conn: _Connection) -> bool:
            try:
                sftp.lstat(str(path))
            except TimeoutError:
                raise  # a hung peer is not "absent"
            except OSError:
                if not conn.alive():
                    raise
                return False
            return True

        return self._sftp_call(f"exists({path})", op)

    def remove_tree(self, path: PurePosixPath) -> None:
        """Remove ``path`` (file, link or directory tree) strictly inside the scratch root."""
        norm = check_inside(self.scratch_root, PurePosixPath(path))

        def op(sftp: paramiko.SFTPClient, conn: _Connection) -> PurePosixPath | None:
            parent = self._real_parent(sftp, conn, norm, create=False)
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

        tree = self._sftp_call(f"remove_tree({norm})", op)
        if tree is None:
            return
        # One round trip instead of one per file; rm never follows symlinks inside the
        # tree, and ``tree`` is the resolved path that was just checked.
        result = self.run(["rm", "-rf", "--", str(tree)], timeout=_REMOVE_TIMEOUT_S)
        if result.returncode != 0:
            raise OSError(
                errno.EIO, f"rm -rf {tree} on {self._label} exited {result.returncode}: "
                f"{result.stderr.strip()[:500]}"
            )


def _lstat_or_none(
    sftp: paramiko.SFTPClient, path: PurePosixPath
) -> paramiko.SFTPAttributes | None:
    try:
        return sftp.lstat(str(path))
    except FileNotFoundError:
        return None
