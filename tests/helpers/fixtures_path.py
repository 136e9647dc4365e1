"""Where the real SIESTA fixtures live (read-only, shared between worktrees).

Tests read ``HPCGATE_SIESTA_FIXTURES`` (default ``<repo>/../shared/fixtures/siesta``)
and skip with the path in the reason when the directory is absent, so a checkout
without the shared data still runs the rest of the suite.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
ENV_VAR = "HPCGATE_SIESTA_FIXTURES"


def siesta_fixtures_dir() -> Path:
    """The fixtures directory (may not exist; see :func:`require_siesta_fixtures`)."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser().resolve()
    return (REPO_ROOT.parent / "shared" / "fixtures" / "siesta").resolve()


def require_siesta_fixtures() -> Path:
    """The fixtures directory, or ``pytest.skip`` naming the path that is missing."""
    path = siesta_fixtures_dir()
    if not path.is_dir():
        pytest.skip(f"SIESTA fixtures not found at {path} (set {ENV_VAR} to their directory)")
    return path
