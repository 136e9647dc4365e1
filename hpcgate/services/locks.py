"""PostgreSQL advisory locks: one dispatcher per calculation, one harvester per cluster.

Session-level locks on a dedicated connection, taken with ``pg_try_advisory_lock`` so a
second worker (or API process) simply skips what another one is doing — no duplicate
submissions, no duplicated ticks, and a crashed holder releases its lock with its connection.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, text

NS_CALCULATION = 7_001
NS_CLUSTER_HARVEST = 7_002
NS_CLUSTER_CLEANUP = 7_003
NS_TICK = 7_004


@contextmanager
def try_advisory_lock(engine: Engine, namespace: int, key: int) -> Iterator[bool]:
    conn = engine.connect()
    try:
        got = bool(
            conn.execute(
                text("SELECT pg_try_advisory_lock(:ns, :key)"), {"ns": namespace, "key": key}
            ).scalar_one()
        )
        conn.commit()
        try:
            yield got
        finally:
            if got:
                conn.execute(
                    text("SELECT pg_advisory_unlock(:ns, :key)"), {"ns": namespace, "key": key}
                )
                conn.commit()
    finally:
        conn.close()
