"""Running one argv list on the remote side: the exec request, its output, its timeout.

The argv travels as ``shlex.join(argv)`` behind a marker that prints the remote shell's pid,
so a timeout kills the command (as LocalRunner kills its child) and anything a login script
printed is dropped. A command whose exec request may already have reached the server is
never sent again (no double ``sbatch``); a connection found dead *before* that is replaced
once. At most ``max_channels`` commands run at once per connection (OpenSSH's
``MaxSessions`` is 10 and freed slots come back late).
"""

from __future__ import annotations

import functools
import logging
import select
import shlex
import threading
import time
from collections.abc import Sequence
from pathlib import PurePosixPath
from typing import NoReturn

import paramiko

from scheduler_adapters.errors import RunnerError
from scheduler_adapters.runners.ssh_connection import (
    Connection,
    ConnectionPool,
    Dropped,
    Hung,
    bounded,
    peer_timed_out,
)
from scheduler_adapters.types import CommandResult

log = logging.getLogger("scheduler_adapters.runners.ssh")

# Printed by the remote shell before ``exec``; stripped from stdout before the caller sees it.
PID_MARK = b"__hpcgate_pid="
_PID_SCAN = 64 * 1024
CHUNK = 64 * 1024


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
    parts = [f"printf '{PID_MARK.decode()}%s\\n' \"$$\""]
    if cwd is not None:
        parts.append(f"cd -- {shlex.quote(str(cwd))} || exit 127")
    parts.append(f"exec {shlex.join(argv)}")
    return "; ".join(parts)


def split_pid(raw: bytes) -> tuple[int | None, bytes]:
    """Pid from the marker line, and stdout without it (and without login-script noise)."""
    at = raw.find(PID_MARK, 0, _PID_SCAN)
    if at < 0:
        return None, raw
    end = raw.find(b"\n", at)
    if end < 0:
        return None, raw
    digits = raw[at + len(PID_MARK) : end]
    return (int(digits) if digits.isdigit() else None), raw[end + 1 :]


def text(raw: bytes) -> str:
    """Decode like ``subprocess.run(text=True, errors="replace")`` (universal newlines)."""
    return raw.decode("utf-8", errors="replace").replace("\r\n", "\n").replace("\r", "\n")


class RemoteExec:
    """``run`` for one connection pool, with a cap on channels in flight."""

    def __init__(self, pool: ConnectionPool, max_channels: int) -> None:
        if max_channels < 1:
            raise ValueError("max_channels must be >= 1")
        self.pool = pool
        self.target = pool.target
        self.max_channels = max_channels
        self._slots = threading.BoundedSemaphore(max_channels)

    def run(
        self, argv: Sequence[str], *, stdin: str | None, cwd: PurePosixPath | None,
        timeout: float,
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
                f"{self.max_channels} SSH channels to {self.target.label}"
            )
        try:
            conn, chan = self.start(command, args, deadline)
            try:
                out, err, rc = self._collect(conn, chan, args, payload, deadline, timeout)
            finally:
                chan.close()
        finally:
            self._slots.release()
        _, out = split_pid(out)
        result = CommandResult(args, rc, text(out), text(err), time.monotonic() - started)
        log.debug(
            "ran %s on %s rc=%s in %.3fs (%d bytes out)",
            args[0], self.target.label, result.returncode, result.duration_s, len(result.stdout),
        )
        return result

    def open_channel(self, conn: Connection, deadline: float) -> paramiko.Channel:
        delay = 0.05
        label = self.target.label
        while True:
            wait = min(self.target.request_timeout, deadline - time.monotonic())
            if wait <= 0:
                raise RunnerError(f"no SSH channel to {label} before the deadline")
            try:
                return conn.transport.open_session(timeout=wait)
            except paramiko.ChannelException as exc:
                # The server said no (MaxSessions: a closed channel's slot comes back late).
                if time.monotonic() + delay >= deadline or delay > 1.6:
                    raise RunnerError(f"{label} refused a new channel: {exc}") from exc
                time.sleep(delay)
                delay *= 2
            except (paramiko.SSHException, EOFError, OSError) as exc:
                if not conn.alive():
                    raise Dropped(str(exc)) from exc
                self.pool.discard(conn)
                raise RunnerError(
                    f"{label} did not open a channel within {wait:.1f}s (hung peer?)"
                ) from exc

    def _channel(self, deadline: float) -> tuple[Connection, paramiko.Channel]:
        """A fresh channel; the connection is replaced once if it was found dead."""
        label = self.target.label
        for attempt in (1, 2):
            conn = self.pool.get()
            try:
                return conn, self.open_channel(conn, deadline)
            except Dropped as exc:
                self.pool.discard(conn)
                if peer_timed_out(exc):
                    raise RunnerError(f"{label} stopped acknowledging (unreachable?): {exc}"
                                      ) from exc
                if attempt == 1:
                    log.info("SSH connection to %s dropped (%s); reconnecting", label, exc)
                    continue
                raise RunnerError(f"SSH connection to {label} lost: {exc}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def start(
        self, command: bytes, args: tuple[str, ...], deadline: float
    ) -> tuple[Connection, paramiko.Channel]:
        """Open a channel and send the exec request (never twice)."""
        label = self.target.label
        conn, chan = self._channel(deadline)
        wait = min(self.target.connect_timeout, deadline - time.monotonic())
        try:
            bounded(chan, functools.partial(chan.exec_command, command), wait)
        except Hung as exc:
            self.pool.discard(conn)
            raise RunnerError(
                f"{label} did not start {args[0]!r} within {wait:.1f}s (hung peer?)"
            ) from exc
        except (paramiko.SSHException, EOFError, OSError) as exc:
            chan.close()
            if not conn.alive():  # the request may have arrived: never resend
                self.pool.discard(conn)
                raise RunnerError(
                    f"SSH connection to {label} lost while starting {args[0]!r}"
                ) from exc
            raise RunnerError(f"{label} refused to run {args[0]!r}: {exc}") from exc
        return conn, chan

    def _collect(
        self,
        conn: Connection,
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
                out += chan.recv(CHUNK)
            while chan.recv_stderr_ready():
                err += chan.recv_stderr(CHUNK)
            if sent < len(payload) and chan.send_ready():
                try:
                    sent += chan.send(payload[sent : sent + CHUNK])
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
            self.pool.discard(conn)
            raise RunnerError(
                f"SSH connection to {self.target.label} lost while {args[0]!r} ran"
            )
        return bytes(out), bytes(err), rc

    def _timed_out(
        self,
        conn: Connection,
        chan: paramiko.Channel,
        out: bytes,
        args: tuple[str, ...],
        timeout: float,
    ) -> NoReturn:
        """Kill the remote command (as LocalRunner kills its child) and raise."""
        chan.close()
        pid, _ = split_pid(out)
        if pid is not None and conn.alive():
            try:
                deadline = time.monotonic() + min(self.target.connect_timeout, 5)
                kill = self.open_channel(conn, deadline)
                try:
                    bounded(kill, functools.partial(kill.exec_command, f"kill -KILL {pid}"), 5)
                    kill.status_event.wait(5)
                finally:
                    kill.close()
            except (RunnerError, Dropped, Hung, paramiko.SSHException, OSError):
                log.warning("could not kill timed-out %s (pid %s) on %s",
                            args[0], pid, self.target.label)
        raise RunnerError(f"command {args[0]!r} timed out after {timeout}s")
