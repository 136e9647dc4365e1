"""Creating and changing users (the rules live here, not in routes)."""

from __future__ import annotations

import re

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hpcgate.auth.passwords import MIN_PASSWORD_LENGTH, hash_password
from hpcgate.db.models import User
from hpcgate.domain.access import NotifyLevel, Role
from hpcgate.errors import Conflict, InvalidInput

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
