"""Hostile paths are refused before any I/O: LocalRunner, and SshRunner's lexical layer.

SshRunner here points at a closed port: if a refused path ever reached the network, the
test would see RunnerError instead of UnsafePath. The remote real-path layer (symlinks on
the server) is covered against the real sshd in tests/integration/test_runner_contract.py;
its pure comparison ``ensure_real_inside`` and the command quoting are covered here.
"""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
from pathlib import Path, PurePosixPath

import pytest

from scheduler_adapters.errors import RunnerError, UnsafePath
from scheduler_adapters.runners.base import check_inside
from scheduler_adapters.runners.local import LocalRunner
from scheduler_adapters.runners.ssh import SshRunner
from scheduler_adapters.runners.ssh_exec import build_command
from scheduler_adapters.runners.ssh_files import ensure_real_inside

ROOT = PurePosixPath("/srv/scratch/hpcgate")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ssh_runner(root: PurePosixPath = ROOT) -> SshRunner:
    return SshRunner(
        "127.0.0.1", _closed_port(), "nobody", key_filename="/nonexistent/key",
        known_hosts="/nonexistent/known_hosts", scratch_root=root, connect_timeout=1,
    )


def _hostile(root: PurePosixPath) -> list[PurePosixPath]:
    r = str(root)
    return [
        root,                                   # the scratch root itself
        PurePosixPath(f"{r}/"),
        PurePosixPath(f"{r}/."),
        PurePosixPath(f"{r}/./."),
        PurePosixPath(f"{r}/.."),               # '..' anywhere
        PurePosixPath(f"{r}/../{root.name}/x"),
        PurePosixPath(f"{r}/a/../../etc"),
        PurePosixPath(f"{r}/a/.."),
        root.parent,
        PurePosixPath("/"),
        PurePosixPath("/etc/passwd"),
        PurePosixPath(f"{r}-evil/x"),           # shares the prefix, not the directory
        PurePosixPath(f"{r}evil"),
        PurePosixPath("relative/x"),            # relative paths
        PurePosixPath("x"),
        PurePosixPath("."),
        PurePosixPath(".."),
    ]


@pytest.mark.parametrize("path", _hostile(ROOT), ids=str)
def test_check_inside_refuses(path: PurePosixPath) -> None:
    with pytest.raises(UnsafePath):
        check_inside(ROOT, path)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (ROOT / "a", ROOT / "a"),
        (PurePosixPath(f"{ROOT}/./a/./b"), ROOT / "a" / "b"),
        (PurePosixPath(f"{ROOT}//a"), ROOT / "a"),
    ],
    ids=str,
)
def test_check_inside_accepts_and_normalizes(path: PurePosixPath, expected: PurePosixPath) -> None:
    assert check_inside(ROOT, path) == expected


@pytest.mark.parametrize("path", _hostile(ROOT), ids=str)
def test_ssh_runner_refuses_before_connecting(path: PurePosixPath) -> None:
    runner = _ssh_runner()
    with pytest.raises(UnsafePath):
        runner.remove_tree(path)
    with pytest.raises(UnsafePath):
        runner.write_text(path, "nope")
    assert runner.is_connected() is False


def test_ssh_runner_really_has_no_server() -> None:
    """Guards the test above: a path that passes the lexical check does hit the network."""
    with pytest.raises(RunnerError):
        _ssh_runner().remove_tree(ROOT / "fine")


@pytest.mark.parametrize("root", ["relative/scratch", "/", "/srv/../etc", ""])
def test_ssh_runner_rejects_unusable_scratch_root(root: str) -> None:
    with pytest.raises(ValueError):
        _ssh_runner(PurePosixPath(root))


@pytest.mark.parametrize(
    ("real", "ok"),
    [
        (ROOT, True),
        (ROOT / "a" / "b", True),
        (ROOT.parent, False),
        (PurePosixPath("/etc"), False),
        (PurePosixPath(f"{ROOT}-evil"), False),
        (PurePosixPath("/"), False),
    ],
    ids=str,
)
def test_ensure_real_inside(real: PurePosixPath, ok: bool) -> None:
    if ok:
        ensure_real_inside(ROOT, real, "p")
    else:
        with pytest.raises(UnsafePath):
            ensure_real_inside(ROOT, real, "p")


# ---------------------------------------------------------------- LocalRunner, real symlinks
@pytest.fixture
def local(tmp_path: Path) -> tuple[LocalRunner, Path, Path]:
    scratch = tmp_path.resolve() / "scratch"
    outside = tmp_path.resolve() / "outside"
    scratch.mkdir()
    outside.mkdir()
    (outside / "canary").write_text("keep")
    (scratch / "escape").symlink_to(outside)
    (scratch / "canary-link").symlink_to(outside / "canary")
    return LocalRunner(str(scratch)), scratch, outside


def test_local_runner_refuses_hostile_paths(local: tuple[LocalRunner, Path, Path]) -> None:
    runner, scratch, _ = local
    for path in _hostile(PurePosixPath(scratch)):
        with pytest.raises(UnsafePath):
            runner.remove_tree(path)
        with pytest.raises(UnsafePath):
            runner.write_text(path, "nope")
    assert scratch.is_dir()


def test_local_runner_refuses_paths_through_symlinks_out(
    local: tuple[LocalRunner, Path, Path],
) -> None:
    runner, scratch, outside = local
    for path in (scratch / "escape" / "canary", scratch / "escape" / "sub" / "x"):
        with pytest.raises(UnsafePath):
            runner.remove_tree(PurePosixPath(path))
        with pytest.raises(UnsafePath):
            runner.write_text(PurePosixPath(path), "nope")
    assert sorted(os.listdir(outside)) == ["canary"]
    assert (outside / "canary").read_text() == "keep"


def test_local_runner_removes_links_not_targets(local: tuple[LocalRunner, Path, Path]) -> None:
    runner, scratch, outside = local
    runner.remove_tree(PurePosixPath(scratch / "escape"))
    runner.remove_tree(PurePosixPath(scratch / "canary-link"))
    assert os.listdir(scratch) == []
    assert (outside / "canary").read_text() == "keep"


# ---------------------------------------------------------------- command quoting
HOSTILE_ARGS = [
    "two words", "it's", '"dq"', "$(touch PWNED)", "`touch PWNED`", "; touch PWNED",
    "&& x", "| x", "> PWNED", "$HOME", "*", "~", "\\", "new\nline", "", "--", "-n", "ü ✓",
]


def test_build_command_quotes_every_word(tmp_path: Path) -> None:
    """Executed by a real local bash: each argument arrives verbatim, nothing executes."""
    command = build_command(["printf", "%s\\000", *HOSTILE_ARGS], PurePosixPath(tmp_path))
    out = subprocess.run(["bash", "-c", command], capture_output=True, check=True).stdout
    marker, _, payload = out.partition(b"\n")
    assert marker.startswith(b"__hpcgate_pid=")
    assert payload.decode().split("\0")[:-1] == HOSTILE_ARGS
    assert os.listdir(tmp_path) == []


def test_build_command_uses_shlex_join() -> None:
    command = build_command(["echo", "a b", "$x"], PurePosixPath("/w d"))
    assert command.endswith("; cd -- '/w d' || exit 127; exec " + shlex.join(["echo", "a b", "$x"]))


@pytest.mark.parametrize("argv", [[], ["a\x00b"], ["echo", "x\x00"], ["-rf"]], ids=repr)
def test_build_command_rejects_unrunnable_argv(argv: list[str]) -> None:
    with pytest.raises(ValueError):
        build_command(argv)
