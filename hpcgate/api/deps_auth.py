"""Who is calling: the ONE place where authentication and roles are enforced.

Routes declare what they need with these aliases and never compare roles themselves:

- ``CurrentUser``: any logged-in, non-blocked user (``Authorization: Bearer <access JWT>``);
- ``ModeratorUser``, ``AdminUser`` or ``Annotated[User, Depends(require_role(Role.X))]``:
  that role or higher (ranks: user < moderator < admin);
- ``AgentCluster``: the cluster owning the presented agent API key (an ``AgentIdentity``)
  (``Authorization: Bearer hpcg_...`` or ``X-API-Key: hpcg_...``);
- ``MlApiKey``: the ``ApiKey`` of the ML-API (same two headers);
- ``PredictionWriter``: the ML-API's key or an admin's access token (``POST /predictions``);
- ``ManagedUser``: the ``{user_id}`` account, when the caller (moderator+) may manage it.

Failures: no or invalid credentials -> 401 (``Unauthorized``); valid credentials without
the required role, or a key of the wrong owner kind -> 403 (``Forbidden``).

Every user request loads the user by primary key, so blocking a user, changing their role
or revoking their sessions takes effect on the next request, not when the token expires.
The role claim inside the token is informational (for the ML-API); the database is the
authority here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Annotated

from fastapi import Depends, Path
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from hpcgate.api.deps import SessionDep, SettingsDep
from hpcgate.auth.jwt import verify_access_token
from hpcgate.db.models import ApiKey, User
from hpcgate.db.models.users import ApiKeyOwner, Role
from hpcgate.errors import Forbidden, NotFound, Unauthorized
from hpcgate.services.api_keys import AgentIdentity, authenticate_agent, authenticate_api_key

# Distinct scheme names so the OpenAPI document says which credential each route takes.
_user_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="AccessToken",
    description="Access JWT from POST /auth/login or POST /auth/refresh",
)
_key_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKeyBearer",
    description="API key `hpcg_<prefix>_<secret>` as a bearer token",
)
_key_header = APIKeyHeader(
    name="X-API-Key",
    auto_error=False,
    scheme_name="ApiKeyHeader",
    description="API key `hpcg_<prefix>_<secret>`",
)

BearerCredentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_user_bearer)]
KeyBearerCredentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_key_bearer)]
KeyHeader = Annotated[str | None, Depends(_key_header)]


def get_current_user(
    session: SessionDep, settings: SettingsDep, credentials: BearerCredentials
) -> User:
    if credentials is None or not credentials.credentials:
        raise Unauthorized("not authenticated: send Authorization: Bearer <access token>")
    claims = verify_access_token(credentials.credentials, settings)
    user = session.get(User, claims.user_id)
    if user is None:
        raise Unauthorized("unknown user")
    if user.blocked:
        raise Unauthorized("account blocked")
    if user.sessions_revoked_at is not None and claims.issued_at <= user.sessions_revoked_at:
        raise Unauthorized("session revoked; log in again")
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]


@cache
def require_role(minimum: Role) -> Callable[[User], User]:
    """A dependency admitting ``minimum`` and higher roles (one function object per role)."""

    def dependency(user: CurrentUser) -> User:
        if Role(user.role).rank < minimum.rank:
            raise Forbidden(f"requires the {minimum.value} role")
        return user

    dependency.__name__ = f"require_{minimum.value}"
    return dependency


ModeratorUser = Annotated[User, Depends(require_role(Role.MODERATOR))]
AdminUser = Annotated[User, Depends(require_role(Role.ADMIN))]


def get_managed_user(
    user_id: Annotated[int, Path(ge=1, le=2**63 - 1)], actor: ModeratorUser, session: SessionDep
) -> User:
    """The ``{user_id}`` account, if the caller may manage it.

    Moderators manage plain users only; admins manage everyone. Nobody manages their own
    account through ``/users/{id}`` (that is ``/auth/me``), so an admin cannot lock
    themselves out by blocking, demoting or deleting their own account. Routes that are
    admin-only list ``AdminUser`` *before* this, so a moderator gets 403, not 404.
    """
    target = session.get(User, user_id)
    if target is None:
        raise NotFound(f"user {user_id} not found")
    if target.id == actor.id:
        raise Forbidden("use /auth/me to change your own account")
    if Role(actor.role) is not Role.ADMIN and Role(target.role).rank >= Role(actor.role).rank:
        raise Forbidden("moderators can manage plain users only")
    return target


ManagedUser = Annotated[User, Depends(get_managed_user)]


def _raw_key(header: str | None, bearer: HTTPAuthorizationCredentials | None) -> str | None:
    if header:
        return header
    return bearer.credentials if bearer is not None else None


def get_agent_cluster(
    session: SessionDep, header: KeyHeader, bearer: KeyBearerCredentials
) -> AgentIdentity:
    return authenticate_agent(session, _raw_key(header, bearer))


def get_ml_api_key(session: SessionDep, header: KeyHeader, bearer: KeyBearerCredentials) -> ApiKey:
    return authenticate_api_key(session, _raw_key(header, bearer), ApiKeyOwner.ML_API)


AgentCluster = Annotated[AgentIdentity, Depends(get_agent_cluster)]
MlApiKey = Annotated[ApiKey, Depends(get_ml_api_key)]


@dataclass(frozen=True)
class PredictionAuthor:
    """Who writes a prediction: the ML-API (its key) for a user it names, or an admin."""

    via_ml_api: bool
    admin_id: int | None = None


def get_prediction_writer(
    session: SessionDep,
    settings: SettingsDep,
    header: KeyHeader,
    bearer: KeyBearerCredentials,
    user_bearer: BearerCredentials,
) -> PredictionAuthor:
    """Only the ML-API's key or an admin: predictions appear next to real results, so a
    user must not plant one (the ML-API stores what a model really answered)."""
    raw = _raw_key(header, bearer)
    if header or (raw is not None and raw.startswith("hpcg_")):
        authenticate_api_key(session, raw, ApiKeyOwner.ML_API)
        return PredictionAuthor(via_ml_api=True)
    user = get_current_user(session, settings, user_bearer)
    if Role(user.role) is not Role.ADMIN:
        raise Forbidden("only the ML-API (with its API key) or an admin writes predictions")
    return PredictionAuthor(via_ml_api=False, admin_id=user.id)


PredictionWriter = Annotated[PredictionAuthor, Depends(get_prediction_writer)]

__all__ = [
    "AdminUser",
    "AgentCluster",
    "CurrentUser",
    "ManagedUser",
    "MlApiKey",
    "ModeratorUser",
    "PredictionWriter",
    "get_agent_cluster",
    "get_current_user",
    "get_managed_user",
    "get_ml_api_key",
    "get_prediction_writer",
    "require_role",
]
