"""Who is calling the ML-API and what they may do: the ML-API's route dependencies.

The caller is the main API's answer to ``GET /auth/me`` (``ml/identity.py``), never the
token's claims; what they may do is ``hpcgate.domain.access.may`` - the same policy table
the main API enforces. 401: no or bad token (or refused by the main API); 403: the role
may not do the action.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import cache
from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from hpcgate.auth.jwt import verify_access_token
from hpcgate.domain.access import Action, require
from hpcgate.errors import Unauthorized
from ml.identity import CallerIdentity, IdentityLookup
from ml.manager import ModelManager

ModelId = Annotated[int, Path(ge=1, le=2**63 - 1)]
_bearer = HTTPBearer(auto_error=False, scheme_name="AccessToken")


async def get_caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> CallerIdentity:
    """The caller as the main API sees them now (the token's own claims are not trusted)."""
    if credentials is None or not credentials.credentials:
        raise Unauthorized("not authenticated: send Authorization: Bearer <access token>")
    # garbage never leaves this process: signature, expiry and issuer first
    verify_access_token(credentials.credentials, request.app.state.settings)
    identity: IdentityLookup = request.app.state.identity
    return await identity.caller(credentials.credentials)


Caller = Annotated[CallerIdentity, Depends(get_caller)]


@cache
def permitted(action: Action) -> Callable[[CallerIdentity], Awaitable[CallerIdentity]]:
    """A dependency admitting callers who may do ``action`` (one object per action)."""

    async def dependency(caller: Caller) -> CallerIdentity:
        require(action, caller)
        return caller

    dependency.__name__ = f"may_{action.name.lower()}"
    return dependency


MayReadModels = Annotated[CallerIdentity, Depends(permitted(Action.ML_MODEL_READ))]
MayInvokeModels = Annotated[CallerIdentity, Depends(permitted(Action.ML_MODEL_INVOKE))]
MayManageModels = Annotated[CallerIdentity, Depends(permitted(Action.ML_MODEL_MANAGE))]


async def get_manager(request: Request) -> ModelManager:
    manager: ModelManager = request.app.state.manager
    return manager


Manager = Annotated[ModelManager, Depends(get_manager)]
