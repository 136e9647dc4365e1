"""The ``GET /ping`` watchdog: probes, the start-up wait, and the thread that drives them.

Policy (carried out by ``Supervisor.tick``, see ``ml/supervisor.py`` and docs/ml-api.md):

* every ``ping_interval_s`` each running model gets ``GET /ping`` with ``ping_timeout_s``;
* a container that exited, or ``failures_before_restart`` consecutive pings that did not
  answer 200 in time, is a failure: the model is restarted after an exponential backoff
  (``backoff_initial_s * 2^n``, capped at ``backoff_max_s``) by recreating its container;
* after ``max_restarts`` restarts in one failure streak the model is marked ``failed``
  with the reason, its container is stopped (and kept for its logs);
* a model healthy for ``healthy_reset_s`` starts a new streak.

Every state or health change is reported to the main API (``ml/reporting.py``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PingResult:
    ok: bool
    detail: str  # "HTTP 200", "HTTP 503", "timed out after 2 s", "connection refused"...
    elapsed_s: float


def probe(client: httpx.Client, host: str, port: int, timeout: float) -> PingResult:
    """One ``GET /ping``: ok only for a 200 within ``timeout``."""
    t0 = time.monotonic()
    try:
        response = client.get(f"http://{host}:{port}/ping", timeout=timeout)
    except httpx.TimeoutException:
        return PingResult(False, f"no answer within {timeout:g} s", time.monotonic() - t0)
    except httpx.HTTPError as exc:
        text = str(exc) or type(exc).__name__
        return PingResult(False, f"no answer ({text})", time.monotonic() - t0)
    return PingResult(
        response.status_code == 200, f"HTTP {response.status_code}", time.monotonic() - t0
    )


def wait_for_ping(
    client: httpx.Client,
    host: str,
    port: int | None,
    *,
    deadline_s: float,
    ping_timeout: float,
    alive: Callable[[], str | None],
    interval: float = 0.1,
) -> PingResult:
    """Poll ``GET /ping`` until it answers 200, ``deadline_s`` passes, or ``alive()``
    returns a reason the container is gone (then that reason is the detail)."""
    t0 = time.monotonic()
    last = PingResult(False, "not tried", 0.0)
    while True:
        if port is not None:
            remaining = deadline_s - (time.monotonic() - t0)
            last = probe(client, host, port, max(0.05, min(ping_timeout, remaining)))
            if last.ok:
                return PingResult(True, last.detail, time.monotonic() - t0)
        gone = alive()
        if gone is not None:
            return PingResult(False, gone, time.monotonic() - t0)
        if time.monotonic() - t0 >= deadline_s:
            return PingResult(False, last.detail, time.monotonic() - t0)
        time.sleep(interval)


class Watchdog:
    """A daemon thread calling ``tick`` every ``interval`` s and ``sync`` every
    ``sync_interval`` s, until ``stop``. Exceptions are logged, never fatal."""

    def __init__(
        self,
        tick: Callable[[], None],
        sync: Callable[[], None],
        *,
        interval: float,
        sync_interval: float,
    ) -> None:
        self._tick, self._sync = tick, sync
        self.interval, self.sync_interval = interval, sync_interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.ticks = 0

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="ml-watchdog", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        next_sync = time.monotonic() + self.sync_interval
        while not self._stop.wait(self.interval):
            try:
                self._tick()
                self.ticks += 1
                if time.monotonic() >= next_sync:
                    next_sync = time.monotonic() + self.sync_interval
                    self._sync()
            except Exception:
                log.exception("watchdog tick failed")

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
