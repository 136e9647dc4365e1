"""Clusters and queue mappings: validation rules and the admin use-cases.

The field checks are plain functions (raising ``ValueError``) so the API schemas, the CLI and
YAML imports share them; the use-cases re-check the cross-field rules (an SSH cluster needs a
host and a login user) and raise ``InvalidInput``. Use-cases commit: each is one unit of work.
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hpcgate.codes.recovery import parse_policy
from hpcgate.codes.registry import PLUGINS
from hpcgate.db.models import Calculation, Cluster, QueueMapping
from hpcgate.db.models.clusters import AccessMode
from hpcgate.engine.programs import check_cluster_options
from hpcgate.errors import Conflict, InvalidInput, NotFound
from hpcgate.services.job_identity import check_identity_options

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
QUEUE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
LOGIN_USER_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$"
MAX_WALLTIME_S = 366 * 24 * 3600
MAX_NODES = 100_000
MAX_CPUS = 10_000_000

_LABEL_RE = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_FALLBACK_SCHEDULERS = ("local", "pbs", "slurm")
_CLUSTER_FIELDS = (
    "name",
    "description",
    "scheduler",
    "access_mode",
    "host",
    "port",
    "login_user",
    "scratch_root",
    "enabled",
    "require_approval",
    "options",
    "cleanup_policy",
)
_QUEUE_FIELDS = ("partition", "qos", "account", "max_walltime_s", "max_nodes", "max_cpus")


# ------------------------------------------------------------------ field rules (pure)


def known_schedulers() -> list[str]:
    """Names in the scheduler adapter registry (entry points plus the built-ins)."""
    try:
        from scheduler_adapters.registry import available_adapters

        return available_adapters()
    except ImportError:  # a checkout without the registry module
        return list(_FALLBACK_SCHEDULERS)


def check_scheduler(value: str) -> str:
    names = known_schedulers()
    if value not in names:
        raise ValueError(f"unknown scheduler {value!r}; known: {', '.join(names)}")
    return value


def check_host(value: str) -> str:
    """A DNS name (RFC 1123 labels) or an IPv4/IPv6 address; no scheme, port or path."""
    host = value.strip()
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        pass
    name = host[:-1] if host.endswith(".") else host
    if not name or len(name) > 253 or not all(_LABEL_RE.match(p) for p in name.split(".")):
        raise ValueError(f"{value!r} is not a valid host name or IP address")
    return host.lower()


def check_scratch_root(value: str) -> str:
    """An absolute, normalised POSIX directory other than ``/`` (cleanup deletes under it)."""
    if any(ord(c) < 32 or c == "\x7f" for c in value):
        raise ValueError("scratch_root must not contain control characters")
    if not value.startswith("/"):
        raise ValueError("scratch_root must be an absolute path")
    if ".." in value.split("/"):
        raise ValueError("scratch_root must not contain '..'")
    normalised = posixpath.normpath(value)
    if normalised.startswith("//"):
        normalised = "/" + normalised.lstrip("/")
    if normalised == "/":
        raise ValueError("scratch_root must not be the root directory")
    return normalised


def _check_pattern(value: str, pattern: str, field: str) -> None:
    if not re.match(pattern, value):
        raise ValueError(f"{field} {value!r} must match {pattern}")


def check_cluster_recovery(options: Mapping[str, Any]) -> None:
    """``options.recovery`` is the recovery ladder's default for every calculation on the
    cluster that sets none, whatever its code: it must parse for every code with a ladder
    (``InvalidInput``, a 422, naming the code and the rungs it has), not be found bad, logged
    and ignored when a step fails."""
    if "recovery" not in options:
        return
    for name, plugin in sorted(PLUGINS.items()):
        if plugin.recovery is None:
            continue  # no ladder: such calculations never retry, whatever the default says
        try:
            parse_policy(options["recovery"], plugin.recovery)
        except InvalidInput as exc:
            raise InvalidInput(f"options.recovery (for {name} calculations): {exc}") from None


def validate_cluster_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """Every field rule plus the cross-field ones; ``InvalidInput`` names the field."""
    out = dict(values)
    try:
        _check_pattern(out["name"], NAME_PATTERN, "name")
        out["scheduler"] = check_scheduler(out["scheduler"])
        out["access_mode"] = AccessMode(out["access_mode"])
        out["scratch_root"] = check_scratch_root(out["scratch_root"])
        if out.get("host") is not None:
            out["host"] = check_host(out["host"])
        if out.get("login_user") is not None:
            _check_pattern(out["login_user"], LOGIN_USER_PATTERN, "login_user")
        port = int(out.get("port", 22))
        if not 1 <= port <= 65535:
            raise ValueError("port must be between 1 and 65535")
        out["port"] = port
        if out.get("options") is not None:
            out["options"] = check_identity_options(check_cluster_options(out["options"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidInput(str(exc)) from None
    check_cluster_recovery(out.get("options") or {})
    if out["access_mode"] is AccessMode.SSH and not out.get("host"):
        raise InvalidInput("host: an ssh cluster needs a host")
    if out["access_mode"] is AccessMode.SSH and not out.get("login_user"):
        raise InvalidInput("login_user: an ssh cluster needs a login user")
    return out


# ------------------------------------------------------------------ clusters


def list_clusters(session: Session) -> list[Cluster]:
    return list(session.scalars(select(Cluster).order_by(Cluster.name)))


def get_cluster(session: Session, cluster_id: int) -> Cluster:
    cluster = session.get(Cluster, cluster_id)
    if cluster is None:
        raise NotFound(f"cluster {cluster_id} not found")
    return cluster


def _name_taken(session: Session, name: str, exclude_id: int | None = None) -> bool:
    stmt = select(Cluster.id).where(func.lower(Cluster.name) == name.lower())
    if exclude_id is not None:
        stmt = stmt.where(Cluster.id != exclude_id)
    return session.scalar(stmt) is not None


def create_cluster(
    session: Session, values: Mapping[str, Any], queues: list[Mapping[str, Any]] | None = None
) -> Cluster:
    data = validate_cluster_values({"port": 22, **values})
    if _name_taken(session, data["name"]):
        raise Conflict(f"a cluster named {data['name']!r} already exists")
    cluster = Cluster(**{k: data[k] for k in _CLUSTER_FIELDS if k in data})
    session.add(cluster)
    session.flush()
    seen: set[str] = set()
    for queue in queues or []:
        name = queue["logical_queue"]
        if name in seen:
            raise InvalidInput(f"queues: logical queue {name!r} is listed twice")
        seen.add(name)
        session.add(QueueMapping(cluster_id=cluster.id, **_queue_values(queue, full=True)))
    session.commit()
    session.refresh(cluster)
    return cluster


def update_cluster(session: Session, cluster_id: int, changes: Mapping[str, Any]) -> Cluster:
    """Apply ``changes`` (only the keys present) and re-validate the whole cluster."""
    cluster = get_cluster(session, cluster_id)
    unknown = set(changes) - set(_CLUSTER_FIELDS)
    if unknown:
        raise InvalidInput(f"unknown cluster fields: {', '.join(sorted(unknown))}")
    current = {k: getattr(cluster, k) for k in _CLUSTER_FIELDS}
    merged = validate_cluster_values({**current, **changes})
    if "name" in changes and _name_taken(session, merged["name"], exclude_id=cluster.id):
        raise Conflict(f"a cluster named {merged['name']!r} already exists")
    for key in changes:
        setattr(cluster, key, merged[key])
    session.commit()
    return cluster


def set_cluster_enabled(session: Session, cluster_id: int, enabled: bool) -> Cluster:
    """Disabled = maintenance: no new work is dispatched; agents may still report."""
    cluster = get_cluster(session, cluster_id)
    cluster.enabled = enabled
    session.commit()
    return cluster


def delete_cluster(session: Session, cluster_id: int) -> None:
    cluster = get_cluster(session, cluster_id)
    used = session.scalar(
        select(func.count()).select_from(Calculation).where(Calculation.cluster_id == cluster_id)
    )
    if used:
        raise Conflict(
            f"cluster {cluster.name!r} has {used} calculation(s); disable it instead of deleting"
        )
    session.delete(cluster)
    session.commit()


# ------------------------------------------------------------------ queue mappings


def _queue_values(values: Mapping[str, Any], *, full: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    keys = (("logical_queue",) if full else ()) + _QUEUE_FIELDS
    for key in keys:
        if key in values:
            out[key] = values[key]
    try:
        for key in ("logical_queue", "partition", "qos", "account"):
            if out.get(key) is not None:
                _check_pattern(out[key], QUEUE_PATTERN, key)
        for key, top in (
            ("max_walltime_s", MAX_WALLTIME_S),
            ("max_nodes", MAX_NODES),
            ("max_cpus", MAX_CPUS),
        ):
            if out.get(key) is not None and not 1 <= int(out[key]) <= top:
                raise ValueError(f"{key} must be between 1 and {top}")
    except (ValueError, TypeError) as exc:
        raise InvalidInput(str(exc)) from None
    if full and not out.get("partition"):
        raise InvalidInput("partition: required")
    return out


def list_queues(session: Session, cluster_id: int) -> list[QueueMapping]:
    get_cluster(session, cluster_id)
    return list(
        session.scalars(
            select(QueueMapping)
            .where(QueueMapping.cluster_id == cluster_id)
            .order_by(QueueMapping.logical_queue)
        )
    )


def get_queue(session: Session, cluster_id: int, logical_queue: str) -> QueueMapping:
    get_cluster(session, cluster_id)
    queue = session.scalar(
        select(QueueMapping).where(
            QueueMapping.cluster_id == cluster_id, QueueMapping.logical_queue == logical_queue
        )
    )
    if queue is None:
        raise NotFound(f"cluster {cluster_id} has no queue {logical_queue!r}")
    return queue


def create_queue(session: Session, cluster_id: int, values: Mapping[str, Any]) -> QueueMapping:
    get_cluster(session, cluster_id)
    data = _queue_values(values, full=True)
    exists = session.scalar(
        select(QueueMapping.id).where(
            QueueMapping.cluster_id == cluster_id,
            QueueMapping.logical_queue == data["logical_queue"],
        )
    )
    if exists is not None:
        raise Conflict(f"cluster {cluster_id} already maps queue {data['logical_queue']!r}")
    queue = QueueMapping(cluster_id=cluster_id, **data)
    session.add(queue)
    session.commit()
    return queue


def update_queue(
    session: Session, cluster_id: int, logical_queue: str, changes: Mapping[str, Any]
) -> QueueMapping:
    queue = get_queue(session, cluster_id, logical_queue)
    data = _queue_values(changes, full=False)
    if "partition" in data and not data["partition"]:
        raise InvalidInput("partition: required")
    for key, value in data.items():
        setattr(queue, key, value)
    session.commit()
    return queue


def delete_queue(session: Session, cluster_id: int, logical_queue: str) -> None:
    queue = get_queue(session, cluster_id, logical_queue)
    session.delete(queue)
    session.commit()
