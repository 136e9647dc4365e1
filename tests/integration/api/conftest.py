"""Fixtures for API tests that need a database of their own (probes that mutate freely)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine

from hpcgate.settings import Settings
from tests.conftest import create_scratch_database, drop_database


@pytest.fixture(scope="module")
def isolated_database(postgres_available: str) -> Iterator[str]:
    """A migrated database for this test module only, dropped afterwards."""
    from hpcgate.db import migrate

    url = create_scratch_database("hpcgate_api")
    try:
        migrate.upgrade(url)
        yield url
    finally:
        drop_database(url)


@pytest.fixture(scope="module")
def isolated_engine(isolated_database: str) -> Iterator[Engine]:
    engine = create_engine(isolated_database, pool_size=5, max_overflow=10)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def isolated_settings(isolated_database: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    data_dir: Path = tmp_path_factory.mktemp("api-data")
    return Settings(
        env="test",
        database={"url": isolated_database},
        auth={
            "secret_key": "test-secret-key-0123456789abcdef",
            "cookie_secure": False,
            "login_rate_per_minute": 1000,
        },
        paths={"data_dir": str(data_dir)},
    )
