"""Admins map a user to a login name per cluster; that user's jobs run as it (issue 15).

A user's own SSH private key (SSH clusters) is stored Fernet-encrypted under
``settings.cluster_accounts.encryption_key``: the plaintext exists only in memory while a
connection is opened, is never logged and never returned (the API says ``has_ssh_key``).
"""

from __future__ import annotations

import io
import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hpcgate.db.models import Cluster, ClusterAccount, User
from hpcgate.db.models.accounts import LOGIN_NAME_PATTERN
from hpcgate.db.models.clusters import AccessMode
from hpcgate.errors import ConfigurationError, InvalidInput, NotFound
from hpcgate.settings import Settings

MAX_KEY_CHARS = 16384


def _fernet(settings: Settings) -> Any:
    from cryptography.fernet import Fernet

    key = settings.cluster_accounts.encryption_key
    if not key:
        raise InvalidInput(
            "ssh_private_key: storing users' SSH keys needs cluster_accounts.encryption_key "
            "(HPCGATE_CLUSTER_ACCOUNTS__ENCRYPTION_KEY, from Fernet.generate_key())"
        )
    try:
        return Fernet(key.encode())
    except ValueError:
        raise ConfigurationError(
            "cluster_accounts.encryption_key is not a Fernet key (32 url-safe base64 bytes)"
        ) from None


def _load_pkey(text: str) -> Any:
    """Parse a private key (Ed25519, ECDSA, RSA); ``InvalidInput`` without echoing it."""
    import paramiko

    for kind in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return kind.from_private_key(io.StringIO(text))
        except (paramiko.SSHException, ValueError, TypeError):
            continue
    raise InvalidInput(
        "ssh_private_key: not an unencrypted OpenSSH/PEM private key (Ed25519, ECDSA or RSA)"
    )


def ssh_pkey(account: ClusterAccount, settings: Settings) -> Any:
    """The account's key as a paramiko key object (in memory only)."""
    from cryptography.fernet import InvalidToken

    if account.ssh_key_encrypted is None:
        raise ConfigurationError(f"{account.login_name!r} has no stored SSH key")
    try:
        text = _fernet(settings).decrypt(account.ssh_key_encrypted).decode()
    except InvalidToken:
        raise ConfigurationError(
            f"the SSH key of {account.login_name!r} does not decrypt with the configured "
            "cluster_accounts.encryption_key (was the key changed?)"
        ) from None
    return _load_pkey(text)


def list_accounts(session: Session, cluster_id: int) -> list[ClusterAccount]:
    if session.get(Cluster, cluster_id) is None:
        raise NotFound(f"cluster {cluster_id} not found")
    return list(
        session.scalars(
            select(ClusterAccount)
            .where(ClusterAccount.cluster_id == cluster_id)
            .order_by(ClusterAccount.user_id)
        )
    )


def set_account(
    session: Session,
    settings: Settings,
    cluster_id: int,
    user_id: int,
    login_name: str,
    ssh_private_key: str | None = None,
) -> ClusterAccount:
    """Create or replace the mapping; a key is kept when none is given (rename only)."""
    cluster = session.get(Cluster, cluster_id)
    if cluster is None:
        raise NotFound(f"cluster {cluster_id} not found")
    if session.get(User, user_id) is None:
        raise NotFound(f"user {user_id} not found")
    if not re.match(LOGIN_NAME_PATTERN, login_name) or login_name == "root":
        raise InvalidInput(f"login_name {login_name!r} is not an allowed account name")
    encrypted: bytes | None = None
    if ssh_private_key is not None:
        if cluster.access_mode is not AccessMode.SSH:
            raise InvalidInput("ssh_private_key: only SSH clusters use a user's own key")
        if len(ssh_private_key) > MAX_KEY_CHARS or "\x00" in ssh_private_key:
            raise InvalidInput("ssh_private_key: too long or not text")
        _load_pkey(ssh_private_key)
        encrypted = _fernet(settings).encrypt(ssh_private_key.encode())
    row = session.scalar(
        select(ClusterAccount).where(
            ClusterAccount.cluster_id == cluster_id, ClusterAccount.user_id == user_id
        )
    )
    if row is None:
        row = ClusterAccount(cluster_id=cluster_id, user_id=user_id, login_name=login_name)
        session.add(row)
    elif row.login_name != login_name and encrypted is None:
        row.ssh_key_encrypted = None  # a key belongs to one login name
    row.login_name = login_name
    if encrypted is not None:
        row.ssh_key_encrypted = encrypted
    if cluster.access_mode is AccessMode.SSH and row.ssh_key_encrypted is None:
        raise InvalidInput(
            "ssh_private_key: on an SSH cluster a mapped user logs in with their own key"
        )
    session.flush()
    return row


def delete_account(session: Session, cluster_id: int, user_id: int) -> None:
    row = session.scalar(
        select(ClusterAccount).where(
            ClusterAccount.cluster_id == cluster_id, ClusterAccount.user_id == user_id
        )
    )
    if row is None:
        raise NotFound(f"user {user_id} has no account on cluster {cluster_id}")
    session.delete(row)
    session.flush()
