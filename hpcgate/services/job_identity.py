"""Who a job runs as, what it inherits, and who may read its directory (issue 15).

* ``job_user_for(settings, cluster)``: the cluster's job account when this service starts
  jobs itself (access mode ``local``) as root; never root itself.
* ``account_for(session, cluster, user_id)``: the login name an admin mapped the user to on
  this cluster (``cluster_accounts``), else None (the cluster's job account is used).
* ``check_identity_options``: the cluster options ``job_environment``, ``pass_environment``,
  ``shared_read`` and ``job_user``, checked at cluster creation/update.
* ``secure_data_dir``: the data dir (admin password file, embedded PostgreSQL, blob cache)
  is 0700 to the service account, so no job can read it.
"""

from __future__ import annotations

import logging
import os
import pwd
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hpcgate.db.models import Cluster, ClusterAccount
from hpcgate.errors import ConfigurationError
from hpcgate.settings import Settings
from scheduler_adapters.environment import check_names
from scheduler_adapters.runners.identity import check_account

log = logging.getLogger(__name__)

MAX_JOB_ENV = 64
MAX_JOB_ENV_VALUE = 4096
ROOT_SCRATCH = Path("/var/lib/hpcgate-scratch")


def check_identity_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Validate the identity options in ``options`` (``ValueError`` names the bad one)."""
    out = dict(options)
    if "job_environment" in out:
        env = out["job_environment"]
        if not isinstance(env, Mapping) or len(env) > MAX_JOB_ENV:
            raise ValueError(
                f"options.job_environment must be an object of at most {MAX_JOB_ENV} "
                "{NAME: value} pairs"
            )
        check_names(env.keys())
        for name, value in env.items():
            if not isinstance(value, str) or "\x00" in value or len(value) > MAX_JOB_ENV_VALUE:
                raise ValueError(f"options.job_environment.{name} must be a string (no NUL)")
        out["job_environment"] = dict(env)
    if "pass_environment" in out:
        names = out["pass_environment"]
        if not isinstance(names, list) or len(names) > MAX_JOB_ENV:
            raise ValueError("options.pass_environment must be a list of variable names")
        out["pass_environment"] = list(check_names(names))
    if "shared_read" in out and not isinstance(out["shared_read"], bool):
        raise ValueError("options.shared_read must be true or false")
    if out.get("job_user") is not None:
        account = check_account(out["job_user"])
        if account == "root":
            raise ValueError("options.job_user: jobs never run as root")
        out["job_user"] = account
    return out


def _exists(account: str) -> bool:
    try:
        pwd.getpwnam(account)
    except KeyError:
        return False
    return True


def job_user_for(settings: Settings, cluster: Cluster) -> str | None:
    """The account a local-access cluster's jobs run as, or None (jobs run as ourselves).

    Only root can switch accounts; a missing account is a configuration error, never a
    silent fallback to root.
    """
    if os.geteuid() != 0:
        return None
    account = (cluster.options or {}).get("job_user") or settings.local.job_user
    if not account:
        log.warning(
            "cluster %s: local.job_user is empty, so jobs run as root, beside the service's "
            "secrets", cluster.name,
        )
        return None
    if not _exists(account):
        raise ConfigurationError(
            f"job account {account!r} does not exist: create it "
            "(scripts/services/job-accounts.sh) or set local.job_user"
        )
    return str(account)


def can_execute(account: str, path: str) -> bool:
    """Whether ``account`` may run ``path`` (every directory on the way searchable, the
    file executable), judged from modes and ownership. Why: a job that switched to the job
    account runs ``hpcgate validate`` with our interpreter, which may live in root's 0700
    home (a pyenv), and would fail with a bare "Permission denied" (rc 126)."""
    import stat as st

    try:
        entry = pwd.getpwnam(account)
    except KeyError:
        return False
    groups = set(os.getgrouplist(account, entry.pw_gid))

    def allowed(p: str, bit_user: int, bit_group: int, bit_other: int) -> bool:
        info = os.stat(p)
        if info.st_uid == entry.pw_uid:
            return bool(info.st_mode & bit_user)
        if info.st_gid in groups:
            return bool(info.st_mode & bit_group)
        return bool(info.st_mode & bit_other)

    try:
        real = os.path.realpath(path)
        parts = Path(real).parents
        if not all(allowed(str(d), st.S_IXUSR, st.S_IXGRP, st.S_IXOTH) for d in parts):
            return False
        return allowed(real, st.S_IXUSR, st.S_IXGRP, st.S_IXOTH)
    except OSError:
        return False


def account_for(session: Session, cluster_id: int, user_id: int | None) -> ClusterAccount | None:
    if user_id is None:
        return None
    return session.scalar(
        select(ClusterAccount).where(
            ClusterAccount.cluster_id == cluster_id, ClusterAccount.user_id == user_id
        )
    )


def job_environment(cluster: Cluster) -> dict[str, str]:
    """The admin's fixed variables, exported by the job script itself."""
    return dict((cluster.options or {}).get("job_environment") or {})


def local_scratch_root(settings: Settings) -> Path:
    """Where the demo's local cluster puts job directories (see ``LocalExecutorSettings``)."""
    if settings.local.scratch_root is not None:
        return settings.local.scratch_root
    if os.geteuid() == 0 and settings.local.job_user:
        # One directory per installation (data dir): two demos never share job directories.
        import hashlib

        tag = hashlib.sha256(str(Path(settings.paths.data_dir).resolve()).encode()).hexdigest()
        return ROOT_SCRATCH / tag[:12]
    return settings.paths.local_scratch


def secure_data_dir(settings: Settings) -> Path:
    """Create the data dir 0700 (or tighten it): jobs must not read what is in there."""
    path = Path(settings.paths.data_dir)
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if path.stat().st_mode & 0o077:
        os.chmod(path, 0o700)
    return path
