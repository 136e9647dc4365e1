"""Configuration: environment (``HPCGATE_`` prefix, ``__`` for nesting) over an optional file.

There is no module-level instance: ``get_settings()`` is cached and injected, so tests
and the CLI can build their own ``Settings`` without import-time side effects.
The built-in secret is refused everywhere except ``env=dev`` bound to loopback.
"""

from __future__ import annotations

import ipaddress
import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from hpcgate.stall_settings import StallSettings

DEFAULT_SECRET = "change-me-dev-secret"  # noqa: S105 - a sentinel, refused outside dev


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "hpcgate"


class DatabaseSettings(BaseModel):
    """``url`` unset means: start the embedded PostgreSQL in the data directory."""

    url: str | None = None
    pool_size: int = Field(default=20, ge=1, le=200)
    echo: bool = False

    @field_validator("url", mode="before")
    @classmethod
    def _normalize_url(cls, value: Any) -> Any:
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise ValueError("database url must be a string")
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        text = value.strip()
        if text.startswith("postgres://"):
            text = "postgresql://" + text[len("postgres://") :]
        try:
            url = make_url(text)
        except ArgumentError as exc:
            raise ValueError(f"malformed database URL {_redact(text)!r}") from exc
        if url.get_backend_name() != "postgresql":
            raise ValueError(
                f"unsupported database {url.get_backend_name()!r}: hpcgate runs on PostgreSQL only"
            )
        if url.drivername in ("postgresql", "postgresql+psycopg2"):
            url = url.set(drivername="postgresql+psycopg")
        if not url.database:
            raise ValueError(f"database URL {_redact(text)!r} names no database")
        return url.render_as_string(hide_password=False)


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"
    return url


class AuthSettings(BaseModel):
    secret_key: str = DEFAULT_SECRET
    access_token_minutes: int = Field(default=15, ge=1, le=24 * 60)
    refresh_token_days: int = Field(default=14, ge=1, le=365)
    # A login (refresh family) ends this long after the password was typed, however often
    # it was refreshed: a stolen, regularly refreshed cookie does not live forever.
    refresh_family_max_days: int = Field(default=30, ge=1, le=3650)
    issuer: str = "hpcgate"
    cookie_secure: bool = True
    login_rate_per_minute: int = Field(default=10, ge=1)
    # Flood limits, checked before any password hash (unset: derived from the per-e-mail
    # limit, x6 per client address and x60 for the whole service, so configs that raise
    # login_rate_per_minute raise these too).
    login_rate_per_ip_per_minute: int | None = Field(default=None, ge=1)
    login_rate_global_per_minute: int | None = Field(default=None, ge=1)
    # Account lockout: after this many failed passwords in a row, no password is checked for
    # lockout_base_s * 2^(failures - lockout_after) seconds (capped); 0 disables it.
    lockout_after: int = Field(default=5, ge=0)
    lockout_base_s: float = Field(default=30.0, gt=0)
    lockout_max_s: float = Field(default=900.0, gt=0)

    @property
    def login_ip_limit(self) -> int:
        return self.login_rate_per_ip_per_minute or 6 * self.login_rate_per_minute

    @property
    def login_global_limit(self) -> int:
        return self.login_rate_global_per_minute or 60 * self.login_rate_per_minute


class SmtpSettings(BaseModel):
    host: str | None = None
    port: int = Field(default=25, ge=1, le=65535)
    username: str | None = None
    password: str | None = None
    use_tls: bool = False
    # none | starttls (587, 2525) | tls (SMTPS, 465); unset: from use_tls (465 -> tls).
    security: Literal["none", "starttls", "tls"] | None = None
    ca_file: Path | None = None  # the relay's CA (a private one); default: the system's
    timeout_s: float = Field(default=10.0, gt=0, le=300)
    mail_from: str = "hpcgate@localhost"
    public_url: str = "http://127.0.0.1:8000"

    @property
    def transport(self) -> Literal["none", "starttls", "tls"]:
        if self.security is not None:
            return self.security
        if self.use_tls:
            return "tls" if self.port == 465 else "starttls"
        return "none"

    @model_validator(mode="after")
    def _credentials_need_tls(self) -> SmtpSettings:
        # A password sent in clear text to a relay off this machine is readable on the wire.
        if self.username and self.host and self.transport == "none" and not is_loopback(self.host):
            raise ValueError(
                "smtp.username needs TLS: set smtp.security to starttls or tls "
                "(clear-text AUTH is allowed only to a relay on loopback)"
            )
        return self


