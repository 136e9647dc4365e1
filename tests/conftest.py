"""Shared fixtures: a real PostgreSQL test database, isolated per test by a rolled-back transaction.

The database comes from ``HPCGATE_TEST_DATABASE_URL`` (default: the machine's PostgreSQL
at 127.0.0.1:5432 with trust auth). A fresh database is created per test session and
migrated with Alembic, so every test also exercises the migrations.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import hypothesis
import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.orm import Session

from hpcgate.settings import Settings
from tests.helpers.ci import in_ci, missing

DEFAULT_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"

# Issue 15: a worker started as root runs local jobs as the job account (local.job_user).
# Most tests keep their scratch in pytest's tmp dirs (0700 to root) and run root's own
# interpreter, which that account cannot reach; they opt out here, and so do the workers
# they spawn (they inherit this environment). tests/security/test_job_identity.py and the
# ``*-runas`` contract pairs set the account explicitly.
os.environ.setdefault("HPCGATE_LOCAL__JOB_USER", "")

# Under CI the property tests draw the same examples every run (seeded from each test's
# name): a run is reproducible and a fresh checkout never trips on an example no earlier
# run drew. Elsewhere they stay random, which is where new counterexamples are found (and
# then pinned with @example).
hypothesis.settings.register_profile("ci", derandomize=True, print_blob=True)
if in_ci():
    hypothesis.settings.load_profile("ci")


TESTS = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """``-m unit`` selects the service-free tests, ``-m integration`` the ones on real services
    (every test outside tests/unit needs at least PostgreSQL), whatever each file declares."""
    for item in items:
        try:
            area = item.path.resolve().relative_to(TESTS).parts[0]
        except ValueError:
            continue
        if area == "unit":
            item.add_marker(pytest.mark.unit)
        elif item.get_closest_marker("integration") is None:
            item.add_marker(pytest.mark.integration)


def _admin_url() -> str:
    return os.environ.get("HPCGATE_TEST_DATABASE_URL", DEFAULT_ADMIN_URL)


def create_scratch_database(prefix: str = "hpcgate_test") -> str:
    """Create an empty database on the test server and return its URL."""
    admin = make_url(_admin_url())
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        engine.dispose()
    return admin.set(database=name).render_as_string(hide_password=False)


def drop_database(url: str) -> None:
    admin = make_url(_admin_url())
    name = make_url(url).database
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def postgres_available() -> str:
    engine = create_engine(_admin_url())
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        missing(
            f"PostgreSQL not reachable at {make_url(_admin_url()).render_as_string()}: {exc}"
        )
    finally:
        engine.dispose()
    return _admin_url()


@pytest.fixture(scope="session")
def database_url(postgres_available: str) -> Iterator[str]:
    from hpcgate.db import migrate

    url = create_scratch_database()
    migrate.upgrade(url)
    yield url
    drop_database(url)


@pytest.fixture(scope="session")
def db_engine(database_url: str) -> Iterator[Engine]:
    engine = create_engine(database_url, pool_size=5, max_overflow=10)
    yield engine
    engine.dispose()


@pytest.fixture
def db_connection(db_engine: Engine) -> Iterator[Connection]:
    """A connection inside an outer transaction that is always rolled back."""
    conn = db_engine.connect()
    outer = conn.begin()
    try:
        yield conn
    finally:
        outer.rollback()
        conn.close()


@pytest.fixture
def db_session(db_connection: Connection) -> Iterator[Session]:
    """The app's own ``commit()`` calls hit a savepoint; the test's work is rolled back."""
    session = Session(
        bind=db_connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    )
    try:
        yield session
    finally:
        session.close()


@pytest.fixture
def settings(tmp_path: object, database_url: str) -> Settings:
    return Settings(
        env="test",
        database={"url": database_url},
        auth={"secret_key": "test-secret-key-0123456789abcdef", "cookie_secure": False},
        paths={"data_dir": str(tmp_path)},
    )
