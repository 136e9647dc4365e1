"""Alembic on the real PostgreSQL: upgrade an empty database, then models == migrations."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, inspect

from hpcgate.db import migrate
from hpcgate.db.base import Base
from tests.conftest import create_scratch_database, drop_database

pytestmark = pytest.mark.integration


def test_upgrade_check_downgrade_upgrade(postgres_available: str) -> None:
    url = create_scratch_database("hpcgate_migr")
    try:
        migrate.upgrade(url)
        migrate.check(url)  # raises if autogenerate would produce any operation
        engine = create_engine(url)
        try:
            tables = set(inspect(engine).get_table_names())
            assert set(Base.metadata.tables) <= tables
            assert migrate.is_current(engine) is True
        finally:
            engine.dispose()
        migrate.upgrade(url, "head")  # idempotent
        from alembic import command

        command.downgrade(migrate.alembic_config(url), "base")
        engine = create_engine(url)
        try:
            assert set(inspect(engine).get_table_names()) == {"alembic_version"}
            assert migrate.is_current(engine) is False
        finally:
            engine.dispose()
        migrate.upgrade(url)
        migrate.check(url)
    finally:
        drop_database(url)
