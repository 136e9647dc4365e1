"""The ML-API's model supervisor: lifecycle, recovery from labels, restarts, reports.

Where truth lives:

* **registrations** (image, version, resources, environment) - the main API's
  ``ml_models`` rows; read with the ML-API key, fetched fresh at every ``run``;
* **which container serves which model** - Docker labels (``ml/engine.py``); a restarted
  ML-API calls ``recover`` and rebuilds everything below from them;
* **state and health** - computed here, reported to the main API after every change
  (``StateReporter`` retries while the main API is down).

States: ``registered`` (no container), ``starting``, ``running`` (health ``healthy`` /
``unhealthy`` / ``unknown``), ``restarting`` (waiting out the backoff), ``stopped``,
``failed`` (with ``last_error``). A user's ``stop`` removes the container (its last log
lines are kept in memory); a given-up model keeps its stopped container, renamed with a
``-failed`` suffix, so that both survive an ML-API restart without any other store.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from hpcgate.errors import HpcgateError, NotFound
from ml.engine import (
    LABEL_MODEL_ID,
    ContainerEngine,
    ContainerInfo,
    ContainerSpec,
    EngineError,
)
from ml.health import PingResult, probe, wait_for_ping
from ml.reporting import MainApiClient, MainApiError, StateReporter
from ml.settings import MlApiConfig

log = logging.getLogger(__name__)

ACTIVE_STATES = frozenset({"starting", "running", "restarting"})
FAILED_SUFFIX = "-failed"
LOG_TAIL_KEPT = 200


class ServiceUnavailable(HpcgateError):
    status_code = 503
    code = "unavailable"


class GatewayTimeout(HpcgateError):
    status_code = 504
    code = "timeout"


class BadGateway(HpcgateError):
    status_code = 502
    code = "bad_gateway"


class ModelFailed(HpcgateError):
    """``run`` could not bring the model up; the body carries the model's state."""

    status_code = 503
    code = "model_failed"


@dataclass
class ModelRuntime:
    model_id: int
    name: str = ""
    version: str = ""
    image: str = ""
    state: str = "registered"
    health: str = "unknown"
    container_id: str | None = None
    container_name: str | None = None
    host_port: int | None = None
    restarts: int = 0  # watchdog restarts since the user's last run
    streak: int = 0  # restarts in the current failure streak (the limit applies here)
    failures: int = 0  # consecutive failed pings
    last_error: str | None = None
    last_ping: str | None = None
    next_restart_at: float | None = None  # monotonic
    healthy_since: float | None = None  # monotonic
    started_at: float | None = None  # wall clock
    previous_logs: str = ""
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    def report(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "health": self.health,
            "restarts": self.restarts,
            "last_error": self.last_error,
        }

    def public(self) -> dict[str, Any]:
        return {
            "id": self.model_id,
            "name": self.name,
            "version": self.version,
            "image": self.image,
            "state": self.state,
            "health": self.health,
            "restarts": self.restarts,
            "restart_streak": self.streak,
            "last_error": self.last_error,
            "last_ping": self.last_ping,
            "container_id": self.container_id[:12] if self.container_id else None,
            "started_at": self.started_at,
        }


def _exit_reason(info: ContainerInfo | None) -> str:
    if info is None:
        return "container disappeared"
    if info.oom_killed:
        return f"container was killed for exceeding its memory limit (exit code {info.exit_code})"
    text = f"container exited with code {info.exit_code}"
    return f"{text}: {info.error}" if info.error else text


