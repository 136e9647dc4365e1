"""One harvest tick in a separate process (so the test can SIGKILL it at a crash point).

Usage: python -m tests.helpers.crash_harvest DATABASE_URL DATA_DIR
"""

from __future__ import annotations

import sys

from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

from hpcgate.services.cluster_ticks import harvest_tick
from hpcgate.services.connections import ClusterConnections
from hpcgate.settings import Settings


def main() -> None:
    url, data_dir = sys.argv[1], sys.argv[2]
    settings = Settings(
        env="test",
        database={"url": url},
        auth={"secret_key": "test-secret-key-0123456789abcdef"},
        paths={"data_dir": data_dir},
    )
    engine = create_engine(url)
    factory = sessionmaker(engine, expire_on_commit=False)
    conns = ClusterConnections()
    harvest_tick(engine, factory, conns, settings)
    conns.close()


if __name__ == "__main__":
    main()
