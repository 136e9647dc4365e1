"""A pooled connection whose server side died is replaced at checkout, without a ping per use.

Real PostgreSQL: the backend of an idle pooled connection is terminated with
``pg_terminate_backend`` (what a restart or an admin does to it); the next use of the engine
must succeed on a fresh connection. A healthy checkout must not cost a round trip.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from hpcgate.db.session import make_engine
from hpcgate.settings import Settings


def _backend_pid(engine: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _terminate(database_url: str, pid: int) -> None:
    admin = create_engine(database_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            assert conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar()
            for _ in range(100):  # terminate signals; wait until the backend is gone
                gone = conn.execute(
                    text("SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = :p"), {"p": pid}
                ).scalar()
                if gone:
                    return
                time.sleep(0.05)
    finally:
        admin.dispose()
    raise AssertionError(f"backend {pid} did not exit")


@pytest.fixture
def engine(database_url: str) -> Any:
    # One pooled connection: every checkout reuses it while it lives.
    eng = make_engine(
        Settings(
            env="test",
            database={"url": database_url, "pool_size": 1},
            auth={"secret_key": "t" * 32},
        )
    )
    pings: list[object] = []
    real_ping = eng.dialect.do_ping

    def counting_ping(dbapi_connection: object) -> bool:
        pings.append(dbapi_connection)
        return real_ping(dbapi_connection)

    eng.dialect.do_ping = counting_ping  # type: ignore[method-assign]
    yield eng, pings
    eng.dispose()


def test_a_healthy_checkout_costs_no_round_trip(engine: Any) -> None:
    engine, pings = engine
    first = _backend_pid(engine)
    assert [_backend_pid(engine) for _ in range(5)] == [first] * 5
    assert pings == []


def test_a_terminated_backend_is_replaced_at_checkout(engine: Any, database_url: str) -> None:
    engine, pings = engine
    dead = _backend_pid(engine)
    _terminate(database_url, dead)
    replacement = _backend_pid(engine)  # would raise OperationalError without the check
    assert replacement != dead
    assert len(pings) == 1
    assert _backend_pid(engine) == replacement
    assert len(pings) == 1
