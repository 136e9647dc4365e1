"""Account lockout: after ``auth.lockout_after`` failed passwords in a row, no password of the
account is checked for a while, doubling with every further failure (capped).

Why on top of the rate limits: those count per client address, so a botnet guessing one
account's password from many addresses stays under them; the lockout counts per account.
The state lives on the user row (``failed_logins``, ``locked_until``), so every API process
sees the same lockout. A failure is recorded in its own short transaction with one atomic
``UPDATE`` (the login request itself rolls back), so concurrent failures are all counted.

Lockout duration after failure number n (n >= N = ``lockout_after``):
``lockout_base_s * 2^(n - N)``, at most ``lockout_max_s``. A successful login resets both.
While locked the answer is 429 with ``Retry-After``, without hashing anything.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from hpcgate.db.models import User
from hpcgate.db.session import session_scope
from hpcgate.errors import RateLimited
from hpcgate.settings import AuthSettings

# Exponent capped so the interval never overflows, whatever the count.
_RECORD_FAILURE = text(
    """
    UPDATE users SET
        failed_logins = failed_logins + 1,
        locked_until = CASE
            WHEN :after > 0 AND failed_logins + 1 >= :after THEN
                now() + make_interval(secs => least(
                    CAST(:max_s AS double precision),
                    :base_s * power(2, least(failed_logins + 1 - :after, 40))
                ))
            ELSE locked_until
        END
    WHERE id = :user_id
    """
)


class AccountLocked(RateLimited):
    def __init__(self, retry_after: int) -> None:
        super().__init__(
            f"too many failed logins for this account; retry in {retry_after} s",
            retry_after=retry_after,
        )
        self.retry_after = retry_after


def check_not_locked(user: User, now: datetime | None = None) -> None:
    """Raise ``AccountLocked`` while the account is locked (before any password is hashed)."""
    if user.locked_until is None:
        return
    left = (user.locked_until - (now or datetime.now(UTC))).total_seconds()
    if left > 0:
        raise AccountLocked(max(1, math.ceil(left)))


def record_failure(factory: sessionmaker[Session], user_id: int, auth: AuthSettings) -> None:
    """Count one failed password (committed now, whatever the request does next)."""
    with session_scope(factory) as session:
        session.execute(
            _RECORD_FAILURE,
            {
                "user_id": user_id,
                "after": auth.lockout_after,
                "base_s": auth.lockout_base_s,
                "max_s": auth.lockout_max_s,
            },
        )


def record_success(user: User) -> None:
    """Forget the failures (in the login's own transaction)."""
    if user.failed_logins or user.locked_until is not None:
        user.failed_logins = 0
        user.locked_until = None
