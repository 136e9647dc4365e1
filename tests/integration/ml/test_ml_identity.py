"""``ml.identity.IdentityLookup`` against a real main API (uvicorn on loopback, PostgreSQL).

The lookup is what makes the ML-API follow the main API's word on roles; these tests pin its
cost and failure behaviour: one main API call per token per window, whatever the burst;
refusals cached too; the main API unreachable is a 503 that is not cached (fail closed);
the cache stays bounded.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pytest

from hpcgate.domain.access import Role
from hpcgate.errors import Forbidden, Unauthorized
from ml.errors import ServiceUnavailable
from ml.identity import CallerIdentity, IdentityLookup
from tests.helpers.api import access_token, new_user
from tests.helpers.live_api import free_port
from tests.integration.ml.ml_env import MainApi

pytestmark = pytest.mark.integration

T = TypeVar("T")


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """asyncio.run on a thread of its own (the e2e tests keep a loop on the main thread)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def test_one_lookup_per_token_per_window(main_api: MainApi) -> None:
    admin = new_user(main_api.engine, role=Role.ADMIN)
    token = access_token(admin, main_api.settings)
    other = access_token(new_user(main_api.engine), main_api.settings)

    async def main() -> tuple[list[CallerIdentity], CallerIdentity, int]:
        lookup = IdentityLookup(main_api.url, ttl_s=5.0)
        try:
            burst = await asyncio.gather(*(lookup.caller(token) for _ in range(20)))
            burst += [await lookup.caller(token) for _ in range(5)]
            second = await lookup.caller(other)
            return burst, second, lookup.lookups
        finally:
            await lookup.aclose()

    burst, second, lookups = _run(main())
    assert burst == [CallerIdentity(admin.id, Role.ADMIN)] * 25
    assert second.role is Role.USER
    assert lookups == 2  # one per token: concurrent callers shared the first answer


def test_without_a_window_every_call_asks(main_api: MainApi) -> None:
    token = access_token(new_user(main_api.engine), main_api.settings)

    async def main() -> int:
        lookup = IdentityLookup(main_api.url, ttl_s=0)
        try:
            for _ in range(3):
                await lookup.caller(token)
            return lookup.lookups
        finally:
            await lookup.aclose()

    assert _run(main()) == 3


def test_refusals_are_the_main_apis_and_cached(main_api: MainApi) -> None:
    blocked = new_user(main_api.engine, blocked=True)
    token = access_token(blocked, main_api.settings)

    async def main() -> tuple[list[str], int]:
        lookup = IdentityLookup(main_api.url, ttl_s=5.0)
        out = []
        try:
            for _ in range(3):
                try:
                    await lookup.caller(token)
                except (Unauthorized, Forbidden) as exc:
                    out.append(f"{exc.status_code} {exc.message}")
            return out, lookup.lookups
        finally:
            await lookup.aclose()

    refusals, lookups = _run(main())
    assert len(refusals) == 3
    assert refusals[0].startswith("401 the main API refused the token")
    assert "blocked" in refusals[0]
    assert lookups == 1


def test_main_api_unreachable_fails_closed_and_is_not_cached(main_api: MainApi) -> None:
    token = access_token(new_user(main_api.engine, role=Role.ADMIN), main_api.settings)

    async def main() -> tuple[list[int], int]:
        lookup = IdentityLookup(f"http://127.0.0.1:{free_port()}", ttl_s=5.0, timeout=2)
        statuses = []
        try:
            for _ in range(2):
                try:
                    await lookup.caller(token)
                except ServiceUnavailable as exc:
                    statuses.append(exc.status_code)
            return statuses, lookup.lookups
        finally:
            await lookup.aclose()

    statuses, lookups = _run(main())
    assert statuses == [503, 503]
    assert lookups == 2  # nothing cached: the next call asks again


def test_cache_is_bounded(main_api: MainApi) -> None:
    users = [new_user(main_api.engine) for _ in range(5)]
    tokens = [access_token(u, main_api.settings) for u in users]

    async def main() -> int:
        lookup = IdentityLookup(main_api.url, ttl_s=5.0, max_entries=3)
        try:
            for token in tokens:
                await lookup.caller(token)
            return len(lookup._cache)
        finally:
            await lookup.aclose()

    assert _run(main()) == 3
