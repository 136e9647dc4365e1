"""Every route's dependencies: its session and settings, and who is calling.

Session and settings are ``async`` because neither needs I/O to start: FastAPI runs a *sync*
dependency in the thread pool, and each hop there costs about as much CPU as a small query. A
session checks out its connection on its first query (in the route's or a dependency's
thread); at the end of the request, a session with an open transaction is committed (or
rolled back) in a worker thread, and one that has none left (the route committed) is closed
without a hop.

Who may do what is decided by ``hpcgate.domain.access`` (the one policy table); routes
declare what they need with these aliases and never compare roles themselves:

- ``CurrentUser``: any logged-in, non-blocked user (``Authorization: Bearer <access JWT>``);
- ``May...`` (``MayApproveCalculations``, ``MayManageClusters``, ...), or
  ``Annotated[User, Depends(permitted(Action.X))]``: a user who may do ``X`` on any resource;
- ``ManagedUser``: the ``{user_id}`` account, when the caller may manage it
  (``Action.USER_MANAGE`` on that account);
- ``AgentCluster``: the cluster owning the presented agent API key (an ``AgentIdentity``)
  (``Authorization: Bearer hpcg_...`` or ``X-API-Key: hpcg_...``);
- ``MlApiKey``: the ``ApiKey`` of the ML-API (same two headers);
- ``PredictionWriter``: the ML-API's key or a user who may ``prediction.write``
  (``POST /predictions``);
- ``MetricsReader``: the Prometheus scrape token or a user who may ``metrics.read``.

Owner-scoped rules (rename or cancel a calculation) need the resource, so the service asks
``may`` with it. Failures: no or invalid credentials -> 401 (``Unauthorized``); valid
credentials without the permission, or a key of the wrong owner kind -> 403 (``Forbidden``).

Every user request loads the user by primary key, so blocking a user, changing their role
or revoking their sessions takes effect on the next request, not when the token expires.
The role claim inside the token is informational; the database is the authority here.
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from functools import cache
from typing import Annotated

import anyio
from fastapi import Depends, Path, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from hpcgate.auth.jwt import verify_access_token
from hpcgate.db.models import ApiKey, User
from hpcgate.domain.access import Action, ApiKeyOwner, may, may_some, refusal, require
from hpcgate.errors import Forbidden, NotFound, Unauthorized
from hpcgate.services.api_keys import AgentIdentity, authenticate_agent, authenticate_api_key
from hpcgate.settings import Settings

# ------------------------------------------------------------------ session and settings


async def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _finish(session: Session, commit: bool) -> None:
    try:
        if commit:
            session.commit()
        else:
            session.rollback()
    finally:
        session.close()


async def get_session(request: Request) -> AsyncIterator[Session]:
    factory: sessionmaker[Session] = request.app.state.sessionmaker
    session = factory()
    commit = False
    try:
        yield session
        commit = True
    finally:
        if session.in_transaction():
            # Shielded: a cancelled request (client gone) still ends its transaction.
            with anyio.CancelScope(shield=True):
                await run_in_threadpool(_finish, session, commit)
        else:
            session.close()  # nothing to end: no I/O


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
# scope="function": commit BEFORE the response is sent. An agent acts on a 200 (e.g. calls
# sbatch after "submitting" was acknowledged), so the change must be durable by then.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]

# ------------------------------------------------------------------ who is calling

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
def permitted(action: Action) -> Callable[[User], User]:
    """A dependency admitting users who may do ``action`` on any resource (one function
    object per action, so FastAPI and the RBAC test can recognise it)."""

    def dependency(user: CurrentUser) -> User:
        require(action, user)
        return user

    dependency.__name__ = f"may_{action.name.lower()}"
    return dependency


MayApproveCalculations = Annotated[User, Depends(permitted(Action.CALCULATION_APPROVE))]
MayPrioritizeCalculations = Annotated[User, Depends(permitted(Action.CALCULATION_PRIORITIZE))]
MayReadUsers = Annotated[User, Depends(permitted(Action.USER_READ))]
MayAdministerUsers = Annotated[User, Depends(permitted(Action.USER_ADMINISTER))]
MayManageClusters = Annotated[User, Depends(permitted(Action.CLUSTER_MANAGE))]
MayManageApiKeys = Annotated[User, Depends(permitted(Action.API_KEY_MANAGE))]
MayReadModels = Annotated[User, Depends(permitted(Action.ML_MODEL_READ))]
MayManageModels = Annotated[User, Depends(permitted(Action.ML_MODEL_MANAGE))]
MayManageNotifications = Annotated[User, Depends(permitted(Action.NOTIFICATION_MANAGE))]
MayDeleteLogs = Annotated[User, Depends(permitted(Action.LOG_DELETE))]


def get_managed_user(
    user_id: Annotated[int, Path(ge=1, le=2**63 - 1)], actor: CurrentUser, session: SessionDep
) -> User:
    """The ``{user_id}`` account, if the caller may manage it (``Action.USER_MANAGE``).

    Moderators manage plain users only; admins manage everyone. Nobody manages their own
    account through ``/users/{id}`` (that is ``/auth/me``), so an admin cannot lock
    themselves out by blocking, demoting or deleting their own account. A caller who may
    manage nobody gets 403 before the lookup (never a 404 that confirms an id); routes
    that take more (``MayAdministerUsers``) list it *before* this, so a moderator gets 403.
    """
    if not may_some(Action.USER_MANAGE, actor):
        raise Forbidden(refusal(Action.USER_MANAGE))
    target = session.get(User, user_id)
    if target is None:
        raise NotFound(f"user {user_id} not found")
    if target.id == actor.id:
        raise Forbidden("use /auth/me to change your own account")
    require(Action.USER_MANAGE, actor, target, message="moderators can manage plain users only")
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
    """Only the ML-API's key or a user who may ``prediction.write`` (admins): predictions
    appear next to real results, so a user must not plant one (the ML-API stores what a
    model really answered)."""
    raw = _raw_key(header, bearer)
    if header or (raw is not None and raw.startswith("hpcg_")):
        authenticate_api_key(session, raw, ApiKeyOwner.ML_API)
        return PredictionAuthor(via_ml_api=True)
    user = get_current_user(session, settings, user_bearer)
    if not may(Action.PREDICTION_WRITE, user):
        raise Forbidden("only the ML-API (with its API key) or an admin writes predictions")
    return PredictionAuthor(via_ml_api=False, admin_id=user.id)


PredictionWriter = Annotated[PredictionAuthor, Depends(get_prediction_writer)]


def get_metrics_reader(
    session: SessionDep, settings: SettingsDep, credentials: BearerCredentials
) -> None:
    """The Prometheus scrape token (``metrics.token``), or a user who may ``metrics.read``:
    the numbers say who runs how much where, so they are not public."""
    token = settings.metrics.token
    presented = credentials.credentials if credentials else ""
    if token and hmac.compare_digest(presented, token.get_secret_value()):
        return
    require(Action.METRICS_READ, get_current_user(session, settings, credentials))


MetricsReader = Annotated[None, Depends(get_metrics_reader)]
