"""Rotating refresh tokens: opaque, stored as a SHA-256 hash, grouped in families.

- Login starts a family (``family_id``); every ``/auth/refresh`` marks the presented token
  ``rotated_at`` and issues a new one in the same family.
- Presenting a token that was already rotated means it was copied: the whole family is
  revoked (theft detection, as in RFC 6819 5.2.2.3 / OAuth 2.0 Security BCP 4.14) and the
  caller gets 401. The revocation is committed *before* raising, so it survives the request's
  rollback.
- Logout revokes the family and every access token of the user issued so far
  (``users.sessions_revoked_at``, checked by the auth dependency on its one user lookup);
  other logins of the user get a fresh access token from their own refresh cookie.
  "Revoke all sessions" and a password change revoke every family and access token.
- A family lives at most ``auth.refresh_family_max_days`` from its login, however often it
  is refreshed (``family_started_at``, copied on each rotation).

The token travels only in the ``hpcgate_refresh`` cookie (httpOnly, Secure, SameSite=Strict,
``Path=/auth``), so page scripts never see it and no other path receives it.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from hpcgate.db.models import RefreshToken, User
from hpcgate.errors import Unauthorized
from hpcgate.settings import Settings

COOKIE_NAME = "hpcgate_refresh"
COOKIE_PATH = "/auth"
_MAX_TOKEN_LENGTH = 256


def hash_token(token: str) -> str:
    """SHA-256 is enough: the token is 256 random bits, so there is nothing to brute-force."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class IssuedRefresh:
    token: str
    family_id: str
    expires_at: datetime


def issue_refresh_token(
    session: Session,
    user: User,
    settings: Settings,
    *,
    family_id: str | None = None,
    family_started_at: datetime | None = None,
    now: datetime | None = None,
) -> IssuedRefresh:
    now = now or datetime.now(UTC)
    token = secrets.token_urlsafe(32)
    family = family_id or uuid.uuid4().hex
    started = family_started_at or now
    expires = min(
        now + timedelta(days=settings.auth.refresh_token_days),
        started + timedelta(days=settings.auth.refresh_family_max_days),
    )
    session.add(
        RefreshToken(
            user_id=user.id,
            family_id=family,
            token_hash=hash_token(token),
            issued_at=now,
            expires_at=expires,
            family_started_at=started,
        )
    )
    session.flush()
    return IssuedRefresh(token=token, family_id=family, expires_at=expires)


def revoke_family(session: Session, family_id: str, *, now: datetime | None = None) -> int:
    result = session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now or datetime.now(UTC))
    )
    return int(getattr(result, "rowcount", 0) or 0)


def revoke_user_refresh_tokens(
    session: Session, user_id: int, *, except_family: str | None = None
) -> int:
    stmt = update(RefreshToken).where(
        RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None)
    )
    if except_family is not None:
        stmt = stmt.where(RefreshToken.family_id != except_family)
    result = session.execute(stmt.values(revoked_at=datetime.now(UTC)))
    return int(getattr(result, "rowcount", 0) or 0)


def find_token(session: Session, token: str | None, *, lock: bool = False) -> RefreshToken | None:
    if not token or len(token) > _MAX_TOKEN_LENGTH:
        return None
    stmt = select(RefreshToken).where(RefreshToken.token_hash == hash_token(token))
    if lock:
        stmt = stmt.with_for_update()
    return session.scalar(stmt)


def rotate_refresh_token(
    session: Session, token: str | None, settings: Settings, *, now: datetime | None = None
) -> tuple[User, IssuedRefresh]:
    """Exchange a live refresh token for a new one of the same family (and commit).

    Raises ``Unauthorized`` for an unknown, expired or revoked token, a blocked user, and
    for the reuse of a rotated token - after revoking (and committing) its whole family.
    """
    now = now or datetime.now(UTC)
    row = find_token(session, token, lock=True)
    if row is None:
        raise Unauthorized("unknown refresh token")
    if row.revoked_at is not None:
        raise Unauthorized("refresh token revoked")
    if row.rotated_at is not None:
        revoke_family(session, row.family_id, now=now)
        session.commit()
        raise Unauthorized("refresh token reused: every session of this login was revoked")
    if row.expires_at <= now:
        raise Unauthorized("refresh token expired")
    if row.family_started_at + timedelta(days=settings.auth.refresh_family_max_days) <= now:
        revoke_family(session, row.family_id, now=now)
        session.commit()
        raise Unauthorized("this login is too old: log in again")
    user = session.get(User, row.user_id)
    if user is None or user.blocked:
        revoke_family(session, row.family_id, now=now)
        session.commit()
        raise Unauthorized("account blocked or deleted")
    row.rotated_at = now
    issued = issue_refresh_token(
        session,
        user,
        settings,
        family_id=row.family_id,
        family_started_at=row.family_started_at,
        now=now,
    )
    session.commit()
    return user, issued


def logout(session: Session, token: str | None, *, user_id: int | None = None) -> bool:
    """Revoke the family of ``token`` and the user's access tokens issued so far (and commit).

    ``user_id``: the user of a valid access token sent with the logout, revoked even when the
    cookie is missing. Unknown tokens are ignored.
    """
    now = datetime.now(UTC)
    row = find_token(session, token)
    users = {user_id} if user_id is not None else set()
    if row is not None:
        revoke_family(session, row.family_id, now=now)
        users.add(row.user_id)
    for uid in users:
        user = session.get(User, uid)
        if user is not None:
            user.sessions_revoked_at = now
    session.commit()
    return bool(users)


def revoke_all_sessions(session: Session, user: User, *, now: datetime | None = None) -> int:
    """Every refresh token of ``user`` revoked, and every access token issued so far refused.

    Does not commit: callers compose it with blocking or a password change.
    """
    user.sessions_revoked_at = now or datetime.now(UTC)
    count = revoke_user_refresh_tokens(session, user.id)
    session.flush()
    return count
