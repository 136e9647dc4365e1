"""Short-lived JWT access tokens (HS256), issued by the API and verified by the API and the ML-API.

Contract, shared by every verifier (the ML-API imports ``verify_access_token`` and is given the
same ``HPCGATE_AUTH__SECRET_KEY``; it never issues tokens):

- algorithm ``HS256`` only, key ``settings.auth.secret_key`` (``alg=none`` and every other
  algorithm are refused, whatever the token header says);
- claims ``iss`` (``settings.auth.issuer``), ``sub`` (the user id, a string), ``role``, ``iat``,
  ``exp`` (``settings.auth.access_token_minutes`` after ``iat``), ``jti`` (random) and
  ``typ="access"`` - all required;
- a small ``leeway`` absorbs clock skew between processes.

Verification here is stateless. The API additionally loads the user on every request (one
primary-key lookup) so that a blocked user, a changed role or "revoke all sessions" takes
effect at once rather than when the token expires; see ``hpcgate/api/deps.py``.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

from hpcgate.domain.access import Role
from hpcgate.errors import Unauthorized
from hpcgate.settings import Settings

ALGORITHM = "HS256"
TOKEN_TYPE = "access"  # noqa: S105 - the ``typ`` claim, not a secret
DEFAULT_LEEWAY_S = 5
_REQUIRED = ["iss", "sub", "role", "iat", "exp", "jti", "typ"]


@dataclass(frozen=True)
class AccessClaims:
    user_id: int
    role: Role
    jti: str
    issued_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_in: int  # seconds
    claims: AccessClaims


def issue_access_token(
    user_id: int,
    role: Role | str,
    settings: Settings,
    *,
    now: datetime | None = None,
    lifetime: timedelta | None = None,
) -> IssuedToken:
    """Sign a new access token; ``now``/``lifetime`` exist for tests (e.g. an expired token)."""
    issued = now or datetime.now(UTC)
    ttl = (
        lifetime if lifetime is not None else timedelta(minutes=settings.auth.access_token_minutes)
    )
    expires = (issued + ttl).replace(microsecond=0)
    role = Role(role)
    jti = secrets.token_urlsafe(16)
    payload = {
        "iss": settings.auth.issuer,
        "sub": str(user_id),
        "role": role.value,
        # Sub-second ``iat`` (a NumericDate may be fractional, RFC 7519 section 2), so that
        # "revoke all sessions" refuses exactly the tokens issued before it.
        "iat": round(issued.timestamp(), 6),
        "exp": int(expires.timestamp()),
        "jti": jti,
        "typ": TOKEN_TYPE,
    }
    token = jwt.encode(payload, settings.auth.secret_key, algorithm=ALGORITHM)
    claims = AccessClaims(user_id=user_id, role=role, jti=jti, issued_at=issued, expires_at=expires)
    return IssuedToken(
        token=token, expires_in=max(int((expires - issued).total_seconds()), 0), claims=claims
    )


def verify_access_token(
    token: str, settings: Settings, *, leeway: float = DEFAULT_LEEWAY_S
) -> AccessClaims:
    """Return the claims of a valid access token, or raise ``Unauthorized`` (never anything else).

    Refused: another algorithm (``none`` included), a bad signature (wrong key, tampered
    header or payload), an expired token, another issuer, a missing claim, ``typ`` other
    than ``access``, a malformed ``sub`` or ``role``.
    """
    if not token or len(token) > 4096:
        raise Unauthorized("missing or oversized access token")
    try:
        payload = jwt.decode(
            token,
            settings.auth.secret_key,
            algorithms=[ALGORITHM],
            issuer=settings.auth.issuer,
            leeway=leeway,
            options={"require": _REQUIRED},
        )
    except jwt.ExpiredSignatureError:
        raise Unauthorized("access token expired") from None
    except jwt.PyJWTError:
        raise Unauthorized("invalid access token") from None
    if payload.get("typ") != TOKEN_TYPE:
        raise Unauthorized("not an access token")
    try:
        user_id = int(payload["sub"])
        role = Role(payload["role"])
        issued_at = datetime.fromtimestamp(float(payload["iat"]), UTC)
        expires_at = datetime.fromtimestamp(int(payload["exp"]), UTC)
        jti = str(payload["jti"])
    except (TypeError, ValueError, OverflowError, OSError):
        raise Unauthorized("invalid access token claims") from None
    if user_id <= 0:
        raise Unauthorized("invalid access token claims")
    return AccessClaims(
        user_id=user_id, role=role, jti=jti, issued_at=issued_at, expires_at=expires_at
    )
