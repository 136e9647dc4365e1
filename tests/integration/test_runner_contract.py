"""One contract suite for every Runner: LocalRunner here, SshRunner against the real loopback sshd.

The ``runner_case`` fixture is parametrized over both runners, so each contract test runs
twice with the same assertions. Connection behaviour (host keys, unreachable hosts, dead
and hung peers, reconnects, channel limits) exists only for SSH and is tested below the
contract. Faults are injected on this test's own connection only: SIGSTOP of the sshd
processes serving it, or iptables rules scoped to the source address 127.0.0.3.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pytest

from scheduler_adapters.errors import RunnerError, UnsafePath
from scheduler_adapters.runners.base import Runner
from scheduler_adapters.runners.local import LocalRunner
from scheduler_adapters.runners.ssh import SshRunner
from scheduler_adapters.runners.ssh_connection import HostKeyError
from scheduler_adapters.types import CommandResult
from tests.helpers.ci import missing, require
from tests.helpers.ssh_env import (
    FAULT_SOURCE,
    SshTestEnv,
    blackholed,
    connection_pids,
    free_port,
    iptables_usable,
    make_ssh_runner,
    require_ssh_env,
    stopped,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

HOSTILE_ARGS = [
    "plain",
    "two words",
    "  padded  ",
    "it's",
    '"double"',
    "$(touch PWNED_subst)",
    "`touch PWNED_backtick`",
    "; touch PWNED_semicolon",
    "&& touch PWNED_and",
    "| touch PWNED_pipe",
    "> PWNED_redirect",
    "$HOME ${HOME} $$ $0",
    "*",
    "~",
    "\\",
    "new\nline",
    "tab\there",
    "--",
    "-n",
    "ünïcødé ✓",
    "",
]


@dataclass
class RunnerCase:
    kind: str
    runner: Runner
    scratch: PurePosixPath  # == runner.scratch_root
    outside: PurePosixPath  # writable by the runner's user, outside the scratch root

    def sh(self, script: str, *args: str, timeout: float = 30) -> CommandResult:
        """Run a fixed shell snippet; values travel as positional args, never pasted in."""
        return self.runner.run(["sh", "-c", script, "sh", *args], timeout=timeout)

    def must(self, script: str, *args: str) -> str:
        result = self.sh(script, *args)
        assert result.returncode == 0, result
        return result.stdout


def _ssh_case(env: SshTestEnv) -> Iterator[RunnerCase]:
    tag = uuid.uuid4().hex[:10]
    base = PurePosixPath(env.scratch)
    scratch = base / f"contract-{tag}"
    outside = base.parent / f"outside-{tag}"
    runner = make_ssh_runner(env, str(scratch))
    try:
        created = runner.run(["mkdir", "-p", "--", str(scratch), str(outside)])
        assert created.returncode == 0, created
        yield RunnerCase("ssh", runner, scratch, outside)
    finally:
        runner.run(["rm", "-rf", "--", str(scratch), str(outside)])
        runner.close()


@pytest.fixture(params=["local", pytest.param("ssh", marks=pytest.mark.ssh)])
def runner_case(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RunnerCase]:
    if request.param == "local":
        scratch = tmp_path.resolve() / "scratch"
        outside = tmp_path.resolve() / "outside"
        scratch.mkdir()
        outside.mkdir()
        runner = LocalRunner(str(scratch))
        yield RunnerCase("local", runner, PurePosixPath(scratch), PurePosixPath(outside))
        runner.close()
    else:
        yield from _ssh_case(require_ssh_env())


# ====================================================================== run
def test_runner_satisfies_protocol(runner_case: RunnerCase) -> None:
    assert isinstance(runner_case.runner, Runner)
    assert runner_case.runner.scratch_root == runner_case.scratch


def test_run_returns_rc_stdout_stderr(runner_case: RunnerCase) -> None:
    result = runner_case.sh("echo out; echo err >&2; exit 3")
    assert result.argv == ("sh", "-c", "echo out; echo err >&2; exit 3", "sh")
    assert (result.returncode, result.stdout, result.stderr) == (3, "out\n", "err\n")
    assert result.duration_s > 0


def test_missing_program_is_rc_127(runner_case: RunnerCase) -> None:
    result = runner_case.runner.run(["hpcgate-no-such-program-xyz", "arg"])
    assert result.returncode == 127


def test_signal_death_is_negative_rc(runner_case: RunnerCase) -> None:
    # LocalRunner reports -9; over SSH paramiko drops exit-signal and reports -1.
    result = runner_case.sh("kill -KILL $$")
    assert result.returncode < 0


def test_output_is_decoded_like_text_mode(runner_case: RunnerCase) -> None:
    result = runner_case.sh(r"printf 'a\r\nb\rc\n\377\n'")
    assert result.stdout == "a\nb\nc\n\ufffd\n"


def test_stdin_is_delivered(runner_case: RunnerCase) -> None:
    text = "line one\nünïcødé ✓\n$(not expanded)\n"
    result = runner_case.runner.run(["cat"], stdin=text)
    assert (result.returncode, result.stdout) == (0, text)


def test_large_stdin_while_output_flows(runner_case: RunnerCase) -> None:
    """3 MB in while the command echoes it back: stdin and output must interleave."""
    payload = ("0123456789abcdef" * 64 + "\n") * 3000  # ~3 MB
    result = runner_case.runner.run(["cat"], stdin=payload, timeout=60)
    assert result.returncode == 0
    assert len(result.stdout) == len(payload)
    assert result.stdout == payload


def test_cwd(runner_case: RunnerCase) -> None:
    result = runner_case.runner.run(["pwd"], cwd=runner_case.scratch)
    assert (result.returncode, result.stdout) == (0, f"{runner_case.scratch}\n")


def test_missing_cwd_is_rc_127(runner_case: RunnerCase) -> None:
    result = runner_case.runner.run(["pwd"], cwd=runner_case.scratch / "no" / "such" / "dir")
    assert result.returncode == 127


def test_hostile_argv_arrives_verbatim_and_never_executes(runner_case: RunnerCase) -> None:
    result = runner_case.runner.run(
        ["printf", "%s\\000", *HOSTILE_ARGS], cwd=runner_case.scratch
    )
    assert result.returncode == 0, result
    assert result.stdout.split("\0")[:-1] == HOSTILE_ARGS
    listing = runner_case.runner.run(["ls", "-A"], cwd=runner_case.scratch)
    assert listing.stdout == ""


def test_hostile_cwd_is_quoted(runner_case: RunnerCase) -> None:
    odd = runner_case.scratch / "dir with 'quotes' $(touch PWNED) ; `x`"
    runner_case.must('mkdir -p -- "$1"', str(odd))
    result = runner_case.runner.run(["pwd"], cwd=odd)
    assert (result.returncode, result.stdout) == (0, f"{odd}\n")
    assert runner_case.runner.exists(runner_case.scratch / "PWNED") is False


def test_large_output_on_both_streams_does_not_deadlock(runner_case: RunnerCase) -> None:
    """2.5 MB of stderr *before* 2.5 MB of stdout, then interleaved (paramiko #1778)."""
    script = (
        "head -c 2621440 /dev/zero | tr '\\0' e >&2; "
        "head -c 2621440 /dev/zero | tr '\\0' o; "
        "i=0; while [ $i -lt 8 ]; do "
        "head -c 65536 /dev/zero | tr '\\0' o; head -c 65536 /dev/zero | tr '\\0' e >&2; "
        "i=$((i+1)); done; exit 7"
    )
    started = time.monotonic()
    result = runner_case.sh(script, timeout=60)
    elapsed = time.monotonic() - started
    size = 2621440 + 8 * 65536
    assert result.returncode == 7
    assert (len(result.stdout), len(result.stderr)) == (size, size)
    assert set(result.stdout) == {"o"}
    assert set(result.stderr) == {"e"}
    print(f"[{runner_case.kind}] 2x{size} bytes in {elapsed:.2f}s")


def _process_gone(case: RunnerCase, pid: int) -> bool:
    # zombies count as gone: PID 1 on this VM reaps orphans a little late
    probe = case.sh('[ -r "/proc/$1/stat" ] && cut -d" " -f3 "/proc/$1/stat"', str(pid))
    return probe.stdout.strip() in ("", "Z")


def test_timeout_raises_runner_error_and_kills_the_command(runner_case: RunnerCase) -> None:
    pid_file = runner_case.scratch / "sleeper.pid"
    started = time.monotonic()
    with pytest.raises(RunnerError) as info:
        runner_case.sh('echo $$ > "$1"; exec sleep 30', str(pid_file), timeout=1)
    elapsed = time.monotonic() - started
    assert info.value.transient is True
    assert "timed out" in str(info.value)
    assert elapsed < 10
    pid = int(runner_case.runner.read_text(pid_file).strip())
    assert wait_until(lambda: _process_gone(runner_case, pid), timeout=5) is not None
    # the runner is still usable afterwards
    assert runner_case.runner.run(["echo", "after"]).stdout == "after\n"


# ====================================================================== files
def test_write_read_round_trip_is_atomic_and_sets_mode(runner_case: RunnerCase) -> None:
    target = runner_case.scratch / "deep" / "er" / "input.fdf"
    text = "SystemLabel h2o\n# ünïcødé ✓\n" * 100
    runner_case.runner.write_text(target, text, mode=0o640)
    assert runner_case.runner.read_text(target) == text
    assert runner_case.must('stat -c %a "$1"', str(target)) == "640\n"
    runner_case.runner.write_text(target, "replaced\n")
    assert runner_case.runner.read_text(target) == "replaced\n"
    assert runner_case.must('stat -c %a "$1"', str(target)) == "644\n"
    # no temporary files are left beside the target
    assert runner_case.must('ls -A "$1"', str(target.parent)) == "input.fdf\n"


def test_write_replaces_a_symlink_instead_of_following_it(runner_case: RunnerCase) -> None:
    canary = runner_case.outside / "canary"
    runner_case.must('printf keep > "$1"', str(canary))
    link = runner_case.scratch / "link"
    runner_case.must('ln -s "$1" "$2"', str(canary), str(link))
    runner_case.runner.write_text(link, "new\n")
    assert runner_case.runner.read_text(canary) == "keep"
    assert runner_case.must('[ -L "$1" ] && echo link || echo file', str(link)) == "file\n"


def test_concurrent_writers_leave_one_complete_version(runner_case: RunnerCase) -> None:
    target = runner_case.scratch / "shared" / "state.json"
    versions = [f"{i:03d}" * 20000 + "\n" for i in range(8)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda t: runner_case.runner.write_text(target, t), versions))
    assert runner_case.runner.read_text(target) in versions


