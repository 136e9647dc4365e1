"""Clusters, queue mappings and API keys.

Any logged-in user lists clusters and their queues (no runner options); admins create,
configure, disable (maintenance) and delete clusters, map queues, and manage the API keys of
cluster agents (``/clusters/{id}/api-keys``) and of the ML-API (``/ml-api-keys``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Path, Response

from hpcgate.api.deps import CurrentUser, MayManageApiKeys, MayManageClusters, SessionDep
from hpcgate.api.schemas.clusters import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyOut,
    ApiKeyRotate,
    ClusterAdminOut,
    ClusterCreate,
    ClusterOut,
    ClusterUpdate,
    QueueCreate,
    QueueOut,
    QueueUpdate,
)
from hpcgate.db.models import ApiKey, Cluster, QueueMapping
from hpcgate.domain.access import ApiKeyOwner
from hpcgate.services import api_keys as keys
from hpcgate.services import clusters as svc
from hpcgate.services.clusters import QUEUE_PATTERN

router = APIRouter(prefix="/clusters", tags=["clusters"])
ml_keys_router = APIRouter(prefix="/ml-api-keys", tags=["ml-api-keys"])

ClusterId = Annotated[int, Path(ge=1, le=2**63 - 1)]
KeyId = Annotated[int, Path(ge=1, le=2**63 - 1)]
QueueName = Annotated[str, Path(min_length=1, max_length=64, pattern=QUEUE_PATTERN)]


def _key_out(key: ApiKey, raw: str | None = None) -> ApiKeyOut:
    data = {
        "id": key.id,
        "name": key.name,
        "owner_kind": key.owner_kind,
        "cluster_id": key.cluster_id,
        "prefix": key.prefix,
        "created_at": key.created_at,
        "last_used_at": key.last_used_at,
        "revoked_at": key.revoked_at,
        "active": keys.is_active(key, datetime.now(UTC)),
    }
    if raw is not None:
        return ApiKeyCreated(**data, key=raw)
    return ApiKeyOut(**data)


# ------------------------------------------------------------------ clusters


@router.get("", response_model=list[ClusterOut])
def list_clusters(_: CurrentUser, session: SessionDep) -> list[Cluster]:
    """Every cluster, with its queues and online state."""
    return svc.list_clusters(session)


@router.post("", response_model=ClusterAdminOut, status_code=201)
def create_cluster(body: ClusterCreate, _: MayManageClusters, session: SessionDep) -> Cluster:
    """Register a cluster (admin), optionally with its queue mappings."""
    values = body.model_dump(exclude={"queues"})
    return svc.create_cluster(session, values, [q.model_dump() for q in body.queues])


@router.get("/{cluster_id}", response_model=ClusterOut)
def get_cluster(cluster_id: ClusterId, _: CurrentUser, session: SessionDep) -> Cluster:
    """One cluster (without runner options)."""
    return svc.get_cluster(session, cluster_id)


@router.get("/{cluster_id}/config", response_model=ClusterAdminOut)
def get_cluster_config(cluster_id: ClusterId, _: MayManageClusters, session: SessionDep) -> Cluster:
    """One cluster with its whole configuration (admin)."""
    return svc.get_cluster(session, cluster_id)


@router.patch("/{cluster_id}", response_model=ClusterAdminOut)
def update_cluster(
    cluster_id: ClusterId, body: ClusterUpdate, _: MayManageClusters, session: SessionDep
) -> Cluster:
    """Change a cluster's configuration (admin); only the fields sent change."""
    changes = body.model_dump(exclude_unset=True)
    return svc.update_cluster(session, cluster_id, changes)


@router.delete("/{cluster_id}", status_code=204)
def delete_cluster(cluster_id: ClusterId, _: MayManageClusters, session: SessionDep) -> Response:
    """Delete a cluster that never ran a calculation (admin); otherwise disable it."""
    svc.delete_cluster(session, cluster_id)
    return Response(status_code=204)


@router.post("/{cluster_id}/enable", response_model=ClusterAdminOut)
def enable_cluster(cluster_id: ClusterId, _: MayManageClusters, session: SessionDep) -> Cluster:
    """End maintenance: work is dispatched to the cluster again (admin)."""
    return svc.set_cluster_enabled(session, cluster_id, True)


@router.post("/{cluster_id}/disable", response_model=ClusterAdminOut)
def disable_cluster(cluster_id: ClusterId, _: MayManageClusters, session: SessionDep) -> Cluster:
    """Maintenance: no new work is dispatched; running jobs are still followed (admin)."""
    return svc.set_cluster_enabled(session, cluster_id, False)


# ------------------------------------------------------------------ queue mappings


@router.get("/{cluster_id}/queues", response_model=list[QueueOut])
def list_queues(cluster_id: ClusterId, _: CurrentUser, session: SessionDep) -> list[QueueMapping]:
    """Logical queues users choose from, and what they map to on the cluster."""
    return svc.list_queues(session, cluster_id)


@router.post("/{cluster_id}/queues", response_model=QueueOut, status_code=201)
def create_queue(
    cluster_id: ClusterId, body: QueueCreate, _: MayManageClusters, session: SessionDep
) -> QueueMapping:
    """Map a logical queue to a partition/QoS/account with limits (admin)."""
    return svc.create_queue(session, cluster_id, body.model_dump())


