"""Containers for models: the ``ContainerEngine`` seam and its Docker implementation.

Everything the ML-API must know about a model's container is written on the container as
labels when it is created, so a restarted ML-API rebuilds its view from the engine alone:

* ``hpcgate.managed=true`` and ``hpcgate.namespace=<ns>``: ours, and which ML-API's;
* ``hpcgate.model_id``, ``hpcgate.model_version``: which registered model it serves;
* ``hpcgate.restarts``, ``hpcgate.streak``: how many watchdog restarts preceded it, in
  all and in the current failure streak (a restart *recreates* the container - fresh
  filesystem, as an orchestrator does - with the counts incremented).

Containers publish the contract port (8080) on ``127.0.0.1`` only, on a port the engine
picks; the ML-API reaches models through that published port and nothing else. Images are
never pulled: a missing image is an error that says so (there may be no registry at all).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

log = logging.getLogger(__name__)

LABEL_MANAGED = "hpcgate.managed"
LABEL_NAMESPACE = "hpcgate.namespace"
LABEL_MODEL_ID = "hpcgate.model_id"
LABEL_VERSION = "hpcgate.model_version"
LABEL_RESTARTS = "hpcgate.restarts"
LABEL_STREAK = "hpcgate.streak"


class EngineError(Exception):
    """The container engine refused or failed an operation (message is for humans)."""


class ImageMissing(EngineError):
    """The image is not on the engine (and the ML-API never pulls)."""


@dataclass(frozen=True)
class ContainerSpec:
    model_id: int
    version: str
    image: str
    namespace: str
    name: str
    restarts: int = 0
    streak: int = 0
    environment: Mapping[str, str] = field(default_factory=dict)
    cpus: float | None = None
    memory_mb: int | None = None
    pids_limit: int | None = 256
    container_port: int = 8080
    publish_host: str = "127.0.0.1"

    def labels(self) -> dict[str, str]:
        return {
            LABEL_MANAGED: "true",
            LABEL_NAMESPACE: self.namespace,
            LABEL_MODEL_ID: str(self.model_id),
            LABEL_VERSION: self.version,
            LABEL_RESTARTS: str(self.restarts),
            LABEL_STREAK: str(self.streak),
        }


@dataclass(frozen=True)
class ContainerInfo:
    id: str
    name: str
    image: str
    status: str  # created | running | paused | restarting | exited | dead | removing
    exit_code: int | None
    host_port: int | None
    labels: dict[str, str]
    started_at: str | None = None
    error: str | None = None  # the engine's own error text (e.g. OOM, exec failure)
    oom_killed: bool = False

    @property
    def model_id(self) -> int | None:
        try:
            return int(self.labels.get(LABEL_MODEL_ID, ""))
        except ValueError:
            return None

    @property
    def restarts(self) -> int:
        try:
            return max(0, int(self.labels.get(LABEL_RESTARTS, "0")))
        except ValueError:
            return 0

    @property
    def streak(self) -> int:
        try:
            return max(0, int(self.labels.get(LABEL_STREAK, "0")))
        except ValueError:
            return 0

    @property
    def running(self) -> bool:
        return self.status == "running"


class ContainerEngine(Protocol):
    """What the ML-API needs from a container engine (Docker here; a fake in unit tests)."""

    def ping(self) -> None: ...

    def list_managed(self, namespace: str) -> list[ContainerInfo]: ...

    def run(self, spec: ContainerSpec) -> ContainerInfo: ...

    def inspect(self, container_id: str) -> ContainerInfo | None: ...

    def stop(self, container_id: str, timeout: float) -> None: ...

    def remove(self, container_id: str) -> None: ...

    def logs(self, container_id: str, tail: int) -> str: ...

    def rename(self, container_id: str, name: str) -> None: ...

    def close(self) -> None: ...


def _info(attrs: Mapping[str, Any], container_port: int = 8080) -> ContainerInfo:
    state = attrs.get("State") or {}
    config = attrs.get("Config") or {}
    ports = (attrs.get("NetworkSettings") or {}).get("Ports") or {}
    host_port = None
    for binding in ports.get(f"{container_port}/tcp") or []:
        with contextlib.suppress(TypeError, ValueError, KeyError):
            host_port = int(binding["HostPort"])
            break
    exit_code = state.get("ExitCode")
    return ContainerInfo(
        id=str(attrs.get("Id", "")),
        name=str(attrs.get("Name", "")).lstrip("/"),
        image=str(config.get("Image", "")),
        status=str(state.get("Status", "unknown")),
        exit_code=int(exit_code) if isinstance(exit_code, int) else None,
        host_port=host_port,
        labels=dict(config.get("Labels") or {}),
        started_at=state.get("StartedAt"),
        error=state.get("Error") or None,
        oom_killed=bool(state.get("OOMKilled")),
    )


class DockerEngine:
    """``ContainerEngine`` over the docker SDK (``docker.DockerClient``).

    ``base_url`` is a ``unix://`` or ``tcp://`` address; None means the environment
    (``DOCKER_HOST``, else the default socket).
    """

    def __init__(
        self, base_url: str | None = None, *, timeout: float = 60.0, container_port: int = 8080
    ) -> None:
        import docker

        self._docker = docker
        self.container_port = container_port
        try:
            if base_url:
                self.client = docker.DockerClient(base_url=base_url, timeout=int(timeout))
            else:
                self.client = docker.from_env(timeout=int(timeout))
        except docker.errors.DockerException as exc:
            raise EngineError(
                f"cannot reach the Docker engine at {base_url or 'DOCKER_HOST'}: {exc}"
            ) from None
        self.base_url = base_url

    # -- helpers
    def _wrap(self, what: str, exc: Exception) -> EngineError:
        errors = self._docker.errors
        if isinstance(exc, errors.ImageNotFound):
            return ImageMissing(f"{what}: image not found on the engine ({exc.explanation})")
        if isinstance(exc, errors.APIError):
            return EngineError(f"{what}: {exc.explanation or exc}")
        return EngineError(f"{what}: {type(exc).__name__}: {exc}")

    def ping(self) -> None:
        try:
            self.client.ping()
        except Exception as exc:
            raise self._wrap("engine ping", exc) from None

    def list_managed(self, namespace: str) -> list[ContainerInfo]:
        try:
            found = self.client.containers.list(
                all=True,
                filters={"label": [f"{LABEL_MANAGED}=true", f"{LABEL_NAMESPACE}={namespace}"]},
            )
        except Exception as exc:
            raise self._wrap("list containers", exc) from None
        return [_info(c.attrs, self.container_port) for c in found]

    def run(self, spec: ContainerSpec) -> ContainerInfo:
        errors = self._docker.errors
        try:
            self.client.images.get(spec.image)
        except errors.ImageNotFound:
            raise ImageMissing(
                f"image {spec.image!r} is not on the engine; build or load it there first "
                "(the ML-API never pulls from a registry)"
            ) from None
        except Exception as exc:
            raise self._wrap(f"inspect image {spec.image}", exc) from None
        kwargs: dict[str, Any] = {
            "image": spec.image,
            "name": spec.name,
            "detach": True,
            "labels": spec.labels(),
            "environment": dict(spec.environment),
            "ports": {f"{spec.container_port}/tcp": (spec.publish_host, None)},
            "init": True,  # tini as PID 1: SIGTERM stops the server even before it installs
            "security_opt": ["no-new-privileges"],
            "cap_drop": ["ALL"],
            "restart_policy": {"Name": "no"},  # the watchdog restarts, with backoff and limit
        }
        if spec.cpus:
            kwargs["nano_cpus"] = int(spec.cpus * 1e9)
        if spec.memory_mb:
            kwargs["mem_limit"] = f"{int(spec.memory_mb)}m"
        if spec.pids_limit:
            kwargs["pids_limit"] = spec.pids_limit
        container = None
        try:
            container = self.client.containers.create(**kwargs)
            container.start()
            container.reload()
        except Exception as exc:
            if container is not None:
                with contextlib.suppress(Exception):
                    container.remove(force=True)
            raise self._wrap(f"start {spec.image}", exc) from None
        return _info(container.attrs, spec.container_port)

    def inspect(self, container_id: str) -> ContainerInfo | None:
        try:
            return _info(self.client.containers.get(container_id).attrs, self.container_port)
        except self._docker.errors.NotFound:
            return None
        except Exception as exc:
            raise self._wrap(f"inspect {container_id[:12]}", exc) from None

    def stop(self, container_id: str, timeout: float) -> None:
        try:
            self.client.containers.get(container_id).stop(timeout=int(timeout))
        except self._docker.errors.NotFound:
            return
        except Exception as exc:
            raise self._wrap(f"stop {container_id[:12]}", exc) from None

    def remove(self, container_id: str) -> None:
        try:
            self.client.containers.get(container_id).remove(force=True)
        except self._docker.errors.NotFound:
            return
        except Exception as exc:
            raise self._wrap(f"remove {container_id[:12]}", exc) from None

    def logs(self, container_id: str, tail: int) -> str:
        try:
            raw = self.client.containers.get(container_id).logs(tail=tail, timestamps=True)
        except self._docker.errors.NotFound:
            return ""
        except Exception as exc:
            raise self._wrap(f"logs of {container_id[:12]}", exc) from None
        return bytes(raw).decode("utf-8", errors="replace")

    def rename(self, container_id: str, name: str) -> None:
        try:
            self.client.containers.get(container_id).rename(name)
        except self._docker.errors.NotFound:
            return
        except Exception as exc:
            raise self._wrap(f"rename {container_id[:12]}", exc) from None

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close()