def test_read_text_is_bounded(runner_case: RunnerCase) -> None:
    target = runner_case.scratch / "big.out"
    runner_case.runner.write_text(target, "x" * 5000)
    assert runner_case.runner.read_text(target, max_bytes=100) == "x" * 100


def test_read_missing_file_raises_file_not_found(runner_case: RunnerCase) -> None:
    with pytest.raises(FileNotFoundError):
        runner_case.runner.read_text(runner_case.scratch / "missing.txt")


def test_exists(runner_case: RunnerCase) -> None:
    file = runner_case.scratch / "f"
    runner_case.runner.write_text(file, "x")
    dangling = runner_case.scratch / "dangling"
    runner_case.must('ln -s /nonexistent/target "$1"', str(dangling))
    assert runner_case.runner.exists(file) is True
    assert runner_case.runner.exists(runner_case.scratch) is True
    assert runner_case.runner.exists(dangling) is True  # like os.path.lexists
    assert runner_case.runner.exists(runner_case.scratch / "nope") is False


@pytest.mark.parametrize(
    "relative",
    [None, ".", "..", "../x", "a/../../x", "a/../..", "/etc/passwd", "relative/path"],
)
def test_write_outside_scratch_is_refused(runner_case: RunnerCase, relative: str | None) -> None:
    s = runner_case.scratch
    path = {
        None: s,
        ".": PurePosixPath(f"{s}/."),
        "/etc/passwd": PurePosixPath("/etc/passwd"),
        "relative/path": PurePosixPath("relative/path"),
    }.get(relative, PurePosixPath(f"{s}/{relative}"))
    with pytest.raises(UnsafePath):
        runner_case.runner.write_text(path, "nope")


