"""ParsePool.warm: the API starts its input-preparation workers at startup (issue 16), so
the forkserver's start never lands on the first calculations created after a restart."""

from __future__ import annotations

import operator

from hpcgate.services.parse_pool import ParsePool


def test_warm_starts_every_worker_and_they_serve_calls() -> None:
    pool = ParsePool(workers=2, timeout_s=30)
    try:
        pool.warm().join(60)
        assert pool._idle.qsize() == 2  # both started, none running a call
        assert pool.busy() == 0
        assert pool.run(operator.add, 2, 3) == 5
        pool.warm().join(60)  # already warm: nothing more is started
        assert pool._started == 2
    finally:
        pool.close()
