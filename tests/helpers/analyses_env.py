"""Helpers for the analyses tests: fixture cases, extraction, independent text reads."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from analyses.base import ExtractContext
from analyses.pipeline import extract_run
from tests.helpers.ci import missing
from tests.helpers.fixtures_path import require_siesta_fixtures

__all__ = ["case", "extract", "grep_floats", "require_siesta_fixtures"]


def case(fx: Path, name: str) -> Path:
    """A fixture case directory, or skip naming the path."""
    path = fx / name
    if not path.is_dir():
        missing(f"fixture case {name} not found at {path}")
    return path


def extract(run_dir: Path, *names: str, variant: dict[str, Any] | None = None) -> dict[str, Any]:
    """Extract ``names`` (with their requirements); any extraction error fails the test."""
    doc = extract_run(
        run_dir,
        ExtractContext(code="siesta", variant=variant or {}),
        names,
        auto_complete=True,
    )
    assert doc["errors"] == {}
    return dict(doc["analyses"])


def grep_floats(path: Path, pattern: str) -> list[list[float]]:
    """Every match of ``pattern`` in the file, its groups as floats (lossy decoding)."""
    rx = re.compile(pattern, re.MULTILINE)
    text = path.read_bytes().decode("utf-8", errors="replace")
    return [[float(g) for g in m.groups()] for m in rx.finditer(text)]