def test_write_through_symlink_pointing_outside_is_refused(runner_case: RunnerCase) -> None:
    escape = runner_case.scratch / "escape"
    runner_case.must('ln -s "$1" "$2"', str(runner_case.outside), str(escape))
    for path in (escape / "new.txt", escape / "sub" / "new.txt"):
        with pytest.raises(UnsafePath):
            runner_case.runner.write_text(path, "nope")
    assert runner_case.must('ls -A "$1"', str(runner_case.outside)) == ""


# ====================================================================== write_bytes
def _sha256_remote(case: RunnerCase, path: PurePosixPath) -> str:
    return case.must('sha256sum -- "$1"', str(path)).split()[0]


def test_write_bytes_is_byte_exact_atomic_and_sets_mode(runner_case: RunnerCase) -> None:
    # Not UTF-8 (lone continuation bytes, NUL, \r\n that text mode would touch).
    data = os.urandom(300_000) + b"\x80\xff\x00\r\n\xc3"
    target = runner_case.scratch / "bin" / "electrode.TSHS"
    runner_case.runner.write_bytes(target, data, mode=0o640)
    assert _sha256_remote(runner_case, target) == hashlib.sha256(data).hexdigest()
    assert runner_case.must('stat -c "%a %s" "$1"', str(target)) == f"640 {len(data)}\n"
    # a file object is streamed from its current position, in chunks
    stream = io.BytesIO(b"skipped" + data[::-1])
    stream.seek(len(b"skipped"))
    runner_case.runner.write_bytes(target, stream)
    assert _sha256_remote(runner_case, target) == hashlib.sha256(data[::-1]).hexdigest()
    assert runner_case.must('ls -A "$1"', str(target.parent)) == "electrode.TSHS\n"


