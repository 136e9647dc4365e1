"""Clean stops: SIGTERM (systemd, ``docker stop``) and SIGHUP (a closed terminal) end the
long-running commands (``serve``, ``demo``) the way Ctrl+C does, so their ``finally`` blocks
and ``atexit`` hooks run and the embedded PostgreSQL is stopped, not orphaned.

Why this is needed: uvicorn shuts down gracefully on SIGTERM, then re-raises the signal with
the handler that was installed before it started. With Python's default that kills the
process on the spot, skipping every cleanup. With ``stop_on_signals`` the re-raised signal
becomes a ``Stopped`` exception that unwinds normally, and the command exits 0.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

log = logging.getLogger(__name__)


class Stopped(BaseException):
    """A stop signal arrived; unwinding runs every cleanup on the way out (a BaseException,
    like KeyboardInterrupt, so no `except Exception` on the way swallows it)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _stop(signum: int, _frame: FrameType | None) -> None:
    # Once: a second SIGINT still forces its way out (KeyboardInterrupt); a second SIGTERM
    # waits for the cleanup already under way.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    raise Stopped(signum)


def _hangup(_signum: int, _frame: FrameType | None) -> None:
    # uvicorn listens for SIGTERM, not SIGHUP: hand it the signal it shuts down on.
    os.kill(os.getpid(), signal.SIGTERM)


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """SIGTERM, SIGINT and SIGHUP raise ``Stopped`` (main thread only), which ends the block
    quietly; handlers are restored afterwards."""
    previous = {
        signal.SIGTERM: signal.signal(signal.SIGTERM, _stop),
        signal.SIGINT: signal.signal(signal.SIGINT, _stop),
        signal.SIGHUP: signal.signal(signal.SIGHUP, _hangup),
    }
    try:
        yield
    except Stopped as exc:
        log.info("stopped by %s", exc)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