class PathSettings(BaseModel):
    data_dir: Path = Field(default_factory=_default_data_dir)
    template_overrides: list[Path] = Field(default_factory=list)

    @property
    def local_scratch(self) -> Path:
        return self.data_dir / "scratch"

    @property
    def embedded_pg_dir(self) -> Path:
        return self.data_dir / "postgres"


class SchedulerSettings(BaseModel):
    poll_interval_s: float = Field(default=10.0, gt=0)
    heartbeat_interval_s: float = Field(default=30.0, gt=0)
    offline_after_s: float = Field(default=120.0, gt=0)
    lost_after_ticks: int = Field(default=5, ge=1)
    require_approval: bool = False
    # Issue 16: concurrent sbatch calls per cluster, and calculations claimed per batch while
    # the dispatcher drains (each claim is a lease: a bounded batch keeps leases fresh).
    submit_concurrency: int = Field(default=4, ge=1, le=64)
    dispatch_batch: int = Field(default=50, ge=1, le=1000)


class MlSettings(BaseModel):
    docker_host: str | None = None
    # The ML-API's address as browsers reach it; the portal's CSP allows calls to it.
    public_url: str | None = None
    ping_interval_s: float = Field(default=10.0, gt=0)
    ping_timeout_s: float = Field(default=2.0, gt=0)
    max_restarts: int = Field(default=3, ge=0)


class InputSettings(BaseModel):
    """Binary input files (multipart uploads): checked while the body streams in, 413 above.

    Defaults fit SIESTA electrodes (``.TSHS`` of tens of MiB) with room to spare, and stay
    well inside PostgreSQL's 1 GiB limit for one ``bytea`` value.
    """

    max_file_bytes: int = Field(default=256 << 20, ge=1, le=1 << 30)
    max_calculation_bytes: int = Field(default=1 << 30, ge=1, le=16 << 30)
    max_files: int = Field(default=200, ge=1, le=10000)
    # Uploaded files no calculation refers to (POST /inputs, then never used) are deleted
    # once this old; files a calculation uses are kept as long as the calculation.
    keep_unused_days: float = Field(default=7.0, gt=0)