@pytest.mark.parametrize("relative", ["..", "../x", "a/../../x", "/etc/passwd"])
def test_write_bytes_outside_scratch_is_refused(runner_case: RunnerCase, relative: str) -> None:
    s = runner_case.scratch
    path = PurePosixPath(relative) if relative.startswith("/") else PurePosixPath(f"{s}/{relative}")
    with pytest.raises(UnsafePath):
        runner_case.runner.write_bytes(path, b"\xff nope")
    escape = runner_case.scratch / "escape-bytes"
    runner_case.must('ln -s "$1" "$2"', str(runner_case.outside), str(escape))
    with pytest.raises(UnsafePath):
        runner_case.runner.write_bytes(escape / "new.bin", b"\xff nope")
    assert runner_case.must('ls -A "$1"', str(runner_case.outside)) == ""


# ====================================================================== remove_tree
def _plant(case: RunnerCase) -> PurePosixPath:
    """A canary outside scratch, and a tree in scratch that links to it in every way."""
    canary = case.outside / "canary"
    case.must('printf keep > "$1"', str(canary))
    tree = case.scratch / "calc" / "step-1"
    case.runner.write_text(tree / "out" / "RUN.out", "data\n")
    case.runner.write_text(tree / "a" / "b" / "c" / "deep.txt", "deep\n")
    case.must('ln -s "$1" "$2"', str(case.outside), str(tree / "link-to-outside-dir"))
    case.must('ln -s "$1" "$2"', str(canary), str(tree / "a" / "link-to-canary"))
    return tree


def _canary_intact(case: RunnerCase) -> bool:
    return case.runner.read_text(case.outside / "canary") == "keep"


def test_remove_tree_removes_tree_without_following_symlinks(runner_case: RunnerCase) -> None:
    tree = _plant(runner_case)
    runner_case.runner.remove_tree(tree)
    assert runner_case.runner.exists(tree) is False
    assert runner_case.runner.exists(tree.parent) is True
    assert _canary_intact(runner_case)


def test_remove_tree_on_symlink_removes_only_the_link(runner_case: RunnerCase) -> None:
    tree = _plant(runner_case)
    link = tree / "link-to-outside-dir"
    runner_case.runner.remove_tree(link)
    assert runner_case.runner.exists(link) is False
    assert _canary_intact(runner_case)
    file_link = tree / "a" / "link-to-canary"
    runner_case.runner.remove_tree(file_link)
    assert runner_case.runner.exists(file_link) is False
    assert _canary_intact(runner_case)


