"""The restart policy: what a watchdog round does with each model (see ``ml/health.py``).

A running model is pinged; a container that exited, or ``failures_before_restart`` failed
pings in a row, is a failure: restart after a backoff, or give up past ``restart_limit``
restarts in one streak. A model healthy for ``healthy_reset_s`` starts a new streak. The
container engine being down (a daemon restart) or the main API being unreachable is not
the model's fault: the restart waits without spending the model's budget.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

from ml.engine import EngineError
from ml.errors import BadGateway
from ml.health import PingResult, probe
from ml.metrics import ML_CONTAINER_RESTARTS
from ml.runtime import FAILED_SUFFIX, ModelRuntime, exit_reason

if TYPE_CHECKING:
    from ml.manager import ModelManager

log = logging.getLogger(__name__)


class Supervisor:
    def __init__(self, manager: ModelManager) -> None:
        self.m = manager

    def tick(self) -> None:
        """One watchdog round: ping running models, start due restarts, flush reports."""
        now = time.monotonic()
        for rt in list(self.m.models.values()):
            if not rt.lock.acquire(blocking=False):
                continue  # a run/stop/restart holds it
            try:
                if rt.state == "restarting" and rt.next_restart_at is not None:
                    if now >= rt.next_restart_at:
                        rt.next_restart_at = None  # claimed: no second thread next tick
                        self.m.spawn(self.restart, rt)
                elif rt.state == "running":
                    self.check(rt)
            except EngineError as exc:
                log.warning("watchdog: model %s: %s", rt.model_id, exc)
            finally:
                rt.lock.release()
        self.m.reporter.flush()

    def check(self, rt: ModelRuntime) -> None:
        config = self.m.config
        info = self.m.engine.inspect(rt.container_id) if rt.container_id else None
        if info is None or not info.running:
            self.failure(rt, exit_reason(info))
            return
        if info.host_port is not None:
            rt.host_port = info.host_port
        if rt.host_port is None:
            self.failure(rt, "container publishes no port for the model contract")
            return
        result = probe(
            self.m.containers.http, config.publish_host, rt.host_port, config.ping_timeout
        )
        rt.last_ping = result.detail
        now = time.monotonic()
        if result.ok:
            rt.failures = 0
            if rt.healthy_since is None:
                rt.healthy_since = now
            changes: dict[str, Any] = {"health": "healthy"}
            if rt.streak and now - rt.healthy_since >= config.healthy_reset_s:
                changes["streak"] = 0
            self.m.change(rt, **changes)
            return
        rt.failures += 1
        rt.healthy_since = None
        exited = self._exit_behind(rt, result)
        if exited is not None:
            self.failure(rt, exited)
            return
        reason = f"GET /ping failed {rt.failures} time(s) in a row: {result.detail}"
        if rt.failures >= config.failures_before_restart:
            self.failure(rt, reason)
        else:
            self.m.change(rt, health="unhealthy", last_error=reason)

    def _exit_behind(self, rt: ModelRuntime, result: PingResult) -> str | None:
        """The container's exit, when it is what made the ping fail.

        A crashing model closes its socket a moment before the engine marks the container
        exited, so a ping in between sees a reset or a refusal. The exit (with its code) is
        the cause: ask the engine again for up to ``exit_grace_s`` before blaming the ping.
        A ping that timed out (a hung model) or got an error status is its own cause, and
        costs no wait.
        """
        if not result.detail.startswith("no answer ("):  # a timeout or an HTTP error status
            return None
        deadline = time.monotonic() + self.m.config.exit_grace_s
        while rt.container_id:
            info = self.m.engine.inspect(rt.container_id)
            if info is None or not info.running:
                return exit_reason(info)
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.1)
        return None

    def failure(self, rt: ModelRuntime, reason: str) -> None:
        """A failure of a running model: schedule a restart, or give up past the limit."""
        rt.healthy_since = None
        limit = self.m.config.restart_limit
        if rt.streak >= limit:
            self.give_up(rt, f"gave up after {rt.streak} restart(s): {reason}")
            return
        delay = self.m.config.backoff(rt.streak)
        rt.next_restart_at = time.monotonic() + delay
        self.m.change(rt, state="restarting", health="unhealthy", last_error=reason)
        log.warning(
            "model %s failed (%s); restart %d/%d in %.1f s",
            rt.model_id,
            reason,
            rt.streak + 1,
            limit,
            delay,
        )

    def give_up(self, rt: ModelRuntime, reason: str) -> None:
        """Stop the model for good; its container stays (renamed) for its logs."""
        cid = rt.container_id
        if cid:
            with contextlib.suppress(EngineError):
                self.m.engine.stop(cid, self.m.config.stop_timeout_s)
            with contextlib.suppress(Exception):
                self._rename_failed(cid)
        self.m.change(
            rt, state="failed", health="unhealthy", last_error=reason, next_restart_at=None
        )

    def _rename_failed(self, cid: str) -> None:
        info = self.m.engine.inspect(cid)
        if info is not None and not info.name.endswith(FAILED_SUFFIX):
            self.m.engine.rename(cid, info.name + FAILED_SUFFIX)

    def _wait(self, rt: ModelRuntime, why: str) -> None:
        """Try the restart again after the backoff, without counting it against the model."""
        rt.next_restart_at = time.monotonic() + self.m.config.backoff(rt.streak)
        self.m.change(rt, last_error=why)

    def restart(self, rt: ModelRuntime) -> None:
        with rt.lock:
            if rt.state != "restarting":
                return
            try:
                definition = self.m.definition(rt.model_id)  # the cached copy if unreachable
            except BadGateway as exc:
                # the main API is down and we never read this model
                self._wait(rt, f"restart waits for the main API: {exc.message}")
                return
            if definition is None:
                self.give_up(rt, "the model is no longer registered")
                return
            if not self.m.containers.engine_up():
                # the engine itself is down (daemon restart): not the model's fault
                self._wait(rt, "restart waits for the container engine")
                return
            self._replace_container(rt, definition)

    def _replace_container(self, rt: ModelRuntime, definition: dict[str, Any]) -> None:
        old = rt.container_id
        if old:
            rt.previous_logs = self.m.containers.logs_or_empty(old)
            with contextlib.suppress(EngineError):
                self.m.engine.remove(old)
        rt.container_id = None
        rt.streak += 1
        rt.restarts += 1
        try:
            result = self.m.containers.start(rt, definition, self.m.change)
        except EngineError as exc:
            if not self.m.containers.engine_up():  # the engine went away mid-start
                rt.streak -= 1
                rt.restarts -= 1
                self._wait(rt, f"restart waits for the container engine: {exc}")
                return
            ML_CONTAINER_RESTARTS.labels(str(rt.model_id)).inc()
            self.failure(rt, str(exc))
            return
        ML_CONTAINER_RESTARTS.labels(str(rt.model_id)).inc()  # not when the engine was away
        if result.ok:
            rt.healthy_since = time.monotonic()
            self.m.change(rt, state="running", health="healthy", last_ping=result.detail)
        else:
            self.failure(rt, result.detail)
