"""The ML-API's model supervisor: what the routes and the watchdog call.

Where truth lives:

* **registrations** (image, version, resources, environment) - the main API's
  ``ml_models`` rows (``ml/registry.py``), fetched fresh at every ``run``;
* **which container serves which model** - Docker labels (``ml/engine.py``); a restarted
  ML-API calls ``recover`` (``ml/recovery.py``) and rebuilds everything from them;
* **state and health** - ``ModelRuntime`` (``ml/runtime.py``), reported to the main API
  after every change (``StateReporter`` retries while the main API is down).

A user's ``stop`` removes the container (its last log lines are kept in memory); the
restart policy is ``ml/supervisor.py``, container handling ``ml/containers.py``.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from hpcgate.errors import NotFound
from ml.containers import Containers
from ml.engine import ContainerEngine, EngineError
from ml.errors import BadGateway, ModelFailed, ServiceUnavailable
from ml.recovery import recover
from ml.registry import Registry
from ml.reporting import MainApiClient, StateReporter
from ml.runtime import ACTIVE_STATES, ModelRuntime
from ml.settings import MlApiConfig
from ml.supervisor import Supervisor

log = logging.getLogger(__name__)


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
        self.registry = Registry(main_api)
        self.containers = Containers(engine, config)
        self.supervisor = Supervisor(self)
        self._lock = threading.Lock()
        # how a due restart runs: its own thread, so one slow start blocks no other ping
        self.spawn: Callable[[Callable[[ModelRuntime], None], ModelRuntime], None] = _in_thread

    # ------------------------------------------------------------------ bookkeeping
    def runtime(self, model_id: int) -> ModelRuntime:
        with self._lock:
            rt = self.models.get(model_id)
            if rt is None:
                rt = self.models[model_id] = ModelRuntime(model_id)
            return rt

    def describe(self, rt: ModelRuntime, definition: dict[str, Any] | None) -> None:
        if definition:
            rt.name = str(definition.get("name", rt.name))
            rt.version = str(definition.get("version", rt.version))
            rt.image = str(definition.get("image", rt.image))

    def report(self, rt: ModelRuntime) -> None:
        report = rt.report()
        cached = self.registry.get(rt.model_id)
        if cached is not None:  # keep the cached registration in step with what we report
            cached.update(report)
        self.reporter.submit(rt.model_id, report)

    def change(self, rt: ModelRuntime, **changes: Any) -> None:
        """Apply changes; report when state, health, restarts or the error changed."""
        before = rt.report()
        for key, value in changes.items():
            setattr(rt, key, value)
        if rt.report() != before:
            log.info("model %s: %s", rt.model_id, rt.report())
            self.report(rt)

    # ------------------------------------------------------------------ registrations
    def refresh_registry(self) -> None:
        if self.registry.refresh():
            for mid, rt in list(self.models.items()):
                self.describe(rt, self.registry.get(mid))

    def definition(self, model_id: int) -> dict[str, Any] | None:
        return self.registry.definition(model_id)

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
            self.describe(rt, reg)
            rt.state = "stopped" if reg.get("state") == "stopped" else "registered"
        out = rt.public()
        if reg is not None:
            out["description"] = reg.get("description", "")
            out["resources"] = reg.get("resources", {})
        return out

    def list(self) -> list[dict[str, Any]]:
        ids = sorted(set(self.registry.entries) | set(self.models))
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

    # ------------------------------------------------------------------ what users do
    def run(self, model_id: int) -> dict[str, Any]:
        rt_existing = self.models.get(model_id)
        if rt_existing is not None and rt_existing.state in ("running", "starting"):
            return rt_existing.public()
        definition = self.definition(model_id)
        if definition is None:
            raise NotFound(f"model {model_id} is not registered")
        rt = self.runtime(model_id)
        with rt.lock:
            if rt.state in ("running", "starting"):
                return rt.public()
            self.describe(rt, definition)
            self.containers.discard(rt)
            rt.restarts, rt.streak, rt.failures, rt.next_restart_at = 0, 0, 0, None
            rt.last_error = None
            try:
                result = self.containers.start(rt, definition, self.change)
            except EngineError as exc:
                self.change(
                    rt,
                    state="failed",
                    health="unhealthy",
                    last_error=str(exc),
                    container_id=None,
                    host_port=None,
                )
                raise ModelFailed(str(exc), model=rt.public()) from None
            if not result.ok:
                self.supervisor.give_up(rt, result.detail)
                raise ModelFailed(result.detail, model=rt.public())
            rt.healthy_since = time.monotonic()
            self.change(rt, state="running", health="healthy", last_ping=result.detail)
            return rt.public()

    def _existing(self, model_id: int) -> ModelRuntime | None:
        """The runtime of a registered model (None if it has none yet); 404 if unknown."""
        rt = self.models.get(model_id)
        if rt is None and not self.known(model_id):
            raise NotFound(f"model {model_id} is not registered")
        return rt

    def stop(self, model_id: int) -> dict[str, Any]:
        rt = self._existing(model_id)
        if rt is None:
            rt = self.runtime(model_id)
            self.describe(rt, self.registry.get(model_id))
        with rt.lock:
            if rt.container_id:
                with contextlib.suppress(EngineError):
                    self.engine.stop(rt.container_id, self.config.stop_timeout_s)
            self.containers.discard(rt)
            self.change(rt, state="stopped", health="unknown", failures=0, next_restart_at=None)
            return rt.public()

    def delete(self, model_id: int) -> None:
        """Remove the model's containers and forget it here; the main API keeps the row."""
        rt = self._existing(model_id) or self.runtime(model_id)
        with rt.lock:
            self.containers.discard(rt)
            self.change(
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
        rt = self._existing(model_id)
        if rt is None:
            return {"model_id": model_id, "container_id": None, "logs": "", "previous": ""}
        current = self.engine.logs(rt.container_id, tail) if rt.container_id else ""
        return {
            "model_id": model_id,
            "container_id": rt.container_id[:12] if rt.container_id else None,
            "logs": current,
            "previous": rt.previous_logs,
        }

    # ------------------------------------------------------------------ background
    def recover(self) -> None:
        recover(self)

    def tick(self) -> None:
        self.supervisor.tick()

    def sync(self) -> None:
        """Registry refresh and a full state report (the main API's heartbeat of us)."""
        self.refresh_registry()
        for rt in list(self.models.values()):
            self.report(rt)
        self.reporter.flush()

    def close(self) -> None:
        self.containers.close()


def _in_thread(target: Callable[[ModelRuntime], None], rt: ModelRuntime) -> None:
    name = f"ml-restart-{rt.model_id}"
    threading.Thread(target=target, args=(rt,), name=name, daemon=True).start()