def test_remove_tree_refuses_path_whose_parent_resolves_outside(runner_case: RunnerCase) -> None:
    tree = _plant(runner_case)
    with pytest.raises(UnsafePath):
        runner_case.runner.remove_tree(tree / "link-to-outside-dir" / "canary")
    assert _canary_intact(runner_case)


def test_remove_tree_refuses_scratch_root_and_escapes(runner_case: RunnerCase) -> None:
    s = runner_case.scratch
    runner_case.runner.write_text(s / "keep.txt", "keep")
    hostile = [
        s,
        PurePosixPath(f"{s}/"),
        PurePosixPath(f"{s}/."),
        PurePosixPath(f"{s}/.."),
        PurePosixPath(f"{s}/a/../.."),
        PurePosixPath(f"{s}/../{s.name}"),
        s.parent,
        PurePosixPath("/"),
        PurePosixPath("/etc"),
        PurePosixPath(str(runner_case.outside)),
        PurePosixPath(f"{s}-sibling/x"),
        PurePosixPath("relative/x"),
        PurePosixPath("."),
    ]
    for path in hostile:
        with pytest.raises(UnsafePath):
            runner_case.runner.remove_tree(path)
    assert runner_case.runner.read_text(s / "keep.txt") == "keep"


def test_remove_tree_of_missing_path_is_a_no_op(runner_case: RunnerCase) -> None:
    runner_case.runner.remove_tree(runner_case.scratch / "never" / "existed")
    runner_case.runner.remove_tree(runner_case.scratch / "never")
    assert runner_case.runner.exists(runner_case.scratch) is True


# ====================================================================== SSH only
@pytest.fixture
def ssh_env() -> SshTestEnv:
    return require_ssh_env()


@pytest.fixture
def scratch(ssh_env: SshTestEnv) -> Iterator[str]:
    path = f"{ssh_env.scratch}/conn-{uuid.uuid4().hex[:10]}"
    yield path
    cleanup = make_ssh_runner(ssh_env, ssh_env.scratch)
    try:
        cleanup.run(["rm", "-rf", "--", path])
    finally:
        cleanup.close()


def _other_host_key(tmp_path: Path, env: SshTestEnv) -> Path:
    import paramiko

    key = paramiko.Ed25519Key.from_private_key_file(env.key)  # any key but the host's
    known = tmp_path / "known_hosts"
    known.write_text(f"[{env.host}]:{env.port} {key.get_name()} {key.get_base64()}\n")
    return known


@pytest.mark.ssh
def test_connection_is_reused_and_fast(ssh_env: SshTestEnv, scratch: str) -> None:
    runner = make_ssh_runner(ssh_env, scratch)
    try:
        started = time.monotonic()
        runner.run(["true"])
        connect_s = time.monotonic() - started
        endpoint = runner.local_endpoint
        started = time.monotonic()
        for i in range(50):
            assert runner.run(["echo", str(i)]).stdout == f"{i}\n"
        per_command_ms = (time.monotonic() - started) / 50 * 1000
        assert runner.local_endpoint == endpoint
        print(f"connect+first command {connect_s * 1000:.0f} ms, then {per_command_ms:.1f} ms/cmd")
        assert per_command_ms < 40  # ~48 ms would mean Nagle is back (no TCP_NODELAY)
    finally:
        runner.close()


@pytest.mark.ssh
def test_second_login_node_address(ssh_env: SshTestEnv, scratch: str) -> None:
    runner = make_ssh_runner(ssh_env, scratch, host=ssh_env.host2)
    try:
        result = runner.run(["sh", "-c", 'echo "$SSH_CONNECTION"'])
        assert result.returncode == 0
        assert result.stdout.split()[2] == ssh_env.host2
    finally:
        runner.close()


