"""User administration. Admins: list/create/delete/change role; moderators: block and set
passwords of plain users. Everyone edits their own account through ``/auth/me``.

Who may act on whom is decided in ``deps`` (``MayAdministerUsers``, ``MayReadUsers``,
``ManagedUser``); these handlers only apply the change. Each commits before answering.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response

from hpcgate.api.deps import ManagedUser, MayAdministerUsers, MayReadUsers, SessionDep
from hpcgate.api.schemas.users import PasswordSet, UserCreate, UserOut, UserPage, UserUpdate
from hpcgate.auth.refresh import revoke_all_sessions
from hpcgate.db.models import User
from hpcgate.domain.access import Role
from hpcgate.services import users as svc

router = APIRouter(prefix="/users", tags=["users"])

UserId = Annotated[int, Path(ge=1, le=2**63 - 1)]


@router.get("", response_model=UserPage)
def list_users(
    _: MayReadUsers,
    session: SessionDep,
    q: Annotated[str | None, Query(max_length=320, description="part of e-mail or name")] = None,
    role: Role | None = None,
    blocked: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> dict[str, Any]:
    """Accounts, by e-mail (moderators need the list to find whom to block)."""
    items, total = svc.list_users(
        session, text=q, role=role, blocked=blocked, limit=limit, offset=offset
    )
    return {"items": items, "total": total}


@router.post("", response_model=UserOut, status_code=201)
def create_user_route(body: UserCreate, _: MayAdministerUsers, session: SessionDep) -> User:
    """Create an account (admin)."""
    user = svc.create_user(
        session,
        email=body.email,
        password=body.password,
        role=body.role,
        full_name=body.full_name,
        notify_level=body.notify_level,
    )
    session.commit()
    return user


@router.get("/{user_id}", response_model=UserOut)
def get_user(_: MayReadUsers, user_id: UserId, session: SessionDep) -> User:
    """One account (moderator+)."""
    return svc.get_user(session, user_id)


@router.patch("/{user_id}", response_model=UserOut)
def update_user(
    body: UserUpdate, _: MayAdministerUsers, target: ManagedUser, session: SessionDep
) -> User:
    """Change another account's role, name or notification level (admin)."""
    svc.update_user(
        session,
        target,
        role=body.role,
        full_name=body.full_name,
        notify_level=body.notify_level,
        project=body.project,
    )
    session.commit()
    return target


@router.delete("/{user_id}", status_code=204)
def delete_user(_: MayAdministerUsers, target: ManagedUser, session: SessionDep) -> Response:
    """Delete an account (admin). Accounts owning calculations are blocked instead."""
    svc.delete_user(session, target)
    session.commit()
    return Response(status_code=204)


@router.put("/{user_id}/password", response_model=UserOut)
def set_password(body: PasswordSet, target: ManagedUser, session: SessionDep) -> User:
    """Set another user's password (moderator+); their sessions are revoked."""
    svc.set_password(session, target, body.password)
    session.commit()
    return target


@router.post("/{user_id}/block", response_model=UserOut)
def block_user(target: ManagedUser, session: SessionDep) -> User:
    """Block an account (moderator+): no login, refresh or request from it any more."""
    svc.block_user(session, target)
    session.commit()
    return target


@router.post("/{user_id}/unblock", response_model=UserOut)
def unblock_user(target: ManagedUser, session: SessionDep) -> User:
    """Unblock an account (moderator+); the user logs in again. Also lifts a login lockout
    (``hpcgate/auth/lockout.py``), so a user kept locked by someone guessing can get back in."""
    svc.unblock_user(target)
    session.commit()
    return target


@router.post("/{user_id}/revoke-sessions")
def revoke_sessions(
    _: MayAdministerUsers, target: ManagedUser, session: SessionDep
) -> dict[str, int]:
    """Log a user out everywhere (admin): refresh tokens revoked, access tokens refused."""
    revoked = revoke_all_sessions(session, target)
    session.commit()
    return {"revoked_refresh_tokens": revoked}
