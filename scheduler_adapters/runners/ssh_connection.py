"""One SSH connection per runner: login on our own socket, host keys, the cached connection.

The socket is ours so that TCP_NODELAY (paramiko's default costs ~48 ms per command through
Nagle/delayed ACK, 4.5 ms without) and TCP_USER_TIMEOUT (paramiko's keepalive alone never
notices a black-holed peer; with it the kernel kills the socket after
``dead_peer_timeout_ms`` of unacknowledged data, and the transport keepalive makes sure
there is data) can be set. A TCP connect is given no longer than the dead-peer timeout, so
an unreachable host fails in about that time. Host keys are always checked against
``known_hosts`` (``insecure_auto_add`` is for tests and says so in the log).
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import NoReturn

import paramiko

from scheduler_adapters.errors import RunnerError

log = logging.getLogger("scheduler_adapters.runners.ssh")


class HostKeyError(RunnerError):
    """The server's host key is unknown or does not match known_hosts: never retried."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.transient = False


class Dropped(Exception):
    """The transport died before our request reached the server: safe to retry once."""


class Hung(Exception):
    """The peer accepted a request but did not answer in time."""


def peer_timed_out(exc: BaseException | None) -> bool:
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


def bounded(chan: paramiko.Channel, action: Callable[[], None], timeout: float) -> None:
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
            raise Hung(f"no answer within {timeout:.1f}s") from exc
        raise
    finally:
        timer.cancel()
    if fired.is_set():
        raise Hung(f"no answer within {timeout:.1f}s")


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


@dataclass(frozen=True)
class SshTarget:
    """Where and how to log in, and the timeouts every part of the runner shares."""

    host: str
    port: int
    user: str
    known_hosts: str
    key_filename: str | None = None
    pkey: paramiko.PKey | None = None
    connect_timeout: float = 10
    request_timeout: float = 5
    keepalive_s: int = 5
    dead_peer_timeout_ms: int = 5000
    io_timeout: float = 30
    insecure_auto_add: bool = False
    source_address: str | None = None

    @property
    def label(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"


class Connection:
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
                    raise Dropped(str(exc)) from exc
                raise Hung(f"SFTP channel not opened within {open_timeout:.1f}s") from exc
            bounded(chan, lambda: chan.invoke_subsystem("sftp"), start_timeout)
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


def _open_socket(target: SshTarget) -> socket.socket:
    src = (target.source_address, 0) if target.source_address else None
    try:
        # an unanswered SYN is a dead peer too: no longer than the dead-peer timeout
        tcp_timeout = min(target.connect_timeout, target.dead_peer_timeout_ms / 1000)
        sock = socket.create_connection(
            (target.host, target.port), timeout=tcp_timeout, source_address=src
        )
    except OSError as exc:
        raise RunnerError(f"cannot connect to {target.label}: {exc}") from exc
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if hasattr(socket, "TCP_USER_TIMEOUT"):  # Linux: dead peers noticed in seconds
        sock.setsockopt(
            socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, int(target.dead_peer_timeout_ms)
        )
    return sock


def _host_key_policy(client: paramiko.SSHClient, target: SshTarget) -> None:
    if target.insecure_auto_add:
        if os.path.exists(target.known_hosts):
            client.get_host_keys().load(target.known_hosts)
        client.set_missing_host_key_policy(_WarnAutoAdd())
        return
    try:
        # get_host_keys().load, not load_host_keys: the file is never rewritten
        client.get_host_keys().load(target.known_hosts)
    except OSError as exc:
        raise HostKeyError(f"cannot read known_hosts {target.known_hosts!r}: {exc}") from exc
    client.set_missing_host_key_policy(_RejectUnknownHost())


def _login(client: paramiko.SSHClient, sock: socket.socket, target: SshTarget
           ) -> paramiko.Transport:
    _host_key_policy(client, target)
    client.connect(
        target.host,
        port=target.port,
        username=target.user,
        key_filename=target.key_filename,
        pkey=target.pkey,
        sock=sock,
        look_for_keys=False,
        allow_agent=False,
        timeout=target.connect_timeout,
        banner_timeout=target.connect_timeout,
        auth_timeout=target.connect_timeout,
    )
    transport = client.get_transport()
    if transport is None or not transport.is_active():
        raise RunnerError(f"SSH transport to {target.label} closed during login")
    transport.set_keepalive(target.keepalive_s)
    return transport


def connect(target: SshTarget) -> Connection:
    """Open and log in; every failure is a ``RunnerError`` (``HostKeyError``: not transient)."""
    started = time.monotonic()
    sock = _open_socket(target)
    client = paramiko.SSHClient()
    try:
        transport = _login(client, sock, target)
    except BaseException as exc:
        client.close()
        sock.close()
        if isinstance(exc, paramiko.BadHostKeyException):
            raise HostKeyError(
                f"host key of {target.label} does not match known_hosts "
                f"(got {exc.key.get_name()} {exc.key.fingerprint}): refusing to connect"
            ) from exc
        if isinstance(exc, RunnerError):
            raise
        if isinstance(exc, paramiko.SSHException | EOFError | OSError):
            raise RunnerError(f"SSH login to {target.label} failed: {exc!r}") from exc
        raise
    log.debug("connected to %s in %.3fs", target.label, time.monotonic() - started)
    return Connection(client, transport, sock)


class ConnectionPool:
    """The one cached connection of a runner; a dead one is replaced on the next ``get``."""

    def __init__(self, target: SshTarget) -> None:
        self.target = target
        self._lock = threading.Lock()
        self._conn: Connection | None = None

    def get(self) -> Connection:
        """The live connection; a dropped one is replaced here (that is the one reconnect)."""
        with self._lock:
            conn = self._conn
            if conn is not None and conn.alive():
                return conn
            if conn is not None:
                log.info("SSH connection to %s was lost; reconnecting", self.target.label)
                conn.close()
                self._conn = None
            self._conn = connect(self.target)
            return self._conn

    def discard(self, conn: Connection) -> None:
        with self._lock:
            if self._conn is conn:
                self._conn = None
        conn.close()

    def current(self) -> Connection | None:
        return self._conn

    def close(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
