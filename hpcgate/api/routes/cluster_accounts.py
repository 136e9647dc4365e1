"""Per-user cluster accounts (admin): which login name a user's jobs run as on a cluster.

``PUT`` creates or replaces a mapping; an SSH cluster needs the user's own private key,
which is stored encrypted and never returned (``has_ssh_key`` says whether one is stored).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, ConfigDict, Field

from hpcgate.api.deps import MayManageClusters, SessionDep, SettingsDep
from hpcgate.db.models import ClusterAccount
from hpcgate.db.models.accounts import LOGIN_NAME_PATTERN
from hpcgate.services import cluster_accounts as svc

router = APIRouter(prefix="/clusters", tags=["cluster accounts"])

ClusterId = Annotated[int, Path(ge=1, le=2**63 - 1)]
UserId = Annotated[int, Path(ge=1, le=2**63 - 1)]


class ClusterAccountIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    login_name: str = Field(min_length=1, max_length=32, pattern=LOGIN_NAME_PATTERN)
    # Write-only: the user's own key for SSH clusters (OpenSSH/PEM, unencrypted).
    ssh_private_key: str | None = Field(default=None, max_length=svc.MAX_KEY_CHARS)


class ClusterAccountOut(BaseModel):
    cluster_id: int
    user_id: int
    login_name: str
    has_ssh_key: bool
    created_at: datetime
    updated_at: datetime


def _out(row: ClusterAccount) -> ClusterAccountOut:
    return ClusterAccountOut(
        cluster_id=row.cluster_id,
        user_id=row.user_id,
        login_name=row.login_name,
        has_ssh_key=row.ssh_key_encrypted is not None,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


@router.get("/{cluster_id}/accounts", response_model=list[ClusterAccountOut])
def list_cluster_accounts(
    cluster_id: ClusterId, _: MayManageClusters, session: SessionDep
) -> list[ClusterAccountOut]:
    """Every user mapped to a login name on this cluster (admin)."""
    return [_out(r) for r in svc.list_accounts(session, cluster_id)]


@router.put("/{cluster_id}/accounts/{user_id}", response_model=ClusterAccountOut)
def put_cluster_account(
    cluster_id: ClusterId,
    user_id: UserId,
    body: ClusterAccountIn,
    _: MayManageClusters,
    session: SessionDep,
    settings: SettingsDep,
) -> ClusterAccountOut:
    """Map a user to a login name on this cluster; their jobs run as it (admin)."""
    row = svc.set_account(
        session, settings, cluster_id, user_id, body.login_name, body.ssh_private_key
    )
    session.refresh(row)
    return _out(row)


@router.delete("/{cluster_id}/accounts/{user_id}", status_code=204)
def delete_cluster_account(
    cluster_id: ClusterId, user_id: UserId, _: MayManageClusters, session: SessionDep
) -> Response:
    """Unmap a user: their next jobs run as the cluster's job account (admin)."""
    svc.delete_account(session, cluster_id, user_id)
    return Response(status_code=204)
