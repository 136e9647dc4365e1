"""Build the adapter (+ runner) that reaches a cluster, from its row; cached per cluster.

``local`` clusters use the LocalRunner (with the local executor, or a scheduler installed on
this very machine); ``ssh`` clusters use one reused SshRunner connection each. Agent clusters
are never driven from here: their agent runs the same adapters on the login node.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hpcgate.db.models import Cluster
from hpcgate.db.models.clusters import AccessMode
from hpcgate.errors import InvalidInput
from scheduler_adapters.base import SchedulerAdapter
from scheduler_adapters.registry import get_adapter
from scheduler_adapters.runners.local import LocalRunner


def default_hpcgate_command() -> list[str]:
    """How job scripts call ``hpcgate`` on this machine (validate/extract inside the job)."""
    return [sys.executable, "-m", "hpcgate.cli"]


class ClusterConnections:
    def __init__(self, template_overrides: Sequence[Path] = ()) -> None:
        self._lock = threading.Lock()
        self._cache: dict[int, tuple[tuple[Any, ...], SchedulerAdapter]] = {}
        self._template_overrides = list(template_overrides)

    def adapter_for(self, cluster: Cluster) -> SchedulerAdapter:
        key = (
            cluster.scheduler,
            cluster.access_mode,
            cluster.host,
            cluster.port,
            cluster.login_user,
            cluster.scratch_root,
            repr(sorted(cluster.options.items())),
        )
        with self._lock:
            cached = self._cache.get(cluster.id)
            if cached and cached[0] == key:
                return cached[1]
            if cached:
                cached[1].runner.close()
            adapter = build_adapter(cluster, self._template_overrides)
            self._cache[cluster.id] = (key, adapter)
            return adapter

    def close(self) -> None:
        with self._lock:
            for _, adapter in self._cache.values():
                adapter.runner.close()
            self._cache.clear()


def build_adapter(cluster: Cluster, template_overrides: Sequence[Path] = ()) -> SchedulerAdapter:
    opts = dict(cluster.options or {})
    opts.pop("hpcgate_command", None)  # used by the dispatcher, not by the adapter
    opts.pop("launcher", None)
    ssh_options = opts.pop("ssh_options", None)
    template_dirs = [*opts.pop("template_dirs", []), *map(str, template_overrides)]
    adapter_opts = dict(opts.pop("adapter_options", {}) or {})
    if cluster.access_mode is AccessMode.LOCAL:
        Path(cluster.scratch_root).mkdir(parents=True, exist_ok=True)
        runner: Any = LocalRunner(cluster.scratch_root)
    elif cluster.access_mode is AccessMode.SSH:
        from scheduler_adapters.runners.ssh import SshRunner

        if not cluster.host or not cluster.login_user:
            raise InvalidInput(f"cluster {cluster.name}: SSH access needs host and login user")
        if not opts.get("key_filename") or not opts.get("known_hosts"):
            raise InvalidInput(
                f"cluster {cluster.name}: SSH access needs options.key_filename and "
                "options.known_hosts (host keys are always verified)"
            )
        runner = SshRunner(
            cluster.host,
            cluster.port,
            cluster.login_user,
            key_filename=str(opts["key_filename"]),
            known_hosts=str(opts["known_hosts"]),
            scratch_root=cluster.scratch_root,
            **_ssh_options(ssh_options or {}),
        )
    else:
        raise InvalidInput(f"cluster {cluster.name} is reached by its agent, not from the service")
    return get_adapter(cluster.scheduler, runner, template_dirs=template_dirs, **adapter_opts)


_SSH_OPTIONS = {
    "connect_timeout": float,
    "request_timeout": float,
    "keepalive_s": int,
    "dead_peer_timeout_ms": int,
    "max_channels": int,
    "io_timeout": float,
    "source_address": str,
}


def _ssh_options(raw: dict[str, Any]) -> dict[str, Any]:
    """Admin-tunable SSH settings (timeouts, channel cap, source address), type-checked."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        kind = _SSH_OPTIONS.get(key)
        if kind is None:
            raise InvalidInput(f"unknown ssh option {key!r}: use {', '.join(sorted(_SSH_OPTIONS))}")
        try:
            out[key] = kind(value)
        except (TypeError, ValueError):
            raise InvalidInput(f"ssh option {key!r} must be a {kind.__name__}") from None
    return out
