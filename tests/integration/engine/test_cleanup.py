"""Scratch cleanup by policy: patterns, keep-list, dry run, expiry, and hostile paths."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hpcgate.engine.cleanup import CleanupPolicy, clean_directory
from scheduler_adapters.runners.local import LocalRunner

pytestmark = pytest.mark.integration


def _tree(root: Path) -> Path:
    step = root / "calc-1" / "step-000-a"
    (step / "tmp").mkdir(parents=True)
    (step / "big.TSGF").write_bytes(b"x" * 5000)
    (step / "h2.RHO").write_bytes(b"y" * 3000)
    (step / "h2.DM").write_bytes(b"keep" * 10)  # restart-critical
    (step / "tmp" / "h2.wfc1").write_bytes(b"z" * 2000)
    (step / "RUN.out").write_text("siesta output")
    return step


def test_patterns_keep_list_and_freed_bytes(tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    step = _tree(scratch)
    runner = LocalRunner(scratch)
    policy = CleanupPolicy(delete_patterns=("*.TSGF", "*.RHO", "tmp/*.wfc*", "*.DM"))
    report = clean_directory(runner, str(step), policy)
    assert report.freed_bytes == 5000 + 3000 + 2000
    assert sorted(Path(p).name for p in report.deleted) == ["big.TSGF", "h2.RHO", "h2.wfc1"]
    assert (step / "h2.DM").exists()  # keep-list wins over delete patterns
    assert (step / "RUN.out").exists()
    assert not (step / "big.TSGF").exists()


def test_dry_run_deletes_nothing(tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    step = _tree(scratch)
    report = clean_directory(
        LocalRunner(scratch), str(step), CleanupPolicy(delete_patterns=("*",), dry_run=True)
    )
    assert report.dry_run is True
    assert report.freed_bytes == 5000 + 3000 + 2000
    assert (step / "big.TSGF").exists()
    assert (step / "tmp" / "h2.wfc1").exists()


def test_expired_directory_is_removed_whole(tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    step = _tree(scratch)
    report = clean_directory(
        LocalRunner(scratch), str(step), CleanupPolicy(keep_days=7), expired=True
    )
    assert not step.exists()
    assert report.freed_bytes == 5000 + 3000 + 40 + 2000 + len("siesta output")


def test_symlinks_are_removed_as_links_never_followed(tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    step = _tree(scratch)
    outside = tmp_path / "precious"
    outside.mkdir()
    (outside / "thesis.TSGF").write_text("do not delete")
    os.symlink(outside / "thesis.TSGF", step / "link.TSGF")
    os.symlink(outside, step / "dirlink")
    clean_directory(
        LocalRunner(scratch), str(step), CleanupPolicy(delete_patterns=("*.TSGF", "dirlink"))
    )
    assert (outside / "thesis.TSGF").read_text() == "do not delete"
    assert not (step / "link.TSGF").is_symlink()
    assert not os.path.lexists(step / "dirlink")
    clean_directory(LocalRunner(scratch), str(step), CleanupPolicy(), expired=True)
    assert (outside / "thesis.TSGF").read_text() == "do not delete"


@pytest.mark.parametrize(
    "hostile",
    [
        "/etc",
        "/",
        "{scratch}/../precious",
        "{scratch}",
        "relative/path",
        "{scratch}/calc-1/../../precious",
    ],
)
def test_hostile_directories_are_refused(tmp_path: Path, hostile: str) -> None:
    scratch = tmp_path / "scratch"
    _tree(scratch)
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "data").write_text("keep")
    target = hostile.format(scratch=scratch)
    report = clean_directory(
        LocalRunner(scratch), target, CleanupPolicy(delete_patterns=("*",)), expired=True
    )
    assert report.refused, target
    assert report.deleted == []
    assert (precious / "data").read_text() == "keep"
    assert (scratch / "calc-1" / "step-000-a" / "h2.DM").exists()


def test_a_step_dir_that_is_a_symlink_out_of_scratch_is_not_followed(tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    (scratch / "calc-2").mkdir(parents=True)
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "data.RHO").write_text("keep")
    os.symlink(precious, scratch / "calc-2" / "step-000-x")
    report = clean_directory(
        LocalRunner(scratch),
        str(scratch / "calc-2" / "step-000-x"),
        CleanupPolicy(delete_patterns=("*.RHO",)),
    )
    assert (precious / "data.RHO").read_text() == "keep"
    assert report.freed_bytes == 0