class LocalExecutorSettings(BaseModel):
    """Who runs the jobs this service starts itself (clusters with access mode ``local``).

    Started as root, the service never runs a job as root: each job runs as ``job_user``
    (an unprivileged account, created by ``scripts/services/job-accounts.sh``), or as the
    account an admin mapped the calculation's owner to. ``""``/null keeps jobs as the
    service's own user; that is the only choice when the service is not root.
    ``scratch_root``: where the demo's local cluster keeps job directories; by default
    ``<data_dir>/scratch``, or ``/var/lib/hpcgate-scratch/<hash of the data dir>`` when jobs
    run as another account
    (the data dir is private to the service, so a job could not even reach it).
    """

    job_user: str | None = "hpcgate-job"
    scratch_root: Path | None = None

    @field_validator("job_user", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("job_user")
    @classmethod
    def _account(cls, value: str | None) -> str | None:
        from scheduler_adapters.runners.identity import check_account

        if value == "root":
            raise ValueError("local.job_user: jobs never run as root (use \"\" to keep ours)")
        return None if value is None else check_account(value)


class ClusterAccountSettings(BaseModel):
    """Per-user cluster accounts: a user's own SSH key is stored encrypted (Fernet) under
    ``encryption_key`` (``Fernet.generate_key()``; never logged, never returned by the API).
    Without it, SSH keys cannot be stored (the API answers 422)."""

    encryption_key: str | None = None


class OutputSettings(BaseModel):
    """Raw outputs (a step's files, read on the cluster) and the live tail of its stdout."""

    max_download_mb: int = Field(default=256, ge=1, le=65536)  # larger files: 413
    # One agent relay chunk (an upload from the agent): below max_body_mb.
    relay_chunk_kb: int = Field(default=4096, ge=64, le=32768)
    relay_timeout_s: float = Field(default=20.0, gt=0, le=300)  # then 504
    tail_poll_s: float = Field(default=1.0, ge=0.2, le=30)  # local and SSH clusters
    tail_agent_poll_s: float = Field(default=2.0, ge=0.5, le=60)  # each poll is a relay trip
    tail_max_line: int = Field(default=4096, ge=80, le=65536)  # characters; longer are cut
    tail_max_bytes: int = Field(default=65536, ge=1024, le=1 << 22)  # per poll; beyond: skip


class TelemetrySettings(BaseModel):
    """Retention of the heartbeat and step-sample series (``services/telemetry_retention.py``):
    raw rows for ``raw_days``, then one row per ``rollup_bucket_s`` bucket, kept for
    ``rollup_days`` (0: for ever)."""

    raw_days: float = Field(default=14.0, gt=0, le=3650)
    rollup_bucket_s: int = Field(default=3600, ge=60, le=86400)
    rollup_days: float = Field(default=730.0, ge=0, le=36500)
    interval_s: float = Field(default=3600.0, ge=10, le=86400)  # how often the worker runs it


class MetricsSettings(BaseModel):
    """Prometheus metrics (``docs/observability.md``). The API's ``GET /metrics`` answers a
    bearer ``token`` (for Prometheus) or a logged-in admin; the worker serves its own on
    ``worker_port`` (0: none), bound to ``host``."""

    token: SecretStr | None = None
    host: str = "127.0.0.1"
    worker_port: int = Field(default=0, ge=0, le=65535)


class LogStreamSettings(BaseModel):
    """Bounds on ``GET /logs/stream`` (SSE): each stream costs a query per poll."""

    max_per_user: int = Field(default=4, ge=1, le=100)  # concurrent streams, per API process
    min_poll_s: float = Field(default=1.0, gt=0, le=10)  # smaller poll_s is a 422
    max_duration_s: float = Field(default=300.0, gt=0, le=3600)  # the stream then ends


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="HPCGATE_",
        env_nested_delimiter="__",
        extra="forbid",
    )

    env: Literal["dev", "test", "production"] = "production"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    # Largest request body the API reads (413 above it): uploads are input files, not data sets.
    max_body_mb: int = Field(default=32, ge=1, le=4096)
    # Requests processed at once; the rest queue (FIFO, in the event loop). A few at a time
    # beats many threads time-slicing one GIL. Always <= the database pool (no deadlock).
    api_concurrency: int = Field(default=8, ge=1, le=200)
    # Admission pools of their own, so a flood of one kind never queues the others: agent
    # routes (/agent/*) and POST /auth/login (argon2 is CPU-bound). All pools together stay
    # <= the database pool.
    agent_concurrency: int = Field(default=4, ge=1, le=200)
    login_concurrency: int = Field(default=2, ge=1, le=200)
    # Preparing a calculation's inputs (parsing fdf/pw.x text, sweeps) runs in this many
    # worker processes, each call at most parse_timeout_s (then 422): a hostile input can
    # neither hold the GIL of the threads that serve agents nor run forever.
    parse_workers: int = Field(default=2, ge=1, le=64)
    parse_timeout_s: float = Field(default=30.0, gt=0, le=600)
    config_file: Path | None = None
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    smtp: SmtpSettings = Field(default_factory=SmtpSettings)
    paths: PathSettings = Field(default_factory=PathSettings)
    scheduler: SchedulerSettings = Field(default_factory=SchedulerSettings)
    ml: MlSettings = Field(default_factory=MlSettings)
    log_stream: LogStreamSettings = Field(default_factory=LogStreamSettings)
    outputs: OutputSettings = Field(default_factory=OutputSettings)
    telemetry: TelemetrySettings = Field(default_factory=TelemetrySettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    stall: StallSettings = Field(default_factory=StallSettings)
    inputs: InputSettings = Field(default_factory=InputSettings)
    local: LocalExecutorSettings = Field(default_factory=LocalExecutorSettings)
    cluster_accounts: ClusterAccountSettings = Field(default_factory=ClusterAccountSettings)

    # ``HPCGATE_DATABASE_URL`` is the documented spelling; map it onto the nested field.
    @model_validator(mode="before")
    @classmethod
    def _flat_aliases(cls, data: Any) -> Any:
        if isinstance(data, dict):
            flat = {
                "database_url": ("database", "url"),
                "secret_key": ("auth", "secret_key"),
                "data_dir": ("paths", "data_dir"),
            }
            for key, (group, field) in flat.items():
                if key in data:
                    value = data.pop(key)
                    grp = dict(data.get(group) or {})
                    grp.setdefault(field, value)
                    data[group] = grp
        return data

    @model_validator(mode="after")
    def _refuse_default_secrets(self) -> Settings:
        # Anyone who knows the built-in secret can sign an admin token: only a dev process
        # that nobody else can reach (loopback) may use it. ``check_bind`` repeats this for
        # the address a server really binds (``serve --host``, the ML-API's own host).
        check_bind(self, self.host)
        if len(self.auth.secret_key) < 16:
            raise ValueError("HPCGATE_AUTH__SECRET_KEY must be at least 16 characters")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            env_settings,
            _FlatEnvSource(settings_cls),
            _YamlFileSource(settings_cls),
        )


