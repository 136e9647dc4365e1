"""Clusters, their queue mappings, and API keys (agent and ML-API) as the API shows them.

Field rules come from ``hpcgate/services/clusters.py`` (one definition for the API, the CLI
and YAML imports); a violation is a 422 that names the field.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from hpcgate.api.schemas import JsonObject, SafeStr
from hpcgate.db.models.clusters import AccessMode
from hpcgate.domain.access import ApiKeyOwner
from hpcgate.services import clusters as rules

ClusterName = Annotated[
    str, Field(min_length=1, max_length=100, pattern=rules.NAME_PATTERN, examples=["hpc1"])
]
Host = Annotated[str, Field(min_length=1, max_length=255), AfterValidator(rules.check_host)]
Port = Annotated[int, Field(ge=1, le=65535)]
LoginUser = Annotated[str, Field(min_length=1, max_length=64, pattern=rules.LOGIN_USER_PATTERN)]
ScratchRoot = Annotated[
    str,
    Field(min_length=2, max_length=1024, examples=["/scratch/hpcgate"]),
    AfterValidator(rules.check_scratch_root),
]
Scheduler = Annotated[
    str,
    # The registry's names at startup, so the portal and clients can offer a choice.
    Field(
        min_length=1,
        max_length=32,
        examples=["slurm"],
        json_schema_extra={"enum": rules.known_schedulers()},
    ),
    AfterValidator(rules.check_scheduler),
]
Description = Annotated[SafeStr, Field(max_length=2000)]
QueueName = Annotated[str, Field(min_length=1, max_length=64, pattern=rules.QUEUE_PATTERN)]
Walltime = Annotated[int, Field(ge=1, le=rules.MAX_WALLTIME_S)]
Nodes = Annotated[int, Field(ge=1, le=rules.MAX_NODES)]
Cpus = Annotated[int, Field(ge=1, le=rules.MAX_CPUS)]


class QueueBase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    partition: QueueName
    qos: QueueName | None = None
    account: QueueName | None = None
    max_walltime_s: Walltime | None = None
    max_nodes: Nodes | None = None
    max_cpus: Cpus | None = None


class QueueCreate(QueueBase):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"logical_queue": "long", "partition": "compute", "max_nodes": 4}]
        },
    )

    logical_queue: QueueName


class QueueUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    partition: QueueName | None = None
    qos: QueueName | None = None
    account: QueueName | None = None
    max_walltime_s: Walltime | None = None
    max_nodes: Nodes | None = None
    max_cpus: Cpus | None = None


class QueueOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    cluster_id: int
    logical_queue: str
    partition: str
    qos: str | None
    account: str | None
    max_walltime_s: int | None
    max_nodes: int | None
    max_cpus: int | None


class ClusterCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "hpc1",
                    "scheduler": "slurm",
                    "access_mode": "ssh",
                    "host": "login.hpc1.example.org",
                    "port": 22,
                    "login_user": "hpcgate",
                    "scratch_root": "/scratch/hpcgate",
                    "queues": [{"logical_queue": "short", "partition": "debug"}],
                }
            ]
        },
    )

    name: ClusterName
    description: Description = ""
    scheduler: Scheduler = "slurm"
    access_mode: AccessMode
    host: Host | None = None
    port: Port = 22
    login_user: LoginUser | None = None
    scratch_root: ScratchRoot
    enabled: bool = True
    require_approval: bool = False
    options: JsonObject = Field(default_factory=dict)
    cleanup_policy: JsonObject = Field(default_factory=dict)
    queues: Annotated[list[QueueCreate], Field(max_length=100)] = Field(default_factory=list)


class ClusterUpdate(BaseModel):
    """Only the fields sent change (``null`` clears host/login_user)."""

    model_config = ConfigDict(extra="forbid")

    name: ClusterName | None = None
    description: Description | None = None
    scheduler: Scheduler | None = None
    access_mode: AccessMode | None = None
    host: Host | None = None
    port: Port | None = None
    login_user: LoginUser | None = None
    scratch_root: ScratchRoot | None = None
    require_approval: bool | None = None
    options: JsonObject | None = None
    cleanup_policy: JsonObject | None = None


class ClusterOut(BaseModel):
    """What every logged-in user sees; runner ``options`` (key files...) are admin-only."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    description: str
    scheduler: str
    access_mode: AccessMode
    host: str | None
    port: int
    login_user: str | None
    scratch_root: str
    enabled: bool
    require_approval: bool
    online: bool
    last_heartbeat_at: datetime | None
    cleanup_policy: dict[str, Any]
    queues: list[QueueOut]
    created_at: datetime
    updated_at: datetime


class ClusterAdminOut(ClusterOut):
    """The whole configuration, for admins."""

    options: dict[str, Any]


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[SafeStr, Field(min_length=1, max_length=200)] = "agent"


class ApiKeyRotate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    grace_seconds: Annotated[int, Field(ge=0, le=86400)] = Field(
        default=0, description="how long the old key keeps working (0: revoked now)"
    )


class ApiKeyOut(BaseModel):
    """A key as listed: never the secret (only its public prefix)."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    owner_kind: ApiKeyOwner
    cluster_id: int | None
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    active: bool


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="the whole key; shown once, store it now")
