"""The ML-API's own settings (``HPCGATE_MLAPI_*``), next to the shared ``Settings``.

The shared ``hpcgate.settings.Settings`` still provides what every hpcgate process agrees on:
the JWT key and issuer (``HPCGATE_AUTH__SECRET_KEY``) that the ML-API verifies tokens with,
and ``Settings.ml`` (``HPCGATE_ML__DOCKER_HOST``, ``__PING_INTERVAL_S``, ``__PING_TIMEOUT_S``,
``__MAX_RESTARTS``). What only the ML-API needs lives here, under its own prefix, so that
the shared settings (``extra="forbid"``) never see it.
"""

from __future__ import annotations

import re
from typing import Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from hpcgate.settings import MlSettings

_NAMESPACE_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,30}$")


class MlApiConfig(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HPCGATE_MLAPI_", extra="ignore")

    # where the ML-API listens
    host: str = "127.0.0.1"
    port: int = Field(default=8001, ge=1, le=65535)
    # the main API: model registry, state reports, predictions
    main_api_url: str = "http://127.0.0.1:8000"
    api_key: SecretStr | None = None  # an ML-API key (hpcg_...), from POST /ml-api-keys
    main_api_timeout_s: float = Field(default=10.0, gt=0)
    # How long the main API's answer to "who is this token?" (GET /auth/me) is kept per
    # token: a demoted or blocked user loses ML-API rights within this window (at most 5 s).
    role_cache_s: float = Field(default=5.0, ge=0, le=5)
    # containers
    docker_host: str | None = None  # overrides Settings.ml.docker_host
    namespace: str = "default"  # label value: several ML-APIs can share one engine
    publish_host: str = "127.0.0.1"  # containers' port 8080 is published here only
    container_port: int = Field(default=8080, ge=1, le=65535)  # the model contract
    start_timeout_s: float = Field(default=30.0, gt=0)  # first GET /ping must answer by then
    stop_timeout_s: float = Field(default=10.0, ge=0)
    # watchdog (ping interval/timeout and the restart limit come from Settings.ml)
    ping_interval_s: float | None = Field(default=None, gt=0)
    ping_timeout_s: float | None = Field(default=None, gt=0)
    max_restarts: int | None = Field(default=None, ge=0)
    failures_before_restart: int = Field(default=2, ge=1)  # consecutive failed pings
    # A ping refused because the model process is exiting is the exit's symptom, not its
    # cause: before blaming the ping, wait this long for the engine to report the exit.
    exit_grace_s: float = Field(default=3.0, ge=0)
    backoff_initial_s: float = Field(default=1.0, ge=0)
    backoff_max_s: float = Field(default=60.0, ge=0)
    healthy_reset_s: float = Field(default=300.0, gt=0)  # healthy this long: streak forgotten
    sync_interval_s: float = Field(default=30.0, gt=0)  # registry refresh + state heartbeat
    # proxy
    proxy_timeout_s: float = Field(default=60.0, gt=0)
    # Browser origins allowed to call the ML-API directly (the portal's URL, e.g.
    # "https://hpcgate.lab.org"); empty = same-origin only (behind one reverse proxy).
    cors_origins: list[str] = Field(default_factory=list)
    max_body_bytes: int = Field(default=8 << 20, ge=1024)
    record_max_bytes: int = Field(default=48 << 10, ge=1024)  # prediction stored if smaller

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        if not _NAMESPACE_RE.match(value):
            raise ValueError("namespace: lower-case letters, digits and '-', at most 31")
        return value

    @field_validator("main_api_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("main_api_url must be an http(s) URL")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _backoff(self) -> Self:
        if self.backoff_max_s < self.backoff_initial_s:
            raise ValueError("backoff_max_s must be >= backoff_initial_s")
        return self

    def with_shared(self, ml: MlSettings) -> MlApiConfig:
        """Fill what is unset here from the shared ``Settings.ml`` group."""
        return self.model_copy(
            update={
                "docker_host": self.docker_host or ml.docker_host,
                "ping_interval_s": self.ping_interval_s or ml.ping_interval_s,
                "ping_timeout_s": self.ping_timeout_s or ml.ping_timeout_s,
                "max_restarts": self.max_restarts
                if self.max_restarts is not None
                else ml.max_restarts,
            }
        )

    # resolved values (after ``with_shared``; defaults of MlSettings otherwise)
    @property
    def ping_interval(self) -> float:
        return self.ping_interval_s or MlSettings().ping_interval_s

    @property
    def ping_timeout(self) -> float:
        return self.ping_timeout_s or MlSettings().ping_timeout_s

    @property
    def restart_limit(self) -> int:
        return self.max_restarts if self.max_restarts is not None else MlSettings().max_restarts

    def backoff(self, restarts: int) -> float:
        """Delay before restart number ``restarts + 1``: initial * 2^restarts, capped."""
        return float(min(self.backoff_initial_s * (2 ** min(restarts, 30)), self.backoff_max_s))