@router.patch("/{cluster_id}/queues/{logical_queue}", response_model=QueueOut)
def update_queue(
    cluster_id: ClusterId,
    logical_queue: QueueName,
    body: QueueUpdate,
    _: MayManageClusters,
    session: SessionDep,
) -> QueueMapping:
    """Change a queue mapping (admin); ``null`` clears an optional field."""
    return svc.update_queue(session, cluster_id, logical_queue, body.model_dump(exclude_unset=True))


@router.delete("/{cluster_id}/queues/{logical_queue}", status_code=204)
def delete_queue(
    cluster_id: ClusterId, logical_queue: QueueName, _: MayManageClusters, session: SessionDep
) -> Response:
    """Remove a queue mapping (admin)."""
    svc.delete_queue(session, cluster_id, logical_queue)
    return Response(status_code=204)


# ------------------------------------------------------------------ agent API keys


@router.get("/{cluster_id}/api-keys", response_model=list[ApiKeyOut])
def list_cluster_keys(
    cluster_id: ClusterId, _: MayManageApiKeys, session: SessionDep
) -> list[ApiKeyOut]:
    """The cluster's agent keys, revoked ones included (never the secrets)."""
    found = keys.list_api_keys(session, owner_kind=ApiKeyOwner.CLUSTER, cluster_id=cluster_id)
    return [_key_out(k) for k in found]


@router.post("/{cluster_id}/api-keys", response_model=ApiKeyCreated, status_code=201)
def create_cluster_key(
    cluster_id: ClusterId, body: ApiKeyCreate, _: MayManageApiKeys, session: SessionDep
) -> ApiKeyOut:
    """A new agent key; the response is the only time the whole key is shown."""
    key, raw = keys.create_api_key(
        session, owner_kind=ApiKeyOwner.CLUSTER, name=body.name, cluster_id=cluster_id
    )
    return _key_out(key, raw)


@router.post(
    "/{cluster_id}/api-keys/{key_id}/rotate", response_model=ApiKeyCreated, status_code=201
)
def rotate_cluster_key(
    cluster_id: ClusterId,
    key_id: KeyId,
    _: MayManageApiKeys,
    session: SessionDep,
    body: ApiKeyRotate | None = None,
) -> ApiKeyOut:
    """Replace a key: the new one works now, the old one after ``grace_seconds`` no more."""
    key, raw = keys.rotate_api_key(
        session,
        key_id,
        owner_kind=ApiKeyOwner.CLUSTER,
        cluster_id=cluster_id,
        grace=timedelta(seconds=(body or ApiKeyRotate()).grace_seconds),
    )
    return _key_out(key, raw)


@router.delete("/{cluster_id}/api-keys/{key_id}", response_model=ApiKeyOut)
def revoke_cluster_key(
    cluster_id: ClusterId, key_id: KeyId, _: MayManageApiKeys, session: SessionDep
) -> ApiKeyOut:
    """Revoke a key at once (the row stays, as a record)."""
    key = keys.revoke_api_key(
        session, key_id, owner_kind=ApiKeyOwner.CLUSTER, cluster_id=cluster_id
    )
    return _key_out(key)


# ------------------------------------------------------------------ ML-API keys


@ml_keys_router.get("", response_model=list[ApiKeyOut])
def list_ml_keys(_: MayManageApiKeys, session: SessionDep) -> list[ApiKeyOut]:
    """The ML-API's keys, revoked ones included (never the secrets)."""
    return [_key_out(k) for k in keys.list_api_keys(session, owner_kind=ApiKeyOwner.ML_API)]


@ml_keys_router.post("", response_model=ApiKeyCreated, status_code=201)
def create_ml_key(body: ApiKeyCreate, _: MayManageApiKeys, session: SessionDep) -> ApiKeyOut:
    """A new ML-API key; the response is the only time the whole key is shown."""
    key, raw = keys.create_api_key(session, owner_kind=ApiKeyOwner.ML_API, name=body.name)
    return _key_out(key, raw)


@ml_keys_router.post("/{key_id}/rotate", response_model=ApiKeyCreated, status_code=201)
def rotate_ml_key(
    key_id: KeyId, _: MayManageApiKeys, session: SessionDep, body: ApiKeyRotate | None = None
) -> ApiKeyOut:
    """Replace an ML-API key (the old one stops after ``grace_seconds``)."""
    key, raw = keys.rotate_api_key(
        session,
        key_id,
        owner_kind=ApiKeyOwner.ML_API,
        grace=timedelta(seconds=(body or ApiKeyRotate()).grace_seconds),
    )
    return _key_out(key, raw)


@ml_keys_router.delete("/{key_id}", response_model=ApiKeyOut)
def revoke_ml_key(key_id: KeyId, _: MayManageApiKeys, session: SessionDep) -> ApiKeyOut:
    """Revoke an ML-API key at once."""
    return _key_out(keys.revoke_api_key(session, key_id, owner_kind=ApiKeyOwner.ML_API))
