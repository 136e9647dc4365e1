"""The agent's configuration file (YAML), as written by the Ansible role."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field, field_validator, model_validator


class QueueOverride(BaseModel):
    partition: str = Field(pattern=r"^[A-Za-z0-9_.+-]{1,64}$")
    qos: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.+-]{1,64}$")
    account: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.+-]{1,64}$")


class Intervals(BaseModel):
    pull_s: float = Field(default=10.0, gt=0)
    harvest_s: float = Field(default=10.0, gt=0)
    heartbeat_s: float = Field(default=30.0, gt=0)
    cleanup_s: float = Field(default=600.0, gt=0)
    # Long-poll (issue 16): a pull with nothing to do waits up to this long for new work (0:
    # plain polling every pull_s). It never delays the agent's other tasks.
    pull_wait_s: float = Field(default=20.0, ge=0, le=25)
    # Each wait is the interval times a random factor in [1 - jitter, 1 + jitter], so agents
    # restarted together (a site-wide rollout) drift apart instead of polling in lockstep.
    jitter: float = Field(default=0.1, ge=0, le=0.5)


class AgentConfig(BaseModel):
    model_config = {"extra": "forbid"}

    api_url: str
    api_key: str | None = None
    api_key_file: Path | None = None
    cluster: str = Field(min_length=1, max_length=100)
    name: str = Field(default_factory=lambda: socket.gethostname())
    scheduler: str = "slurm"
    scratch_root: Path
    hpcgate_command: list[str] = Field(
        default_factory=lambda: [sys.executable, "-m", "hpcgate.cli"]
    )
    queues: dict[str, QueueOverride] = Field(default_factory=dict)
    intervals: Intervals = Field(default_factory=Intervals)
    adapter_options: dict[str, Any] = Field(default_factory=dict)
    template_dirs: list[Path] = Field(default_factory=list)
    state_dir: Path = Field(default_factory=lambda: Path.home() / ".hpcgate-agent")
    verify_tls: bool | str = True
    timeout_s: float = Field(default=30.0, gt=0)
    # Prometheus metrics of this agent (tick durations and failures) on loopback; 0: none.
    metrics_port: int = Field(default=0, ge=0, le=65535)
    metrics_host: str = "127.0.0.1"
    # Issue 15: jobs run as this account (``sudo -n -u job_user sbatch ...``), never as the
    # agent's own user, which can read the API key. A calculation whose owner an admin mapped
    # to a login name runs as that name instead. None: jobs run as the agent (not advised).
    job_user: str | None = Field(default=None, pattern=r"^[a-z_][a-z0-9_.-]{0,31}$")
    # Variables of the agent's environment jobs may inherit (besides PATH, LANG, ...).
    pass_environment: list[str] = Field(default_factory=list)
    # Job directories readable by every account (default: private to the job's account).
    shared_read: bool = False
    # Calculations of one pull submitted at once (issue 16: sbatch calls in flight, bounded).
    submit_concurrency: int = Field(default=4, ge=1, le=32)

    @field_validator("api_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("api_url must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("scratch_root")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        if not value.is_absolute():
            raise ValueError("scratch_root must be an absolute path")
        return value

    @model_validator(mode="after")
    def _key(self) -> AgentConfig:
        if not self.api_key and not self.api_key_file:
            raise ValueError("set api_key or api_key_file")
        return self

    def key(self) -> str:
        if self.api_key:
            return self.api_key
        if self.api_key_file is None:
            raise ValueError("set api_key or api_key_file")
        return self.api_key_file.read_text(encoding="utf-8").strip()

    def queue_overrides(self) -> dict[str, dict[str, str | None]]:
        return {
            k: {"queue": v.partition, "qos": v.qos, "account": v.account}
            for k, v in self.queues.items()
        }


def load_config(path: str | os.PathLike[str]) -> AgentConfig:
    with open(path, encoding="utf-8") as fh:
        data = yaml.safe_load(fh) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: the agent configuration must be a mapping")
    return AgentConfig.model_validate(data)
