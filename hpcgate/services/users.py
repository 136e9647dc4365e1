"""Creating and changing users (the rules live here, not in routes)."""

from __future__ import annotations

import re

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from hpcgate.auth.passwords import MIN_PASSWORD_LENGTH, hash_password
from hpcgate.auth.refresh import revoke_all_sessions
from hpcgate.db.models import Calculation, User
from hpcgate.domain.access import NotifyLevel, Role
from hpcgate.errors import Conflict, InvalidInput, NotFound

_EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}$")


def normalize_email(email: str) -> str:
    email = email.strip().lower()
    if not _EMAIL_RE.match(email) or "." not in email.rsplit("@", 1)[1]:
        raise InvalidInput(f"{email!r} is not a valid email address")
    return email


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"password must be at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > 1024:
        raise InvalidInput("password is too long")


def create_user(
    session: Session,
    *,
    email: str,
    password: str,
    role: Role = Role.USER,
    full_name: str = "",
    notify_level: NotifyLevel = NotifyLevel.ERROR,
) -> User:
    email = normalize_email(email)
    check_password(password)
    if session.scalar(select(func.count()).select_from(User).where(User.email == email)):
        raise Conflict(f"a user with email {email} already exists")
    user = User(
        email=email,
        full_name=full_name.strip()[:200],
        password_hash=hash_password(password),
        role=role,
        notify_level=notify_level,
    )
    session.add(user)
    session.flush()
    return user


def get_user_by_email(session: Session, email: str) -> User | None:
    return session.scalar(select(User).where(User.email == email.strip().lower()))


def list_users(
    session: Session,
    *,
    text: str | None = None,
    role: Role | None = None,
    blocked: bool | None = None,
    limit: int,
    offset: int,
) -> tuple[list[User], int]:
    """One page of accounts by e-mail, and how many match; ``text`` is part of the e-mail
    or the name."""
    stmt = select(User)
    if text:
        pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        stmt = stmt.where(
            or_(
                User.email.ilike(pattern, escape="\\"),
                User.full_name.ilike(pattern, escape="\\"),
            )
        )
    if role is not None:
        stmt = stmt.where(User.role == role)
    if blocked is not None:
        stmt = stmt.where(User.blocked.is_(blocked))
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    items = list(session.scalars(stmt.order_by(User.email).limit(limit).offset(offset)))
    return items, total


def get_user(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"user {user_id} not found")
    return user


def update_user(
    session: Session,
    target: User,
    *,
    role: Role | None = None,
    full_name: str | None = None,
    notify_level: NotifyLevel | None = None,
    project: str | None = None,
) -> User:
    """Change what is given; a changed role revokes the user's sessions."""
    if role is not None and role != target.role:
        target.role = role
        # A demoted user's tokens must not keep the old role's reach in other processes.
        revoke_all_sessions(session, target)
    if full_name is not None:
        target.full_name = full_name.strip()
    if notify_level is not None:
        target.notify_level = notify_level
    if project is not None:
        target.project = project.strip() or None
    return target


def delete_user(session: Session, target: User) -> None:
    """Accounts owning calculations are kept (block them instead): the results stay theirs."""
    owned = session.scalar(
        select(func.count()).select_from(Calculation).where(Calculation.owner_id == target.id)
    )
    if owned:
        raise Conflict(f"user owns {owned} calculation(s); block the account instead")
    session.delete(target)


def set_password(session: Session, target: User, password: str) -> User:
    """Set another user's password; their sessions are revoked."""
    check_password(password)
    target.password_hash = hash_password(password)
    revoke_all_sessions(session, target)
    return target


def block_user(session: Session, target: User) -> User:
    """No login, refresh or request from the account any more."""
    target.blocked = True
    revoke_all_sessions(session, target)
    return target


def unblock_user(target: User) -> User:
    """Also lifts a login lockout (``hpcgate/auth/lockout.py``), so a user kept locked by
    someone guessing can get back in."""
    target.blocked = False
    target.failed_logins = 0
    target.locked_until = None
    return target
