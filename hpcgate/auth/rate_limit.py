"""Login rate limit: a sliding window counted in PostgreSQL, so every API process shares it.

One row per accepted attempt in ``login_attempts`` keyed by ``login:<email>|<client ip>``.
An attempt is refused (429 with ``Retry-After``) when the key already has
``settings.auth.login_rate_per_minute`` attempts in the last 60 s. Refused attempts are not
recorded, so a client that keeps hammering is let in again exactly when the window allows.

Concurrency: a transaction-scoped advisory lock on the key serialises the count-then-insert of
two processes racing on the same key; different keys never wait for each other. The check runs
in its own short transaction (committed even when the login then fails). Old rows are deleted
on the way (index on ``at``), so the table stays small without a separate job.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from hpcgate.db.models.users import LoginAttempt
from hpcgate.db.session import session_scope
from hpcgate.errors import RateLimited

WINDOW = timedelta(seconds=60)
_MAX_KEY = 400


class LoginRateLimited(RateLimited):
    def __init__(self, retry_after: int) -> None:
        super().__init__(
            f"too many login attempts; retry in {retry_after} s", retry_after=retry_after
        )
        self.retry_after = retry_after


def login_key(email: str, client_ip: str | None) -> str:
    return f"login:{email.strip().lower()}|{client_ip or '-'}"[:_MAX_KEY]


def hit(
    factory: sessionmaker[Session],
    key: str,
    *,
    limit: int,
    window: timedelta = WINDOW,
    now: datetime | None = None,
) -> None:
    """Record one attempt for ``key`` or raise ``LoginRateLimited`` (the attempt not recorded)."""
    now = now or datetime.now(UTC)
    cutoff = now - window
    key = key[:_MAX_KEY]
    with session_scope(factory) as session:
        session.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(key, 7))))
        session.execute(delete(LoginAttempt).where(LoginAttempt.at < now - 10 * window))
        recent = list(
            session.scalars(
                select(LoginAttempt.at)
                .where(LoginAttempt.key == key, LoginAttempt.at > cutoff)
                .order_by(LoginAttempt.at)
            )
        )
        if len(recent) >= limit:
            oldest_relevant = recent[len(recent) - limit]
            wait = (oldest_relevant + window - now).total_seconds()
            raise LoginRateLimited(max(1, math.ceil(wait)))
        session.add(LoginAttempt(key=key, at=now))


def reset(factory: sessionmaker[Session], key: str) -> None:
    """Forget the attempts of ``key`` (after a successful login)."""
    with session_scope(factory) as session:
        session.execute(delete(LoginAttempt).where(LoginAttempt.key == key[:_MAX_KEY]))
