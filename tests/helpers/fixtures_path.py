"""Where the real SIESTA fixtures live (read-only, shared between worktrees).

Tests read ``HPCGATE_SIESTA_FIXTURES`` (default ``<repo>/../shared/fixtures/siesta``).
When the directory is absent they skip with the path in the reason, so a checkout
without the shared data still runs the rest of the suite; under ``CI=true`` they fail
(``tests/helpers/ci.py``): CI has the data, and a skip there would hide its loss.
"""

from __future__ import annotations

import os
from pathlib import Path

from tests.helpers.ci import missing

REPO_ROOT = Path(__file__).resolve().parents[2]
ENV_VAR = "HPCGATE_SIESTA_FIXTURES"


def siesta_fixtures_dir() -> Path:
    """The fixtures directory (may not exist; see :func:`require_siesta_fixtures`)."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser().resolve()
    return (REPO_ROOT.parent / "shared" / "fixtures" / "siesta").resolve()


def require_siesta_fixtures() -> Path:
    """The fixtures directory, or skip (fail under CI) naming the path that is missing."""
    path = siesta_fixtures_dir()
    if not path.is_dir():
        missing(f"SIESTA fixtures not found at {path} (set {ENV_VAR} to their directory)")
    return path


def require_siesta_fixture(relative: str) -> Path:
    """One fixture file or case directory under the fixtures, or skip/fail naming it."""
    path = require_siesta_fixtures() / relative
    if not path.exists():
        missing(f"SIESTA fixture {relative} not found at {path} (set {ENV_VAR})")
    return path
