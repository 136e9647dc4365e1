"""Scratch cleanup by policy — never anything outside the scratch root.

Policy (per cluster, JSON):

* ``delete_patterns``: globs of large raw files deleted once a step is harvested
  (e.g. ``*.TSGF*``, ``*.RHO``, ``tmp/*.wfc*``);
* ``keep_patterns``: restart-critical files never deleted by pattern (``*.DM``, ``*.TSDE``…);
* ``keep_days``: after that many days the whole step directory goes;
* ``dry_run``: report what would be freed, delete nothing.

Listing uses ``find -P`` (never follows symlinks) through the runner; every deletion goes
through ``Runner.remove_tree``, which refuses paths outside the scratch root. A symlink is
removed as a link, never followed.
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from scheduler_adapters.errors import SchedulerError, UnsafePath
from scheduler_adapters.runners.base import Runner, check_inside

log = logging.getLogger(__name__)

DEFAULT_KEEP = (
    "*.DM",
    "*.TSDE",
    "*.TSHS",
    "*.fdf",
    "*.psf",
    "*.psml",
    "*.out",
    "*.in",
    "*.sh",
    "*.json",
    "*.ec",
    "*.start",
)


@dataclass(frozen=True)
class CleanupPolicy:
    delete_patterns: tuple[str, ...] = ()
    keep_patterns: tuple[str, ...] = DEFAULT_KEEP
    keep_days: int | None = None
    dry_run: bool = False

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> CleanupPolicy:
        data = data or {}
        keep_days = data.get("keep_days")
        return cls(
            delete_patterns=tuple(str(p) for p in data.get("delete_patterns", ())),
            keep_patterns=tuple(str(p) for p in data.get("keep_patterns", DEFAULT_KEEP)),
            keep_days=int(keep_days) if keep_days is not None else None,
            dry_run=bool(data.get("dry_run", False)),
        )


@dataclass
class CleanupReport:
    directory: str
    freed_bytes: int = 0
    deleted: list[str] = field(default_factory=list)
    kept: int = 0
    dry_run: bool = False
    refused: list[str] = field(default_factory=list)


def _list_files(runner: Runner, directory: PurePosixPath) -> list[tuple[int, str, str]]:
    """(size, type, path) for every entry below ``directory``; symlinks reported as links."""
    result = runner.run(
        [
            "find",
            "-P",
            str(directory),
            "-mindepth",
            "1",
            "(",
            "-type",
            "f",
            "-o",
            "-type",
            "l",
            ")",
            "-printf",
            "%s\\t%y\\t%p\\n",
        ],
        timeout=120,
    )
    if result.returncode != 0:
        raise SchedulerError(
            f"cannot list {directory}: {result.stderr.strip()[:200]}", transient=True
        )
    out = []
    for line in result.stdout.splitlines():
        parts = line.split("\t", 2)
        if len(parts) == 3 and parts[0].isascii() and parts[0].isdigit():
            out.append((int(parts[0]), parts[1], parts[2]))
    return out


def clean_directory(
    runner: Runner, directory: str, policy: CleanupPolicy, *, expired: bool = False
) -> CleanupReport:
    """Delete files matching the policy below ``directory`` (or all of it when ``expired``)."""
    root = PurePosixPath(directory)
    report = CleanupReport(directory=directory, dry_run=policy.dry_run)
    try:
        check_inside(runner.scratch_root, root)
    except UnsafePath as exc:
        report.refused.append(str(exc))
        log.error("cleanup refused: %s", exc)
        return report
    if not runner.exists(root):
        return report
    entries = _list_files(runner, root)
    if expired:
        report.freed_bytes = sum(size for size, kind, _ in entries if kind == "f")
        report.deleted = [path for _, _, path in entries]
        if not policy.dry_run:
            runner.remove_tree(root)
        return report
    for size, kind, path in entries:
        name = PurePosixPath(path).name
        rel = str(PurePosixPath(path).relative_to(root))
        if _matches(name, rel, policy.keep_patterns) or not _matches(
            name, rel, policy.delete_patterns
        ):
            report.kept += 1
            continue
        try:
            if not policy.dry_run:
                runner.remove_tree(PurePosixPath(path))
        except UnsafePath as exc:
            report.refused.append(str(exc))
            continue
        report.deleted.append(path)
        if kind == "f":
            report.freed_bytes += size
    return report


def _matches(name: str, rel: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatch(name, p) or fnmatch.fnmatch(rel, p) for p in patterns)
