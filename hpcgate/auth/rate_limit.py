"""Login rate limits: sliding windows counted in PostgreSQL, so every API process shares them.

Three windows are checked for every login attempt, before any password is hashed
(``login_limits``):

* per client address (``login-ip:<ip>``, ``auth.login_ip_limit``): one client spraying
  random e-mails;
* per e-mail and client address (``login:<email>|<ip>``, ``auth.login_rate_per_minute``):
  guessing one account's password;
* for the whole service (``login-global``, ``auth.login_global_limit``): many clients at
  once; this bounds the argon2 hashes per minute, whatever the flood.

One row per accepted attempt and window in ``login_attempts``. An attempt is refused (429 with
``Retry-After``) when any of its windows already holds its limit of attempts in the last 60 s;
a refused attempt is recorded in none of them, so a client that keeps hammering is let in again
exactly when the windows allow, and a flood stopped per address does not eat the global budget.

Concurrency: a transaction-scoped advisory lock per key serialises the count-then-insert of
processes racing on the same key; keys are locked in one fixed order (address, e-mail,
global), so two attempts never wait for each other in a cycle. The check runs in its own short
transaction (committed even when the login then fails). Old rows are deleted on the way (index
on ``at``), so the table stays small without a separate job.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from hpcgate.db.models.users import LoginAttempt
from hpcgate.db.session import session_scope
from hpcgate.errors import RateLimited
from hpcgate.settings import AuthSettings

WINDOW = timedelta(seconds=60)
_MAX_KEY = 400


class LoginRateLimited(RateLimited):
    def __init__(self, retry_after: int) -> None:
        super().__init__(
            f"too many login attempts; retry in {retry_after} s", retry_after=retry_after
        )
        self.retry_after = retry_after


@dataclass(frozen=True)
class Window:
    """At most ``limit`` attempts per ``key`` in the sliding window."""

    key: str
    limit: int


GLOBAL_KEY = "login-global"


def login_key(email: str, client_ip: str | None) -> str:
    return f"login:{email.strip().lower()}|{client_ip or '-'}"[:_MAX_KEY]


def ip_key(client_ip: str | None) -> str:
    return f"login-ip:{client_ip or '-'}"[:_MAX_KEY]


def login_limits(email: str, client_ip: str | None, auth: AuthSettings) -> list[Window]:
    """The windows of one login attempt, in the order they are locked and checked."""
    return [
        Window(ip_key(client_ip), auth.login_ip_limit),
        Window(login_key(email, client_ip), auth.login_rate_per_minute),
        Window(GLOBAL_KEY, auth.login_global_limit),
    ]


def hit(
    factory: sessionmaker[Session],
    key: str,
    *,
    limit: int,
    window: timedelta = WINDOW,
    now: datetime | None = None,
) -> None:
    """Record one attempt for ``key`` or raise ``LoginRateLimited`` (the attempt not recorded)."""
    hit_all(factory, [Window(key, limit)], window=window, now=now)


def hit_all(
    factory: sessionmaker[Session],
    windows: Sequence[Window],
    *,
    window: timedelta = WINDOW,
    now: datetime | None = None,
) -> None:
    """Record one attempt in every window, or in none and raise ``LoginRateLimited``.

    Windows are checked in order and the first full one refuses at once, so an address that
    is over its own limit never takes the global lock.
    """
    now = now or datetime.now(UTC)
    cutoff = now - window
    with session_scope(factory) as session:
        for w in windows:
            key = w.key[:_MAX_KEY]
            session.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(key, 7))))
            # the limit-th newest attempt in the window, if there are that many
            nth = session.scalar(
                select(LoginAttempt.at)
                .where(LoginAttempt.key == key, LoginAttempt.at > cutoff)
                .order_by(LoginAttempt.at.desc())
                .offset(w.limit - 1)
                .limit(1)
            )
            if nth is not None:
                wait = (nth + window - now).total_seconds()
                raise LoginRateLimited(max(1, math.ceil(wait)))
        # Only now, holding every lock: two attempts deleting the same old rows while each
        # waited for the other's advisory lock would deadlock.
        session.execute(delete(LoginAttempt).where(LoginAttempt.at < now - 10 * window))
        session.add_all(LoginAttempt(key=w.key[:_MAX_KEY], at=now) for w in windows)


def reset(factory: sessionmaker[Session], key: str) -> None:
    """Forget the attempts of ``key`` (after a successful login)."""
    with session_scope(factory) as session:
        session.execute(delete(LoginAttempt).where(LoginAttempt.key == key[:_MAX_KEY]))