class ModelManager:
    def __init__(
        self,
        engine: ContainerEngine,
        config: MlApiConfig,
        main_api: MainApiClient | None,
        reporter: StateReporter | None = None,
    ) -> None:
        self.engine = engine
        self.config = config
        self.main_api = main_api
        self.reporter = reporter or StateReporter(main_api)
        self.models: dict[int, ModelRuntime] = {}
        self.registry: dict[int, dict[str, Any]] = {}
        self.registry_error: str | None = None
        self._lock = threading.Lock()
        self._http = httpx.Client()  # pings and start-up waits
        # how a due restart runs: its own thread, so one slow start blocks no other ping
        self.spawn: Callable[[Callable[[ModelRuntime], None], ModelRuntime], None] = _in_thread

    # ------------------------------------------------------------------ bookkeeping
    def _runtime(self, model_id: int) -> ModelRuntime:
        with self._lock:
            rt = self.models.get(model_id)
            if rt is None:
                rt = self.models[model_id] = ModelRuntime(model_id)
            return rt

    def _describe(self, rt: ModelRuntime, definition: dict[str, Any] | None) -> None:
        if definition:
            rt.name = str(definition.get("name", rt.name))
            rt.version = str(definition.get("version", rt.version))
            rt.image = str(definition.get("image", rt.image))

    def _report(self, rt: ModelRuntime) -> None:
        report = rt.report()
        cached = self.registry.get(rt.model_id)
        if cached is not None:  # keep the cached registration in step with what we report
            cached.update(report)
        self.reporter.submit(rt.model_id, report)

    def _set(self, rt: ModelRuntime, **changes: Any) -> None:
        """Apply changes; report when state, health, restarts or the error changed."""
        before = rt.report()
        for key, value in changes.items():
            setattr(rt, key, value)
        if rt.report() != before:
            log.info("model %s: %s", rt.model_id, rt.report())
            self._report(rt)

    def refresh_registry(self) -> None:
        if self.main_api is None:
            return
        try:
            models = self.main_api.list_models()
        except MainApiError as exc:
            self.registry_error = str(exc)
            return
        self.registry = {int(m["id"]): m for m in models if "id" in m}
        self.registry_error = None
        for mid, rt in list(self.models.items()):
            self._describe(rt, self.registry.get(mid))

    def definition(self, model_id: int) -> dict[str, Any] | None:
        """The registration, fresh from the main API (cached copy if it is unreachable)."""
        if self.main_api is None:
            return self.registry.get(model_id)
        try:
            found = self.main_api.get_model(model_id)
        except MainApiError as exc:
            if model_id in self.registry:
                return self.registry[model_id]
            raise BadGateway(f"cannot read model {model_id} from the main API: {exc}") from None
        if found is None:
            self.registry.pop(model_id, None)
        else:
            self.registry[model_id] = found
        return found

    def known(self, model_id: int) -> bool:
        return model_id in self.models or self.definition(model_id) is not None

    # ------------------------------------------------------------------ views
    def snapshot(self, model_id: int) -> dict[str, Any]:
        rt = self.models.get(model_id)
        reg = self.registry.get(model_id)
        if rt is None:
            reg = reg or self.definition(model_id)
            if reg is None:
                raise NotFound(f"model {model_id} is not registered")
            rt = ModelRuntime(model_id)
            self._describe(rt, reg)
            rt.state = "stopped" if reg.get("state") == "stopped" else "registered"
        out = rt.public()
        if reg is not None:
            out["description"] = reg.get("description", "")
            out["resources"] = reg.get("resources", {})
        return out

    def list(self) -> list[dict[str, Any]]:
        ids = sorted(set(self.registry) | set(self.models))
        out = []
        for mid in ids:
            with contextlib.suppress(NotFound, BadGateway):
                out.append(self.snapshot(mid))
        return out

    def endpoint(self, model_id: int) -> tuple[str, int, ModelRuntime]:
        """Where to send an invocation; 404 unknown model, 503 not serving."""
        rt = self.models.get(model_id)
        if rt is None or rt.state not in ACTIVE_STATES:
            if rt is None and not self.known(model_id):
                raise NotFound(f"model {model_id} is not registered")
            state = rt.state if rt is not None else "not running"
            reason = f" ({rt.last_error})" if rt is not None and rt.last_error else ""
            raise ServiceUnavailable(f"model {model_id} is {state}{reason}; run it first")
        if rt.state != "running" or rt.host_port is None:
            raise ServiceUnavailable(f"model {model_id} is {rt.state}; try again shortly")
        return self.config.publish_host, rt.host_port, rt

    # ------------------------------------------------------------------ recovery
    def recover(self) -> None:
        """Rebuild the view from container labels (after an ML-API restart)."""
        self.refresh_registry()
        containers = self.engine.list_managed(self.config.namespace)
        by_model: dict[int, list[ContainerInfo]] = {}
        for info in containers:
            if info.model_id is not None:
                by_model.setdefault(info.model_id, []).append(info)
        for model_id, infos in by_model.items():
            # a crash in the middle of a restart can leave two: keep the best one
            infos.sort(key=lambda i: (i.running, i.restarts, i.started_at or ""), reverse=True)
            keep, extra = infos[0], infos[1:]
            for info in extra:
                with contextlib.suppress(EngineError):
                    self.engine.remove(info.id)
            rt = self._runtime(model_id)
            with rt.lock:
                self._describe(rt, self.registry.get(model_id))
                rt.image = rt.image or keep.image
                rt.version = rt.version or keep.labels.get("hpcgate.model_version", "")
                rt.container_id, rt.container_name = keep.id, keep.name
                rt.host_port = keep.host_port
                rt.restarts, rt.streak = keep.restarts, keep.streak
                reg = self.registry.get(model_id) or {}
                if keep.name.endswith(FAILED_SUFFIX):
                    reason = reg.get("last_error") or "failed before the ML-API restarted"
                    self._set(rt, state="failed", health="unhealthy", last_error=reason)
                elif keep.running:
                    # health unknown until the next ping; a report tells the main API we're back
                    self._set(
                        rt,
                        state="running",
                        health="unknown",
                        failures=0,
                        last_error=reg.get("last_error"),
                    )
                    rt.healthy_since = time.monotonic()
                else:
                    # it died while nobody watched: a failure like any other
                    self._failure(rt, _exit_reason(keep))
            log.info("recovered model %s from container %s: %s", model_id, keep.name, rt.state)
        # registrations that say "active" with no container left: correct the record
        for model_id, reg in self.registry.items():
            if model_id not in by_model and reg.get("state") in ACTIVE_STATES:
                rt = self._runtime(model_id)
                self._describe(rt, reg)
                self._set(
                    rt,
                    state="stopped",
                    health="unknown",
                    last_error="its container disappeared while the ML-API was down",
                )

    # ------------------------------------------------------------------ lifecycle
    def _spec(self, rt: ModelRuntime, definition: dict[str, Any]) -> ContainerSpec:
        resources = definition.get("resources") or {}
        env = {str(k): str(v) for k, v in (definition.get("environment") or {}).items()}
        return ContainerSpec(
            model_id=rt.model_id,
            version=rt.version,
            image=rt.image,
            namespace=self.config.namespace,
            name=new_container_name(self.config.namespace, rt.model_id),
            restarts=rt.restarts,
            streak=rt.streak,
            environment=env,
            cpus=resources.get("cpus"),
            memory_mb=resources.get("memory_mb"),
            pids_limit=resources.get("pids") or 256,
            container_port=self.config.container_port,
            publish_host=self.config.publish_host,
        )

    def _start_container(self, rt: ModelRuntime, definition: dict[str, Any]) -> PingResult:
        """Create the container and wait for its first GET /ping (``start_timeout_s``)."""
        info = self.engine.run(self._spec(rt, definition))
        rt.container_id, rt.container_name, rt.host_port = info.id, info.name, info.host_port
        rt.started_at = time.time()
        self._set(rt, state="starting", health="unknown", failures=0)

        def gone() -> str | None:
            current = self.engine.inspect(info.id)
            return None if current is not None and current.running else _exit_reason(current)

        timeout = self.config.start_timeout_s
        result = wait_for_ping(
            self._http,
            self.config.publish_host,
            rt.host_port,
            deadline_s=timeout,
            ping_timeout=self.config.ping_timeout,
            alive=gone,
        )
        if result.ok:
            return result
        port = self.config.container_port
        if result.detail.startswith("container"):
            logs = self._tail(info.id, 5)
            detail = f"{result.detail} before answering GET /ping on port {port}"
            return PingResult(False, detail + (f"; last log lines: {logs}" if logs else ""), 0)
        return PingResult(
            False,
            f"did not answer GET /ping on port {port} within {timeout:g} s "
            f"(last attempt: {result.detail})",
            result.elapsed_s,
        )

    def _tail(self, container_id: str, lines: int) -> str:
        try:
            text = self.engine.logs(container_id, lines)
        except EngineError:
            return ""
        # drop docker's timestamps for the one-line summary
        return " | ".join(ln.split(" ", 1)[-1] for ln in text.strip().splitlines()[-lines:])

    def run(self, model_id: int) -> dict[str, Any]:
        rt_existing = self.models.get(model_id)
        if rt_existing is not None and rt_existing.state in ("running", "starting"):
            return rt_existing.public()
        definition = self.definition(model_id)
        if definition is None:
            raise NotFound(f"model {model_id} is not registered")
        rt = self._runtime(model_id)
        with rt.lock:
            if rt.state in ("running", "starting"):
                return rt.public()
            self._describe(rt, definition)
            self._discard_containers(rt)
            rt.restarts, rt.streak, rt.failures, rt.next_restart_at = 0, 0, 0, None
            rt.last_error = None
            try:
                result = self._start_container(rt, definition)
            except EngineError as exc:
                self._set(
                    rt,
                    state="failed",
                    health="unhealthy",
                    last_error=str(exc),
                    container_id=None,
                    host_port=None,
                )
                raise ModelFailed(str(exc), model=rt.public()) from None
            if not result.ok:
                self._give_up(rt, result.detail)
                raise ModelFailed(result.detail, model=rt.public())
            rt.healthy_since = time.monotonic()
            self._set(rt, state="running", health="healthy", last_ping=result.detail)
            return rt.public()

    def _discard_containers(self, rt: ModelRuntime) -> None:
        """Remove every container of this model (failed leftovers included)."""
        ids = {rt.container_id} if rt.container_id else set()
        with contextlib.suppress(EngineError):
            ids |= {
                c.id
                for c in self.engine.list_managed(self.config.namespace)
                if c.labels.get(LABEL_MODEL_ID) == str(rt.model_id)
            }
        for cid in ids:
            if cid == rt.container_id:
                rt.previous_logs = self._logs_or_empty(cid)
            self.engine.remove(cid)
        rt.container_id = rt.container_name = None
        rt.host_port = None

    def _logs_or_empty(self, cid: str) -> str:
        try:
            return self.engine.logs(cid, LOG_TAIL_KEPT)
        except EngineError:
            return ""

    def stop(self, model_id: int) -> dict[str, Any]:
        rt = self.models.get(model_id)
        if rt is None:
            if not self.known(model_id):
                raise NotFound(f"model {model_id} is not registered")
            rt = self._runtime(model_id)
            self._describe(rt, self.registry.get(model_id))
        with rt.lock:
            if rt.container_id:
                with contextlib.suppress(EngineError):
                    self.engine.stop(rt.container_id, self.config.stop_timeout_s)
            self._discard_containers(rt)
            self._set(rt, state="stopped", health="unknown", failures=0, next_restart_at=None)
            return rt.public()

    def delete(self, model_id: int) -> None:
        """Remove the model's containers and forget it here; the main API keeps the row."""
        rt = self.models.get(model_id)
        if rt is None:
            if not self.known(model_id):
                raise NotFound(f"model {model_id} is not registered")
            rt = self._runtime(model_id)
        with rt.lock:
            self._discard_containers(rt)
            self._set(
                rt,
                state="registered",
                health="unknown",
                restarts=0,
                streak=0,
                last_error=None,
                next_restart_at=None,
            )
            with self._lock:
                self.models.pop(model_id, None)

    def logs(self, model_id: int, tail: int) -> dict[str, Any]:
        rt = self.models.get(model_id)
        if rt is None:
            if not self.known(model_id):
                raise NotFound(f"model {model_id} is not registered")
            return {"model_id": model_id, "container_id": None, "logs": "", "previous": ""}
        current = self.engine.logs(rt.container_id, tail) if rt.container_id else ""
        return {
            "model_id": model_id,
            "container_id": rt.container_id[:12] if rt.container_id else None,
            "logs": current,
            "previous": rt.previous_logs,
        }

    # ------------------------------------------------------------------ watchdog
    def tick(self) -> None:
        """One watchdog round: ping running models, start due restarts, flush reports."""
        now = time.monotonic()
        for rt in list(self.models.values()):
            if not rt.lock.acquire(blocking=False):
                continue  # a run/stop/restart holds it
            try:
                if rt.state == "restarting" and rt.next_restart_at is not None:
                    if now >= rt.next_restart_at:
                        rt.next_restart_at = None  # claimed: no second thread next tick
                        self.spawn(self._restart, rt)
                elif rt.state == "running":
                    self._check(rt)
            except EngineError as exc:
                log.warning("watchdog: model %s: %s", rt.model_id, exc)
            finally:
                rt.lock.release()
        self.reporter.flush()

    def sync(self) -> None:
        """Registry refresh and a full state report (the main API's heartbeat of us)."""
        self.refresh_registry()
        for rt in list(self.models.values()):
            self._report(rt)
        self.reporter.flush()

    def _check(self, rt: ModelRuntime) -> None:
        info = self.engine.inspect(rt.container_id) if rt.container_id else None
        if info is None or not info.running:
            self._failure(rt, _exit_reason(info))
            return
        if info.host_port is not None:
            rt.host_port = info.host_port
        if rt.host_port is None:
            self._failure(rt, "container publishes no port for the model contract")
            return
        result = probe(self._http, self.config.publish_host, rt.host_port, self.config.ping_timeout)
        rt.last_ping = result.detail
        now = time.monotonic()
        if result.ok:
            rt.failures = 0
            if rt.healthy_since is None:
                rt.healthy_since = now
            changes: dict[str, Any] = {"health": "healthy"}
            if rt.streak and now - rt.healthy_since >= self.config.healthy_reset_s:
                changes["streak"] = 0
            self._set(rt, **changes)
            return
        rt.failures += 1
        rt.healthy_since = None
        exit_reason = self._exit_behind(rt, result)
        if exit_reason is not None:
            self._failure(rt, exit_reason)
            return
        reason = f"GET /ping failed {rt.failures} time(s) in a row: {result.detail}"
        if rt.failures >= self.config.failures_before_restart:
            self._failure(rt, reason)
        else:
            self._set(rt, health="unhealthy", last_error=reason)

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
        deadline = time.monotonic() + self.config.exit_grace_s
        while rt.container_id:
            info = self.engine.inspect(rt.container_id)
            if info is None or not info.running:
                return _exit_reason(info)
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.1)
        return None

    def _failure(self, rt: ModelRuntime, reason: str) -> None:
        """A failure of a running model: schedule a restart, or give up past the limit."""
        rt.healthy_since = None
        limit = self.config.restart_limit
        if rt.streak >= limit:
            self._give_up(rt, f"gave up after {rt.streak} restart(s): {reason}")
            return
        delay = self.config.backoff(rt.streak)
        rt.next_restart_at = time.monotonic() + delay
        self._set(rt, state="restarting", health="unhealthy", last_error=reason)
        log.warning(
            "model %s failed (%s); restart %d/%d in %.1f s",
            rt.model_id,
            reason,
            rt.streak + 1,
            limit,
            delay,
        )

    def _give_up(self, rt: ModelRuntime, reason: str) -> None:
        cid = rt.container_id
        if cid:
            with contextlib.suppress(EngineError):
                self.engine.stop(cid, self.config.stop_timeout_s)
            with contextlib.suppress(Exception):
                self._rename_failed(cid)
        self._set(rt, state="failed", health="unhealthy", last_error=reason, next_restart_at=None)

    def _rename_failed(self, cid: str) -> None:
        info = self.engine.inspect(cid)
        if info is not None and not info.name.endswith(FAILED_SUFFIX):
            self.engine.rename(cid, info.name + FAILED_SUFFIX)

    def _restart(self, rt: ModelRuntime) -> None:
        with rt.lock:
            if rt.state != "restarting":
                return
            try:
                definition = self.definition(rt.model_id)  # the cached copy if unreachable
            except BadGateway as exc:
                # the main API is down and we never read this model: try again later,
                # without counting it against the model
                rt.next_restart_at = time.monotonic() + self.config.backoff(rt.streak)
                self._set(rt, last_error=f"restart waits for the main API: {exc.message}")
                return
            if definition is None:
                self._give_up(rt, "the model is no longer registered")
                return
            if not self._engine_up():
                # The container engine itself is down (daemon restart): not the model's
                # fault, so wait for it without spending the model's restart budget.
                rt.next_restart_at = time.monotonic() + self.config.backoff(rt.streak)
                self._set(rt, last_error="restart waits for the container engine")
                return
            old = rt.container_id
            if old:
                rt.previous_logs = self._logs_or_empty(old)
                with contextlib.suppress(EngineError):
                    self.engine.remove(old)
            rt.container_id = None
            rt.streak += 1
            rt.restarts += 1
            try:
                result = self._start_container(rt, definition)
            except EngineError as exc:
                if not self._engine_up():  # the engine went away mid-start: not counted
                    rt.streak -= 1
                    rt.restarts -= 1
                    rt.next_restart_at = time.monotonic() + self.config.backoff(rt.streak)
                    self._set(rt, last_error=f"restart waits for the container engine: {exc}")
                    return
                self._failure(rt, str(exc))
                return
            if result.ok:
                rt.healthy_since = time.monotonic()
                self._set(rt, state="running", health="healthy", last_ping=result.detail)
            else:
                self._failure(rt, result.detail)

    def _engine_up(self) -> bool:
        try:
            self.engine.ping()
        except EngineError:
            return False
        return True

    def close(self) -> None:
        self._http.close()


def _in_thread(target: Callable[[ModelRuntime], None], rt: ModelRuntime) -> None:
    name = f"ml-restart-{rt.model_id}"
    threading.Thread(target=target, args=(rt,), name=name, daemon=True).start()


def new_container_name(namespace: str, model_id: int) -> str:
    return f"hpcgate-{namespace}-model-{model_id}-{secrets.token_hex(3)}"
