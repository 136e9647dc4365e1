"""The real SIESTA fixtures (read-only) for the analyses tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.fixtures_path import require_siesta_fixtures


@pytest.fixture(scope="session")
def fx() -> Path:
    return require_siesta_fixtures()
