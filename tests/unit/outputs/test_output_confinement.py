"""Every path stays inside the step's directory, on the cluster side too (real paths)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hpcgate.engine.outputs import LocalOutputs, OutputPathError, relative_path


@pytest.mark.parametrize(
    "raw",
    ["/etc/passwd", "../x", "a/../../x", "a/..", "x\x00y", "a\\..\\b", "/", "y" * 2000],
)
def test_hostile_names_are_refused_lexically(raw: str) -> None:
    with pytest.raises(OutputPathError):
        relative_path(raw)


def test_plain_names_pass() -> None:
    assert str(relative_path("task-0/output.out")) == "task-0/output.out"
    assert str(relative_path("./a//b")) == "a/b"
    assert str(relative_path("")) == "."


@pytest.fixture
def step(tmp_path: Path) -> tuple[LocalOutputs, str, Path]:
    scratch = tmp_path / "scratch"
    workdir = scratch / "hpcgate" / "calc-000001-x" / "step-000-main"
    workdir.mkdir(parents=True)
    (workdir / "out.txt").write_text("hello\n")
    (workdir / "sub").mkdir()
    (workdir / "sub" / "a.XV").write_bytes(b"\x00\x01")
    secret = tmp_path / "secret.txt"
    secret.write_text("not yours")
    (workdir / "escape").symlink_to(secret)
    (workdir / "escape_dir").symlink_to(tmp_path)
    (workdir / "inside").symlink_to(workdir / "out.txt")
    os.mkfifo(workdir / "fifo")
    return LocalOutputs(str(scratch)), str(workdir), tmp_path


def test_listing_shows_name_kind_size_mtime(step: tuple[LocalOutputs, str, Path]) -> None:
    files, workdir, _ = step
    entries, cut = files.list_dir(workdir, "")
    by_name = {e.name: e for e in entries}
    assert not cut
    assert by_name["out.txt"].kind == "file"
    assert by_name["out.txt"].size == 6
    assert by_name["sub"].kind == "dir"
    assert by_name["escape"].kind == "link"
    assert by_name["out.txt"].mtime > 0
    assert [e.name for e in files.list_dir(workdir, "sub")[0]] == ["a.XV"]


def test_reads_are_ranged(step: tuple[LocalOutputs, str, Path]) -> None:
    files, workdir, _ = step
    chunk = files.read(workdir, "out.txt", 2, 2)
    assert (chunk.data, chunk.size) == (b"ll", 6)
    assert files.read(workdir, "inside", 0, 100).data == b"hello\n"  # a link that stays in


@pytest.mark.parametrize("rel", ["escape", "escape_dir/secret.txt", "../../../../secret.txt"])
def test_symlinks_leaving_the_directory_are_refused(
    step: tuple[LocalOutputs, str, Path], rel: str
) -> None:
    files, workdir, _ = step
    with pytest.raises(OutputPathError):
        files.read(workdir, rel, 0, 100)
    with pytest.raises(OutputPathError):
        files.list_dir(workdir, rel)


def test_a_fifo_is_never_read(step: tuple[LocalOutputs, str, Path]) -> None:
    files, workdir, _ = step
    with pytest.raises(OutputPathError, match="not a regular file"):
        files.read(workdir, "fifo", 0, 100)


def test_a_step_directory_replaced_by_a_link_outside_is_refused(
    step: tuple[LocalOutputs, str, Path],
) -> None:
    files, workdir, tmp = step
    os.rename(workdir, workdir + ".moved")
    os.symlink(tmp, workdir)
    with pytest.raises(OutputPathError, match="outside the scratch root"):
        files.read(workdir, "secret.txt", 0, 100)
