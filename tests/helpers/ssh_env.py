"""The loopback sshd test component (scripts/services/sshd.sh) as seen from the tests.

``load_ssh_env`` reads the env file the script writes; tests call ``require_ssh_env``,
which skips with a reason naming the missing component. The fault helpers act only on
one test connection (found through its socket) or on traffic from 127.0.0.3, an address
no other user of the shared sshd connects from.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scheduler_adapters.runners.ssh import SshRunner
from tests.helpers.ci import missing

ENV_FILE = Path(os.environ.get("HPCGATE_TEST_SSHD_ENV", "/var/lib/hpcgate-test/sshd/env"))
FAULT_SOURCE = "127.0.0.3"  # tests that black-hole traffic connect from here only


@dataclass(frozen=True)
class SshTestEnv:
    host: str
    host2: str
    port: int
    user: str
    key: str
    known_hosts: str
    scratch: str
    pid_file: Path


def _parse_env(text: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ")
        key, sep, value = line.partition("=")
        if sep:
            words = shlex.split(value)
            values[key.strip()] = words[0] if words else ""
    return values


def load_ssh_env(path: Path = ENV_FILE) -> SshTestEnv | None:
    """The sshd component's settings, or None when it is not set up."""
    if not path.is_file():
        return None
    v = _parse_env(path.read_text())
    try:
        return SshTestEnv(
            host=v["HPCGATE_TEST_SSH_HOST"],
            host2=v.get("HPCGATE_TEST_SSH_HOST2", v["HPCGATE_TEST_SSH_HOST"]),
            port=int(v["HPCGATE_TEST_SSH_PORT"]),
            user=v["HPCGATE_TEST_SSH_USER"],
            key=v["HPCGATE_TEST_SSH_KEY"],
            known_hosts=v["HPCGATE_TEST_SSH_KNOWN_HOSTS"],
            scratch=v.get("HPCGATE_TEST_SSH_SCRATCH", "/home/hpctest/scratch"),
            pid_file=path.parent / "sshd.pid",
        )
    except (KeyError, ValueError) as exc:
        hint = "re-run scripts/services/sshd.sh"
        raise RuntimeError(f"{path} is incomplete ({exc}): {hint}") from exc


def require_ssh_env() -> SshTestEnv:
    env = load_ssh_env()
    if env is None:
        missing(
            f"sshd test component not running: {ENV_FILE} missing "
            "(start it with scripts/services/sshd.sh as root)"
        )
    return env


def make_ssh_runner(
    env: SshTestEnv,
    scratch_root: str,
    *,
    host: str | None = None,
    known_hosts: str | None = None,
    **options: Any,
) -> SshRunner:
    return SshRunner(
        host or env.host,
        env.port,
        env.user,
        key_filename=env.key,
        known_hosts=known_hosts or env.known_hosts,
        scratch_root=scratch_root,
        **options,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------- server-side processes
def _hex_endpoint(ip: str, port: int) -> str:
    return f"{socket.inet_aton(ip)[::-1].hex().upper()}:{port:04X}"


def _socket_inodes(server: tuple[str, int], client: tuple[str, int]) -> set[str]:
    local, remote = _hex_endpoint(*server), _hex_endpoint(*client)
    inodes = set()
    with open("/proc/net/tcp") as fh:
        next(fh)
        for line in fh:
            f = line.split()
            if f[1] == local and f[2] == remote:
                inodes.add(f[9])
    return inodes


def _ppid(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as fh:
        return int(fh.read().rsplit(")", 1)[1].split()[1])


def _descends_from(pid: int, ancestor: int) -> bool:
    while pid > 1:
        if pid == ancestor:
            return True
        try:
            pid = _ppid(pid)
        except (OSError, ValueError, IndexError):
            return False
    return False


def connection_pids(env: SshTestEnv, runner: SshRunner) -> list[int]:
    """The sshd processes serving ``runner``'s current connection (children of the daemon)."""
    endpoint = runner.local_endpoint
    if endpoint is None:
        raise RuntimeError("runner has no connection")
    server_ip = runner.host
    wanted = {f"socket:[{i}]" for i in _socket_inodes((server_ip, env.port), endpoint)}
    daemon = int(env.pid_file.read_text().strip())
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == daemon:
            continue
        try:
            fd_dir = f"/proc/{entry}/fd"
            links = {os.readlink(f"{fd_dir}/{fd}") for fd in os.listdir(fd_dir)}
        except OSError:
            continue
        if links & wanted and _descends_from(int(entry), daemon):
            found.append(int(entry))
    return sorted(found)


@contextlib.contextmanager
def stopped(pids: list[int]) -> Iterator[None]:
    """SIGSTOP the given processes (a hung host); always SIGCONT them afterwards."""
    try:
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        yield
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


# ---------------------------------------------------------------- iptables black hole
def iptables_usable() -> bool:
    if os.geteuid() != 0 or shutil.which("iptables") is None:
        return False
    probe = subprocess.run(["iptables", "-w", "5", "-S", "INPUT"], capture_output=True)
    return probe.returncode == 0


def _rules(port: int) -> list[list[str]]:
    return [
        ["INPUT", "-i", "lo", "-s", FAULT_SOURCE, "-p", "tcp", "--dport", str(port), "-j", "DROP"],
        ["INPUT", "-i", "lo", "-d", FAULT_SOURCE, "-p", "tcp", "--sport", str(port), "-j", "DROP"],
    ]


@contextlib.contextmanager
def blackholed(port: int) -> Iterator[None]:
    """Drop all traffic between FAULT_SOURCE and the sshd port; the rules are always removed."""
    inserted: list[list[str]] = []
    try:
        for rule in _rules(port):
            subprocess.run(["iptables", "-w", "5", "-I", *rule], check=True)
            inserted.append(rule)
        yield
    finally:
        for rule in inserted:
            subprocess.run(["iptables", "-w", "5", "-D", *rule], check=False)


def wait_until(
    predicate: Callable[[], bool], timeout: float, interval: float = 0.05
) -> float | None:
    """Seconds until ``predicate()`` was true, or None after ``timeout``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(interval)
    return None
