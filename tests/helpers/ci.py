"""CI honesty: a missing tool, service or data set skips locally and FAILS under ``CI=true``.

Why: a suite that silently skips what it cannot find proves nothing in CI, where
``scripts/test-setup.sh`` installed everything. Outside CI a developer without, say,
Slurm still gets a useful run, and the skip reason names what to install.

Every test that depends on something outside the repo calls one of these instead of
``pytest.skip`` / ``skipif`` / ``importorskip``.
"""

from __future__ import annotations

import importlib
import os
import shutil
from pathlib import Path
from types import ModuleType
from typing import NoReturn

import pytest

TRUE_VALUES = frozenset({"true", "1", "yes"})


def in_ci() -> bool:
    """True when ``CI`` says so (GitHub/GitLab set ``CI=true``)."""
    return os.environ.get("CI", "").strip().lower() in TRUE_VALUES


def missing(reason: str) -> NoReturn:
    """Skip with ``reason`` outside CI; fail with it under ``CI=true``.

    Usable at module level too (a module-level skip covers the whole module).
    """
    if in_ci():
        pytest.fail(f"CI=true and a requirement is missing: {reason}", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def require(condition: object, reason: str) -> None:
    """``missing(reason)`` unless ``condition`` is truthy."""
    if not condition:
        missing(reason)


def require_tool(name: str, *, install_hint: str) -> str:
    """The absolute path of program ``name`` on PATH, or :func:`missing` naming the installer."""
    path = shutil.which(name)
    if path is None:
        missing(f"{name} not found on PATH (install it with {install_hint})")
    return path


def require_path(path: Path, *, what: str, install_hint: str) -> Path:
    """``path`` if it exists, or :func:`missing` naming what it is and how to get it."""
    if not path.exists():
        missing(f"{what} not found at {path} ({install_hint})")
    return path


def require_module(name: str, *, install_hint: str) -> ModuleType:
    """Import ``name`` (a Python package the dev extras install), or :func:`missing`."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        missing(f"Python module {name} not importable ({exc}); {install_hint}")
