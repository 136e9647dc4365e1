"""Fixtures for the scheduler_adapters unit tests: captured outputs, golden files, a replay runner.

Golden files are regenerated with ``HPCGATE_UPDATE_GOLDEN=1 pytest tests/unit/scheduler_adapters``
(an environment variable, because ``pytest_addoption`` only works in the root conftest);
review the diff like any code change.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path, PurePosixPath

import pytest

from scheduler_adapters.types import CommandResult

TESTS = Path(__file__).resolve().parents[2]
SLURM_FIXTURES = TESTS / "fixtures" / "scheduler_output" / "slurm-22.05"
GOLDEN_DIR = TESTS / "golden" / "sbatch"


def update_golden() -> bool:
    return os.environ.get("HPCGATE_UPDATE_GOLDEN") == "1"


@pytest.fixture
def slurm_capture() -> Callable[[str], str]:
    """Read a verbatim Slurm 22.05 capture (see the README beside the files)."""

    def read(name: str) -> str:
        path = SLURM_FIXTURES / name
        if not path.is_file():
            pytest.fail(f"capture {path} missing: run capture.py in that directory")
        return path.read_text()

    return read


@pytest.fixture
def check_golden() -> Callable[[str, str], None]:
    """Compare text with ``tests/golden/sbatch/<case>.sh`` (or rewrite it when updating)."""

    def check(case: str, text: str) -> None:
        path = GOLDEN_DIR / f"{case}.sh"
        if update_golden():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            return
        if not path.is_file():
            pytest.fail(f"golden file {path} missing: run with HPCGATE_UPDATE_GOLDEN=1")
        assert text == path.read_text()

    return check


class ReplayRunner:
    """A Runner seam returning recorded results keyed by argv (for error-path unit tests).

    Every behaviour tested through it also has a real-Slurm test in tests/integration.
    """

    def __init__(
        self,
        results: Mapping[tuple[str, ...], CommandResult] | None = None,
        *,
        default: CommandResult | None = None,
        scratch_root: str = "/scratch",
    ) -> None:
        self.results = dict(results or {})
        self.default = default
        self.scratch_root = PurePosixPath(scratch_root)
        self.calls: list[tuple[str, ...]] = []
        self.files: dict[PurePosixPath, str] = {}

    def run(
        self,
        argv: Sequence[str],
        *,
        stdin: str | None = None,
        cwd: PurePosixPath | None = None,
        timeout: float = 60,
    ) -> CommandResult:
        key = tuple(argv)
        self.calls.append(key)
        if key in self.results:
            return self.results[key]
        if self.default is not None:
            return CommandResult(key, self.default.returncode, self.default.stdout,
                                 self.default.stderr)
        raise AssertionError(f"unexpected command {key}")

    def write_text(self, path: PurePosixPath, text: str, *, mode: int = 0o644) -> None:
        self.files[path] = text

    def read_text(self, path: PurePosixPath, *, max_bytes: int = 1 << 20) -> str:
        return self.files[path][:max_bytes]

    def remove_tree(self, path: PurePosixPath) -> None:
        self.files = {p: t for p, t in self.files.items() if path not in (p, *p.parents)}

    def exists(self, path: PurePosixPath) -> bool:
        return path in self.files

    def close(self) -> None:
        return None


@pytest.fixture
def replay_runner() -> type[ReplayRunner]:
    return ReplayRunner
