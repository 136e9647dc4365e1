"""One model as the ML-API sees it at run time: state, health, its container, restart counts.

States: ``registered`` (no container), ``starting``, ``running`` (health ``healthy`` /
``unhealthy`` / ``unknown``), ``restarting`` (waiting out the backoff), ``stopped``,
``failed`` (with ``last_error``). A given-up model keeps its stopped container, renamed with
``FAILED_SUFFIX``, so that it survives an ML-API restart without any other store.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field
from typing import Any

from ml.engine import ContainerInfo

ACTIVE_STATES = frozenset({"starting", "running", "restarting"})
FAILED_SUFFIX = "-failed"
LOG_TAIL_KEPT = 200


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


def exit_reason(info: ContainerInfo | None) -> str:
    if info is None:
        return "container disappeared"
    if info.oom_killed:
        return f"container was killed for exceeding its memory limit (exit code {info.exit_code})"
    text = f"container exited with code {info.exit_code}"
    return f"{text}: {info.error}" if info.error else text


def new_container_name(namespace: str, model_id: int) -> str:
    return f"hpcgate-{namespace}-model-{model_id}-{secrets.token_hex(3)}"