class _FlatEnvSource(PydanticBaseSettingsSource):
    """Accept the short, documented names ``HPCGATE_DATABASE_URL`` and ``HPCGATE_SECRET_KEY``."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if os.environ.get("HPCGATE_DATABASE_URL"):
            out["database"] = {"url": os.environ["HPCGATE_DATABASE_URL"]}
        if os.environ.get("HPCGATE_SECRET_KEY"):
            out["auth"] = {"secret_key": os.environ["HPCGATE_SECRET_KEY"]}
        return out


class _YamlFileSource(PydanticBaseSettingsSource):
    """Optional YAML file named by ``HPCGATE_CONFIG_FILE``; lowest precedence."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = os.environ.get("HPCGATE_CONFIG_FILE")
        if not path:
            return {}
        try:
            with open(path, encoding="utf-8") as fh:
                data = yaml.safe_load(fh) or {}
        except OSError as exc:
            raise ValueError(f"cannot read config file {path}: {exc.strerror}") from exc
        except yaml.YAMLError as exc:
            raise ValueError(f"config file {path} is not valid YAML: {exc}") from exc
        if not isinstance(data, dict):
            raise ValueError(f"config file {path} must hold a mapping")
        return data


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback address (127.0.0.0/8, ::1); not ``0.0.0.0`` or a name."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(settings: Settings, host: str) -> None:
    """Refuse the built-in secret unless this is ``env=dev`` bound to loopback (ValueError)."""
    if settings.auth.secret_key != DEFAULT_SECRET:
        return
    if settings.env != "dev" or not is_loopback(host):
        raise ValueError(
            "HPCGATE_AUTH__SECRET_KEY is the built-in default, which is accepted only with "
            f"HPCGATE_ENV=dev on a loopback address (env={settings.env}, host={host}); set a "
            "real secret (e.g. `openssl rand -hex 32`)"
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
