"""A model's containers: create one and wait for its first ``GET /ping``, read logs, remove.

Which container serves which model lives in the container's labels (``ml/engine.py``), so
nothing here needs a store of its own.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

import httpx

from ml.engine import LABEL_MODEL_ID, ContainerEngine, ContainerSpec, EngineError
from ml.health import PingResult, wait_for_ping
from ml.runtime import LOG_TAIL_KEPT, ModelRuntime, exit_reason, new_container_name
from ml.settings import MlApiConfig


class Containers:
    def __init__(self, engine: ContainerEngine, config: MlApiConfig) -> None:
        self.engine = engine
        self.config = config
        self.http = httpx.Client()  # pings and start-up waits

    def spec(self, rt: ModelRuntime, definition: dict[str, Any]) -> ContainerSpec:
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

    def start(
        self,
        rt: ModelRuntime,
        definition: dict[str, Any],
        change: Callable[..., None],
    ) -> PingResult:
        """Create the container and wait for its first GET /ping (``start_timeout_s``).

        ``change(rt, **fields)`` records the ``starting`` state once the container exists.
        """
        info = self.engine.run(self.spec(rt, definition))
        rt.container_id, rt.container_name, rt.host_port = info.id, info.name, info.host_port
        rt.started_at = time.time()
        change(rt, state="starting", health="unknown", failures=0)

        def gone() -> str | None:
            current = self.engine.inspect(info.id)
            return None if current is not None and current.running else exit_reason(current)

        timeout = self.config.start_timeout_s
        result = wait_for_ping(
            self.http,
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
            logs = self.tail(info.id, 5)
            detail = f"{result.detail} before answering GET /ping on port {port}"
            return PingResult(False, detail + (f"; last log lines: {logs}" if logs else ""), 0)
        return PingResult(
            False,
            f"did not answer GET /ping on port {port} within {timeout:g} s "
            f"(last attempt: {result.detail})",
            result.elapsed_s,
        )

    def tail(self, container_id: str, lines: int) -> str:
        """The last ``lines`` log lines on one line (for an error message)."""
        try:
            text = self.engine.logs(container_id, lines)
        except EngineError:
            return ""
        # drop docker's timestamps for the one-line summary
        return " | ".join(ln.split(" ", 1)[-1] for ln in text.strip().splitlines()[-lines:])

    def discard(self, rt: ModelRuntime) -> None:
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
                rt.previous_logs = self.logs_or_empty(cid)
            self.engine.remove(cid)
        rt.container_id = rt.container_name = None
        rt.host_port = None

    def logs_or_empty(self, cid: str) -> str:
        try:
            return self.engine.logs(cid, LOG_TAIL_KEPT)
        except EngineError:
            return ""

    def engine_up(self) -> bool:
        try:
            self.engine.ping()
        except EngineError:
            return False
        return True

    def close(self) -> None:
        self.http.close()
