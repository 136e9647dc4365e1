"""One dispatch tick in a separate process (so the test can SIGKILL it at a crash point).

Usage: python -m tests.helpers.crash_worker DATABASE_URL DATA_DIR
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session, sessionmaker

from hpcgate.services.connections import ClusterConnections
from hpcgate.services.dispatch import dispatch_tick
from hpcgate.settings import Settings


@contextmanager
def tick_process(
    argv: list[str],
) -> Iterator[tuple[Engine, sessionmaker[Session], ClusterConnections, Settings]]:
    """What one worker tick needs, from ``DATABASE_URL DATA_DIR`` (shared by the crash
    helpers: ``crash_harvest`` too)."""
    url, data_dir = argv[1], argv[2]
    settings = Settings(
        env="test",
        database={"url": url},
        auth={"secret_key": "test-secret-key-0123456789abcdef"},
        paths={"data_dir": data_dir},
    )
    engine = create_engine(url)
    conns = ClusterConnections()
    try:
        yield engine, sessionmaker(engine, expire_on_commit=False), conns, settings
    finally:
        conns.close()


def main() -> None:
    with tick_process(sys.argv) as (engine, factory, conns, settings):
        outcomes = dispatch_tick(engine, factory, conns, settings, claimed_by="crash-worker")
    print({o.calculation_id: (o.submitted, o.recovered, o.failed, o.deferred) for o in outcomes})


if __name__ == "__main__":
    main()
