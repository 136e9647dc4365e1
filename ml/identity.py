"""Who is calling the ML-API, in the main API's words: ``GET /auth/me`` with the caller's token.

Why not the token's ``role`` claim: the claim is what the role was when the token was issued.
A demoted or blocked admin would keep control of model containers until the token expired
(up to ``access_token_minutes``). The main API loads the user on every request (role,
blocked, revoked sessions), so its ``/auth/me`` answer is the truth; the ML-API keeps it for
at most ``role_cache_s`` (5 s) per token, so a change takes effect within that window while
a busy client costs the main API one request per token per window.

* the token is still verified here first (signature, expiry, issuer): garbage never reaches
  the main API;
* 200 -> the caller (id, role) is cached; 401/403 -> the refusal is cached too (a flood with
  a revoked token costs one main API call per window); the cache is keyed by a hash of the
  token and bounded in size;
* the main API unreachable or failing -> 503, nothing cached: without the main API's word
  nobody is let in (fail closed);
* concurrent requests with the same token share one lookup.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from hpcgate.domain.access import Role
from hpcgate.errors import Forbidden, HpcgateError, Unauthorized
from ml.errors import ServiceUnavailable

MAX_ENTRIES = 10_000


@dataclass(frozen=True)
class CallerIdentity:
    """The caller as the main API sees them now (an ``Actor`` of ``hpcgate.domain.access``)."""

    user_id: int
    role: Role

    @property
    def id(self) -> int:
        return self.user_id


class IdentityLookup:
    def __init__(
        self,
        base_url: str,
        *,
        ttl_s: float,
        timeout: float = 10.0,
        max_entries: int = MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._clock = clock
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=timeout)
        self._cache: dict[str, tuple[float, CallerIdentity | HpcgateError]] = {}
        self._inflight: dict[str, asyncio.Future[CallerIdentity | HpcgateError]] = {}
        self.lookups = 0  # main API calls made (observability, tests)

    async def caller(self, token: str) -> CallerIdentity:
        """The caller behind ``token`` (already verified locally), or raise 401/403/503."""
        key = hashlib.sha256(token.encode()).hexdigest()
        while True:
            hit = self._cache.get(key)
            if hit is not None and hit[0] > self._clock():
                return _unwrap(hit[1])
            pending = self._inflight.get(key)
            if pending is None:
                break
            try:
                return _unwrap(await asyncio.shield(pending))
            except asyncio.CancelledError:
                if not pending.cancelled():
                    raise  # this request was cancelled
                # the request that was asking went away: ask again
        future: asyncio.Future[CallerIdentity | HpcgateError] = (
            asyncio.get_running_loop().create_future()
        )
        self._inflight[key] = future
        try:
            answer = await self._ask(token)
        except Exception as exc:  # unavailable: nothing cached, waiters get the same
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning without waiters
            raise
        except BaseException:  # cancelled: a waiter asks again
            future.cancel()
            raise
        else:
            future.set_result(answer)
            if self.ttl_s > 0:
                self._remember(key, answer)
        finally:
            self._inflight.pop(key, None)
        return _unwrap(answer)

    async def _ask(self, token: str) -> CallerIdentity | HpcgateError:
        self.lookups += 1
        try:
            r = await self._http.get("/auth/me", headers={"Authorization": f"Bearer {token}"})
        except httpx.HTTPError as exc:
            raise ServiceUnavailable(
                f"cannot check the caller with the main API at {self.base_url} "
                f"({type(exc).__name__}); try again"
            ) from None
        if r.status_code in (401, 403):
            detail = _detail(r)
            return (Unauthorized if r.status_code == 401 else Forbidden)(detail)
        if r.status_code != 200:
            raise ServiceUnavailable(
                f"cannot check the caller with the main API: it answered {r.status_code}"
            )
        try:
            body = r.json()
            return CallerIdentity(user_id=int(body["id"]), role=Role(body["role"]))
        except (ValueError, KeyError, TypeError):
            raise ServiceUnavailable(
                "cannot check the caller: the main API's /auth/me answer is malformed"
            ) from None

    def _remember(self, key: str, answer: CallerIdentity | HpcgateError) -> None:
        now = self._clock()
        if len(self._cache) >= self.max_entries:
            for k in [k for k, (until, _) in self._cache.items() if until <= now]:
                del self._cache[k]
            while len(self._cache) >= self.max_entries:  # all fresh: drop the oldest
                del self._cache[next(iter(self._cache))]
        self._cache[key] = (now + self.ttl_s, answer)

    async def aclose(self) -> None:
        await self._http.aclose()


def _unwrap(answer: CallerIdentity | HpcgateError) -> CallerIdentity:
    if isinstance(answer, HpcgateError):
        raise type(answer)(answer.message)
    return answer


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("detail"), str):
        return f"the main API refused the token: {body['detail'][:200]}"
    return f"the main API refused the token ({response.status_code})"
