"""One harvest tick in a separate process (so the test can SIGKILL it at a crash point).

Usage: python -m tests.helpers.crash_harvest DATABASE_URL DATA_DIR
"""

from __future__ import annotations

import sys

from hpcgate.services.cluster_ticks import harvest_tick
from tests.helpers.crash_worker import tick_process


def main() -> None:
    with tick_process(sys.argv) as (engine, factory, conns, settings):
        harvest_tick(engine, factory, conns, settings)


if __name__ == "__main__":
    main()
