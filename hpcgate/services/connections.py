"""Build the adapter (+ runner) that reaches a cluster, from its row; cached per cluster.

``local`` clusters use the LocalRunner (with the local executor, or a scheduler installed on
this very machine); ``ssh`` clusters use one reused SshRunner connection each. Agent clusters
are never driven from here: their agent runs the same adapters on the login node.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hpcgate.db.models import Cluster, ClusterAccount
from hpcgate.db.models.clusters import AccessMode
from hpcgate.errors import ConfigurationError, InvalidInput
from hpcgate.settings import Settings
from scheduler_adapters.base import SchedulerAdapter
from scheduler_adapters.environment import command_environment
from scheduler_adapters.registry import get_adapter
from scheduler_adapters.runners.local import LocalRunner

log = logging.getLogger(__name__)


def default_hpcgate_command() -> list[str]:
    """How job scripts call ``hpcgate`` on this machine (validate/extract inside the job)."""
    return [sys.executable, "-m", "hpcgate.cli"]


class ClusterConnections:
    """Adapters per cluster and job account, cached.

    ``settings`` (the worker passes them) switch on job identities: a local-access
    cluster's jobs then run as its job account (``local.job_user``) when we are root.
    Without settings (tools, tests) jobs run as this process's user.
    """

    def __init__(
        self, template_overrides: Sequence[Path] = (), *, settings: Settings | None = None
    ) -> None:
        self._lock = threading.Lock()
        self._cache: dict[tuple[int, str | None], tuple[tuple[Any, ...], SchedulerAdapter]] = {}
        self._template_overrides = list(template_overrides)
        self._settings = settings

    def adapter_for(
        self, cluster: Cluster, account: ClusterAccount | None = None
    ) -> SchedulerAdapter:
        """The adapter for jobs of ``account`` (a user's mapped login), or the cluster's own."""
        from hpcgate.services.job_identity import job_user_for

        job_user = job_user_for(self._settings, cluster) if self._settings else None
        login = account.login_name if account is not None else None
        key = (
            login,
            job_user,
            cluster.scheduler,
            cluster.access_mode,
            cluster.host,
            cluster.port,
            cluster.login_user,
            cluster.scratch_root,
            repr(sorted(cluster.options.items())),
        )
        with self._lock:
            cached = self._cache.get((cluster.id, login))
            if cached and cached[0] == key:
                return cached[1]
            if cached:
                cached[1].runner.close()
            adapter = build_adapter(
                cluster,
                self._template_overrides,
                job_user=job_user,
                account=account,
                settings=self._settings,
            )
            self._cache[(cluster.id, login)] = (key, adapter)
            return adapter

    def close(self) -> None:
        with self._lock:
            for _, adapter in self._cache.values():
                adapter.runner.close()
            self._cache.clear()


def _job_can_run(account: str, path: str) -> bool:
    from hpcgate.services.job_identity import can_execute

    return can_execute(account, path)


@dataclass(frozen=True)
class _AdapterOptions:
    """A cluster's ``options`` sorted by who uses them: the runner or the adapter."""

    runner: dict[str, Any]  # what is left: key_filename, known_hosts...
    pass_names: list[str]
    shared_read: bool
    ssh_options: dict[str, Any]
    template_dirs: list[str]
    adapter: dict[str, Any]

    @classmethod
    def of(cls, cluster: Cluster, template_overrides: Sequence[Path]) -> _AdapterOptions:
        opts = dict(cluster.options or {})
        opts.pop("hpcgate_command", None)  # used by the dispatcher, not by the adapter
        opts.pop("launcher", None)
        opts.pop("job_environment", None)  # rendered into the job script by the dispatcher
        opts.pop("job_user", None)
        pass_names = list(opts.pop("pass_environment", None) or [])
        shared_read = bool(opts.pop("shared_read", False))
        ssh_options = opts.pop("ssh_options", None) or {}
        template_dirs = [*opts.pop("template_dirs", []), *map(str, template_overrides)]
        adapter_opts = dict(opts.pop("adapter_options", {}) or {})
        adapter_opts["pass_environment"] = pass_names
        return cls(opts, pass_names, shared_read, ssh_options, template_dirs, adapter_opts)


def build_adapter(
    cluster: Cluster,
    template_overrides: Sequence[Path] = (),
    *,
    job_user: str | None = None,
    account: ClusterAccount | None = None,
    settings: Settings | None = None,
) -> SchedulerAdapter:
    """``job_user``: the cluster's job account (local access, as root); ``account``: the
    calculation owner's mapped login, which wins. Either way the service's own identity and
    environment never reach a job."""
    opts = _AdapterOptions.of(cluster, template_overrides)
    runner: Any
    if cluster.access_mode is AccessMode.LOCAL:
        runner, run_as = _local_runner(cluster, opts, job_user, account)
        opts.adapter["run_as"] = run_as
    elif cluster.access_mode is AccessMode.SSH:
        runner = _ssh_runner(cluster, opts, account, settings)
    else:
        raise InvalidInput(f"cluster {cluster.name} is reached by its agent, not from the service")
    return get_adapter(cluster.scheduler, runner, template_dirs=opts.template_dirs, **opts.adapter)


def _local_runner(
    cluster: Cluster,
    opts: _AdapterOptions,
    job_user: str | None,
    account: ClusterAccount | None,
) -> tuple[LocalRunner, str | None]:
    """A runner on this machine, and the account jobs run as (None: this process's user)."""
    run_as = account.login_name if account is not None else job_user
    if account is not None and job_user is None:
        raise ConfigurationError(
            f"cluster {cluster.name}: jobs of this user must run as {run_as!r}, which "
            "needs the service started as root (and local.job_user set)"
        )
    scratch = Path(cluster.scratch_root)
    if not scratch.exists():
        scratch.mkdir(parents=True, mode=0o711 if run_as else 0o777)
    runner = LocalRunner(
        cluster.scratch_root,
        env=command_environment(os.environ, opts.pass_names),
        job_user=run_as,
        shared_read=opts.shared_read,
    )
    command = (cluster.options or {}).get("hpcgate_command") or default_hpcgate_command()
    if run_as and command and not _job_can_run(run_as, str(command[0])):
        log.warning(
            "cluster %s: jobs run as %r, which cannot execute %s (hpcgate validate/extract "
            "in job scripts will fail with rc 126): install hpcgate where that account can "
            "run it and set options.hpcgate_command",
            cluster.name,
            run_as,
            command[0],
        )
    return runner, run_as


def _ssh_runner(
    cluster: Cluster,
    opts: _AdapterOptions,
    account: ClusterAccount | None,
    settings: Settings | None,
) -> Any:
    """One SSH connection to the login node: as the cluster's login user, or as the mapped
    user with their own key (the job is then theirs on the cluster)."""
    from scheduler_adapters.runners.ssh import SshRunner

    if not cluster.host or not cluster.login_user:
        raise InvalidInput(f"cluster {cluster.name}: SSH access needs host and login user")
    if not opts.runner.get("key_filename") or not opts.runner.get("known_hosts"):
        raise InvalidInput(
            f"cluster {cluster.name}: SSH access needs options.key_filename and "
            "options.known_hosts (host keys are always verified)"
        )
    login = cluster.login_user
    key: dict[str, Any] = {"key_filename": str(opts.runner["key_filename"])}
    if account is not None:
        from hpcgate.services.cluster_accounts import ssh_pkey

        if settings is None or account.ssh_key_encrypted is None:
            raise ConfigurationError(
                f"cluster {cluster.name}: {account.login_name!r} has no stored SSH key"
            )
        login, key = account.login_name, {"pkey": ssh_pkey(account, settings)}
        key["private_dirs"] = not opts.shared_read
    return SshRunner(
        cluster.host,
        cluster.port,
        login,
        known_hosts=str(opts.runner["known_hosts"]),
        scratch_root=cluster.scratch_root,
        **key,
        **_ssh_options(opts.ssh_options),
    )


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
