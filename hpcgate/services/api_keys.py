"""API keys for cluster agents and the ML-API: create, list, rotate, revoke, authenticate.

A key belongs to a cluster (``owner_kind=cluster``) or to the ML-API (``owner_kind=ml_api``).
Revocation sets ``revoked_at``; a key is valid while ``revoked_at`` is null or in the future.
That is how rotation offers an optional grace period: the new key is valid at once and the
old one stops at ``now + grace`` (0 by default: immediately), so an agent can be switched
over without a gap. Rows are never deleted (an audit trail of who had access); deleting a
cluster deletes its keys.

Use-case functions commit (they are whole units of work called from the API); the
authentication helpers don't (they run inside the request's transaction).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from hpcgate.auth.api_keys import GeneratedKey, generate_key, parse_key, secret_matches
from hpcgate.db.base import table_of
from hpcgate.db.models import ApiKey, Cluster
from hpcgate.domain.access import ApiKeyOwner
from hpcgate.errors import Forbidden, InvalidInput, NotFound, Unauthorized

MAX_GRACE = timedelta(hours=24)
LAST_USED_RESOLUTION = timedelta(minutes=1)


def _unique_key(session: Session) -> GeneratedKey:
    for _ in range(10):
        generated = generate_key()
        if session.scalar(select(ApiKey.id).where(ApiKey.prefix == generated.prefix)) is None:
            return generated
    raise RuntimeError("could not draw a unique API key prefix")  # 36^8: practically never


def is_active(key: ApiKey, now: datetime | None = None) -> bool:
    return _live(key.revoked_at, now or datetime.now(UTC))


def _live(revoked_at: datetime | None, now: datetime) -> bool:
    return revoked_at is None or revoked_at > now


def _check_owner(session: Session, owner_kind: ApiKeyOwner, cluster_id: int | None) -> None:
    if owner_kind is ApiKeyOwner.CLUSTER:
        if cluster_id is None:
            raise InvalidInput("a cluster key needs a cluster")
        if session.get(Cluster, cluster_id) is None:
            raise NotFound(f"cluster {cluster_id} not found")
    elif cluster_id is not None:
        raise InvalidInput("an ML-API key belongs to no cluster")


def create_api_key(
    session: Session, *, owner_kind: ApiKeyOwner, name: str, cluster_id: int | None = None
) -> tuple[ApiKey, str]:
    """A new key and its raw value (shown once; only its hash is kept)."""
    _check_owner(session, owner_kind, cluster_id)
    generated = _unique_key(session)
    key = ApiKey(
        name=name.strip() or "key",
        owner_kind=owner_kind,
        cluster_id=cluster_id,
        prefix=generated.prefix,
        key_hash=generated.key_hash,
    )
    session.add(key)
    session.commit()
    return key, generated.raw


def list_api_keys(
    session: Session, *, owner_kind: ApiKeyOwner, cluster_id: int | None = None
) -> list[ApiKey]:
    _check_owner(session, owner_kind, cluster_id)
    stmt = select(ApiKey).where(ApiKey.owner_kind == owner_kind)
    if cluster_id is not None:
        stmt = stmt.where(ApiKey.cluster_id == cluster_id)
    return list(session.scalars(stmt.order_by(ApiKey.id)))


def get_api_key(
    session: Session, key_id: int, *, owner_kind: ApiKeyOwner, cluster_id: int | None = None
) -> ApiKey:
    key = session.get(ApiKey, key_id)
    if key is None or key.owner_kind != owner_kind or key.cluster_id != cluster_id:
        raise NotFound(f"API key {key_id} not found")
    return key


def revoke_api_key(
    session: Session, key_id: int, *, owner_kind: ApiKeyOwner, cluster_id: int | None = None
) -> ApiKey:
    key = get_api_key(session, key_id, owner_kind=owner_kind, cluster_id=cluster_id)
    now = datetime.now(UTC)
    if key.revoked_at is None or key.revoked_at > now:
        key.revoked_at = now
    session.commit()
    return key


def rotate_api_key(
    session: Session,
    key_id: int,
    *,
    owner_kind: ApiKeyOwner,
    cluster_id: int | None = None,
    grace: timedelta = timedelta(0),
) -> tuple[ApiKey, str]:
    """Issue a replacement (same name and owner); the old key stops after ``grace``."""
    if grace < timedelta(0) or grace > MAX_GRACE:
        raise InvalidInput(f"grace period must be between 0 and {int(MAX_GRACE.total_seconds())} s")
    old = get_api_key(session, key_id, owner_kind=owner_kind, cluster_id=cluster_id)
    now = datetime.now(UTC)
    if not is_active(old, now):
        raise InvalidInput(f"API key {key_id} is revoked; create a new key instead")
    generated = _unique_key(session)
    new = ApiKey(
        name=old.name,
        owner_kind=old.owner_kind,
        cluster_id=old.cluster_id,
        prefix=generated.prefix,
        key_hash=generated.key_hash,
    )
    session.add(new)
    old.revoked_at = now + grace
    session.commit()
    return new, generated.raw


def authenticate_api_key(
    session: Session, raw: str | None, owner_kind: ApiKeyOwner, *, now: datetime | None = None
) -> ApiKey:
    """The live key matching ``raw`` for ``owner_kind``; records ``last_used_at`` (1/min).

    ``Unauthorized`` for a missing, malformed, unknown, wrong or revoked key; ``Forbidden``
    for a valid key of the other owner kind (a cluster key on an ML-API route).
    """
    prefix, secret = _parse(raw)
    key = session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
    now = now or datetime.now(UTC)
    if key is None:
        raise Unauthorized("invalid API key")
    _verify(secret, key.key_hash, key.revoked_at, key.owner_kind, owner_kind, now)
    if _touch(session, key.id, key.last_used_at, now):
        set_committed_value(key, "last_used_at", now)
    return key


@dataclass(frozen=True)
class AgentIdentity:
    """The cluster an agent call comes from, as plain values: no ORM entity on the hot path."""

    id: int
    name: str
    enabled: bool
    cleanup_policy: dict[str, Any]


_kt, _ct = table_of(ApiKey), table_of(Cluster)
# Every agent call runs this: built once (Core, cache key memoised), one indexed lookup.
_AGENT_KEY = (
    select(
        _kt.c.id,
        _kt.c.key_hash,
        _kt.c.revoked_at,
        _kt.c.owner_kind,
        _kt.c.last_used_at,
        _ct.c.id.label("cluster_id"),
        _ct.c.name,
        _ct.c.enabled,
        _ct.c.cleanup_policy,
    )
    .select_from(_kt.outerjoin(_ct, _ct.c.id == _kt.c.cluster_id))
    .where(_kt.c.prefix == bindparam("prefix"))
)


def authenticate_agent(session: Session, raw: str | None) -> AgentIdentity:
    """The cluster of a live agent key: key and cluster in ONE query (every agent call)."""
    prefix, secret = _parse(raw)
    row = session.connection().execute(_AGENT_KEY, {"prefix": prefix}).first()
    if row is None:
        raise Unauthorized("invalid API key")
    now = datetime.now(UTC)
    _verify(secret, row.key_hash, row.revoked_at, row.owner_kind, ApiKeyOwner.CLUSTER, now)
    _touch(session, row.id, row.last_used_at, now)
    if row.cluster_id is None:
        raise Unauthorized("API key's cluster no longer exists")
    return AgentIdentity(row.cluster_id, row.name, row.enabled, dict(row.cleanup_policy or {}))


def _parse(raw: str | None) -> tuple[str, str]:
    parsed = parse_key(raw)
    if parsed is None:
        raise Unauthorized("missing or malformed API key")
    return parsed


def _verify(
    secret: str,
    key_hash: str,
    revoked_at: datetime | None,
    owner_kind: ApiKeyOwner,
    wanted: ApiKeyOwner,
    now: datetime,
) -> None:
    if not secret_matches(secret, key_hash):
        raise Unauthorized("invalid API key")
    if not _live(revoked_at, now):
        raise Unauthorized("API key revoked")
    if owner_kind != wanted:
        raise Forbidden(f"this API key belongs to a {owner_kind.value}, not a {wanted.value}")


_TOUCH = (
    update(_kt)
    .where(
        _kt.c.id == bindparam("key_id"),
        or_(_kt.c.last_used_at.is_(None), _kt.c.last_used_at < bindparam("stale_before")),
    )
    # updated_at tracks configuration changes, not use.
    .values(last_used_at=bindparam("now"), updated_at=_kt.c.updated_at)
)


def _touch(session: Session, key_id: int, last_used_at: datetime | None, now: datetime) -> bool:
    """At most one write per key per minute, whatever the request rate (conditional UPDATE)."""
    if last_used_at is not None and now - last_used_at < LAST_USED_RESOLUTION:
        return False
    session.connection().execute(
        _TOUCH, {"key_id": key_id, "stale_before": now - LAST_USED_RESOLUTION, "now": now}
    )
    return True