@pytest.mark.ssh
def test_more_concurrent_commands_than_channels(ssh_env: SshTestEnv, scratch: str) -> None:
    """40 commands from 16 threads on one connection: capped at max_channels, none fail."""
    runner = make_ssh_runner(ssh_env, scratch)
    peak = 0
    active = 0
    lock = threading.Lock()

    def one(i: int) -> str:
        nonlocal peak, active
        with lock:
            active += 1
            peak = max(peak, active)
        try:
            return runner.run(["sh", "-c", 'sleep 0.05; echo "$1"', "sh", str(i)]).stdout
        finally:
            with lock:
                active -= 1

    try:
        with ThreadPoolExecutor(max_workers=16) as pool:
            outputs = list(pool.map(one, range(40)))
        assert outputs == [f"{i}\n" for i in range(40)]
        assert peak > runner.max_channels  # the threads really did contend
    finally:
        runner.close()


@pytest.mark.ssh
def test_wrong_host_key_is_refused(ssh_env: SshTestEnv, scratch: str, tmp_path: Path) -> None:
    known = _other_host_key(tmp_path, ssh_env)
    runner = make_ssh_runner(ssh_env, scratch, known_hosts=str(known))
    with pytest.raises(HostKeyError) as info:
        runner.run(["true"])
    assert isinstance(info.value, RunnerError)
    assert info.value.transient is False
    assert "does not match" in str(info.value)
    assert runner.is_connected() is False


