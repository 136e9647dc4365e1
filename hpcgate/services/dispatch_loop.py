"""The worker's dispatcher thread: dispatch when woken by NOTIFY, and every poll interval.

Why a thread of its own rather than an APScheduler job: a wake-up that arrives while a
dispatch run is in progress must cause one more run, never be skipped (APScheduler drops a
run whose previous instance is still going). Here notifications queue on the listening
connection while dispatch runs, and the loop reads them all before it waits again, so none is
lost. The poll interval stays as the safety net (a lost connection, a NOTIFY from an old
API version); a lost listening connection is re-established on the next turn, and the run
that follows a reconnection catches whatever was notified meanwhile.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol, TypeVar

import psycopg

from hpcgate.services.wakeup import LISTENER_APP_NAME, WORK_CHANNEL

log = logging.getLogger(__name__)

#: Longest single wait on the socket: how quickly ``stop()`` is noticed when idle.
_SLICE_S = 1.0
_RECONNECT_S = 2.0


class DispatchLoop:
    def __init__(self, url: str, run: Callable[[], object], interval_s: float) -> None:
        self.url = url
        self.run_once = run
        self.interval_s = interval_s
        self.runs = 0  # dispatch runs so far (tests read it)
        self.connects = 0  # listening connections established so far
        self.backend_pid: int | None = None
        self.idle = threading.Event()  # set while waiting for a wake-up
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # -- lifecycle
    def ensure_started(self) -> None:
        """Start the thread, or restart it if it died; cheap when it runs (the poll tick)."""
        with self._lock:
            if self._stop.is_set() or (self._thread is not None and self._thread.is_alive()):
                return
            self._thread = threading.Thread(target=self._main, name="dispatch-loop", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the calculation in hand (the drain checks ``stopping``) and stop."""
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    # -- the loop
    def _connect(self) -> psycopg.Connection | None:
        try:
            conn = psycopg.connect(
                self.url, autocommit=True, application_name=LISTENER_APP_NAME, connect_timeout=10
            )
            conn.execute(f"LISTEN {WORK_CHANNEL}")
        except psycopg.Error as exc:
            log.warning("cannot listen for new work (polling meanwhile): %s", exc)
            return None
        self.connects += 1
        self.backend_pid = conn.info.backend_pid
        if self.connects > 1:
            log.info("listening for new work again (connection %d)", self.connects)
        return conn

    def _main(self) -> None:
        conn: psycopg.Connection | None = None
        try:
            while not self._stop.is_set():
                if conn is None:
                    conn = self._connect()
                # LISTEN is in place before this run starts: nothing committed after the run's
                # claim can go unheard.
                self.idle.clear()
                self.runs += 1
                try:
                    self.run_once()
                except Exception:
                    log.exception("dispatch run failed")
                if conn is None:
                    self._sleep(min(self.interval_s, _RECONNECT_S))
                    continue
                try:
                    self._wait(conn)
                except psycopg.Error as exc:
                    log.warning("lost the connection that listens for new work: %s", exc)
                    conn.close()
                    conn = None
        finally:
            self.idle.clear()
            if conn is not None:
                conn.close()

    def _wait(self, conn: psycopg.Connection) -> None:
        """Return on the first notification (after draining the rest) or after the interval."""
        deadline = time.monotonic() + self.interval_s
        self.idle.set()
        while not self._stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            woken = False
            for _ in conn.notifies(timeout=min(left, _SLICE_S), stop_after=1):
                woken = True
            if woken:
                for _ in conn.notifies(timeout=0.0):  # coalesce a burst into one run
                    pass
                return

    def _sleep(self, seconds: float) -> None:
        self._stop.wait(seconds)


class Stoppable(Protocol):
    def stop(self, timeout: float = ...) -> None: ...


_loops: list[Stoppable] = []
L = TypeVar("L", bound=Stoppable)


def register(loop: L) -> L:
    """Remember a background thread of this process, for ``stop_all``."""
    _loops.append(loop)
    return loop


def stop_all() -> None:
    """Stop every loop this process started (the worker calls it when its scheduler stops)."""
    while _loops:
        _loops.pop().stop()
