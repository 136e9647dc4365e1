"""The portal's own unit tests (Vitest: API client, analysis dependencies, SSE, builders)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

WEB = Path(__file__).resolve().parents[2] / "web"


def test_vitest_suite(portal_dist: Path) -> None:
    if shutil.which("npm") is None:
        pytest.fail("npm is needed to run the portal's unit tests")
    result = subprocess.run(
        ["npm", "test", "--", "--run", "--reporter=dot"],
        cwd=WEB,
        env={**os.environ, "CI": "true", "NO_COLOR": "1", "FORCE_COLOR": "0"},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert " passed" in result.stdout
