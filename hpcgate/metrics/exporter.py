"""A worker's or an agent's metrics on their own HTTP port (the API serves ``/metrics``).

Bound to loopback unless configured otherwise: the metrics say how busy a cluster is, which
is not for everyone on the network.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from prometheus_client import start_http_server

from hpcgate.metrics.registry import TICK_FAILURES, TICK_SECONDS

log = logging.getLogger(__name__)
T = TypeVar("T")


def serve_metrics(host: str, port: int) -> None:
    """Start the exporter thread (daemon); ``port`` 0 means no exporter."""
    if port:
        start_http_server(port, addr=host)
        log.info("metrics on http://%s:%d/metrics", host, port)


@contextmanager
def timed_tick(process: str, tick: str) -> Iterator[None]:
    """Record a tick's duration, and count it as failed if it raises (the error propagates)."""
    start = time.perf_counter()
    try:
        yield
    except BaseException:
        TICK_FAILURES.labels(process, tick).inc()
        raise
    finally:
        TICK_SECONDS.labels(process, tick).observe(time.perf_counter() - start)


def timed(process: str, tick: str, fn: Callable[[], T]) -> Callable[[], T]:
    """``fn`` wrapped in ``timed_tick``."""

    def run() -> T:
        with timed_tick(process, tick):
            return fn()

    run.__name__ = getattr(fn, "__name__", tick)
    return run