@pytest.mark.ssh
def test_unknown_host_is_refused(ssh_env: SshTestEnv, scratch: str, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    runner = make_ssh_runner(ssh_env, scratch, known_hosts=str(empty))
    with pytest.raises(HostKeyError) as info:
        runner.run(["true"])
    assert info.value.transient is False
    assert "not in known_hosts" in str(info.value)


@pytest.mark.ssh
def test_insecure_auto_add_connects_and_never_writes_known_hosts(
    ssh_env: SshTestEnv, scratch: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    runner = make_ssh_runner(ssh_env, scratch, known_hosts=str(empty), insecure_auto_add=True)
    try:
        assert runner.run(["echo", "ok"]).stdout == "ok\n"
    finally:
        runner.close()
    assert empty.read_text() == ""
    assert any("insecure_auto_add" in r.getMessage() for r in caplog.records)


@pytest.mark.ssh
def test_unreachable_port_fails_fast(ssh_env: SshTestEnv, scratch: str) -> None:
    runner = SshRunner(
        "127.0.0.1", free_port(), ssh_env.user, key_filename=ssh_env.key,
        known_hosts=ssh_env.known_hosts, scratch_root=scratch,
    )
    started = time.monotonic()
    with pytest.raises(RunnerError) as info:
        runner.run(["true"])
    assert info.value.transient is True
    assert time.monotonic() - started < 3
    with pytest.raises(RunnerError):
        runner.read_text(PurePosixPath(scratch) / "x")


@pytest.mark.ssh
def test_reconnects_after_the_server_drops_the_connection(
    ssh_env: SshTestEnv, scratch: str
) -> None:
    runner = make_ssh_runner(ssh_env, scratch)
    try:
        assert runner.run(["echo", "one"]).stdout == "one\n"
        before = runner.local_endpoint
        pids = connection_pids(ssh_env, runner)
        assert pids, "no sshd process found for this connection"
        for pid in pids:
            os.kill(pid, signal.SIGTERM)
        assert wait_until(lambda: not runner.is_connected(), timeout=10) is not None
        assert runner.run(["echo", "two"]).stdout == "two\n"
        assert runner.local_endpoint != before
        runner.write_text(PurePosixPath(scratch) / "f", "after reconnect")
        assert runner.read_text(PurePosixPath(scratch) / "f") == "after reconnect"
    finally:
        runner.close()


@pytest.mark.ssh
def test_hung_peer_raises_runner_error_then_recovers(ssh_env: SshTestEnv, scratch: str) -> None:
    """SIGSTOP the sshd processes of this connection: TCP stays up, nothing answers."""
    runner = make_ssh_runner(ssh_env, scratch, connect_timeout=3)
    try:
        runner.run(["true"])
        pids = connection_pids(ssh_env, runner)
        assert pids, "no sshd process found for this connection"
        with stopped(pids):
            started = time.monotonic()
            with pytest.raises(RunnerError) as info:
                runner.run(["echo", "hello"], timeout=30)
            elapsed = time.monotonic() - started
        print(f"hung peer -> RunnerError after {elapsed:.2f}s ({info.value})")
        assert info.value.transient is True
        assert elapsed < 20
        assert runner.run(["echo", "back"]).stdout == "back\n"
    finally:
        runner.close()


def _end_orphaned_session(pids: list[int]) -> None:
    """The server never saw the black-holed client go: end its side of that connection."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)


@pytest.fixture
def _iptables() -> None:
    require(iptables_usable(), "iptables not usable (not root, or not installed by sshd.sh)")


needs_iptables = pytest.mark.usefixtures("_iptables")


@pytest.mark.ssh
@needs_iptables
def test_dead_peer_is_noticed_while_idle_and_next_run_fails(
    ssh_env: SshTestEnv, scratch: str
) -> None:
    """Black-hole the connection: TCP_USER_TIMEOUT + keepalive notice it with no call made."""
    runner = make_ssh_runner(
        ssh_env, scratch, source_address=FAULT_SOURCE, connect_timeout=3, keepalive_s=2
    )
    server_side: list[int] = []
    try:
        runner.run(["true"])
        server_side = connection_pids(ssh_env, runner)
        with blackholed(ssh_env.port):
            noticed = wait_until(lambda: not runner.is_connected(), timeout=20, interval=0.1)
            started = time.monotonic()
            with pytest.raises(RunnerError) as info:
                runner.run(["true"], timeout=30)
            failed_after = time.monotonic() - started
        print(f"idle dead peer noticed after {noticed}s; next run failed in {failed_after:.2f}s")
        assert noticed is not None
        assert info.value.transient is True
        assert failed_after < 20
        assert runner.run(["echo", "back"]).stdout == "back\n"
    finally:
        runner.close()
        _end_orphaned_session(server_side)


@pytest.mark.ssh
@needs_iptables
def test_dead_peer_during_a_command_fails_long_before_its_timeout(
    ssh_env: SshTestEnv, scratch: str
) -> None:
    runner = make_ssh_runner(ssh_env, scratch, source_address=FAULT_SOURCE, connect_timeout=3)
    outcome: list[BaseException | CommandResult] = []

    def long_command() -> None:
        try:
            outcome.append(runner.run(["sleep", "67.25"], timeout=90))
        except BaseException as exc:  # recorded for the assertion below
            outcome.append(exc)

    server_side: list[int] = []
    try:
        runner.run(["true"])
        server_side = connection_pids(ssh_env, runner)
        worker = threading.Thread(target=long_command)
        worker.start()
        time.sleep(0.5)
        with blackholed(ssh_env.port):
            started = time.monotonic()
            worker.join(timeout=30)
            elapsed = time.monotonic() - started
        print(f"dead peer during a 67 s sleep -> {outcome!r} after {elapsed:.2f}s")
        assert worker.is_alive() is False
        assert len(outcome) == 1
        assert isinstance(outcome[0], RunnerError)
        assert elapsed < 20
        assert runner.run(["echo", "back"]).stdout == "back\n"
    finally:
        runner.close()
        _end_orphaned_session(server_side)
        # the orphaned sleep of the dead connection: end it
        cleanup = make_ssh_runner(ssh_env, ssh_env.scratch)
        cleanup.run(["pkill", "-u", ssh_env.user, "-xf", "sleep 67.25"])
        cleanup.close()


@pytest.mark.ssh
def test_slurm_client_commands_work_over_ssh(ssh_env: SshTestEnv, scratch: str) -> None:
    if shutil.which("sinfo") is None:
        missing("Slurm client not installed (run scripts/services/slurm.sh)")
    runner = make_ssh_runner(ssh_env, scratch)
    try:
        result = runner.run(["sinfo", "--noheader", "--format=%P"], timeout=30)
        if result.returncode != 0 and "Unable to contact slurm controller" in result.stderr:
            missing("slurmctld not running (run scripts/services/slurm.sh)")
        assert result.returncode == 0, result
        assert result.stdout.strip() != ""
    finally:
        runner.close()
