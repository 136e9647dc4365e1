"""Pure-ASGI middleware of the API process: admission control and server-side timing.

Both are plain ASGI callables (no ``BaseHTTPMiddleware``): they add no task per request and
stream responses through untouched, which matters at hundreds of polling agents.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

#: Where AdmissionLimit leaves the seconds a request waited for admission (ServerTiming reads it).
WAIT_KEY = "hpcgate.admission_wait_s"
#: Where AdmissionLimit leaves the name of the pool that admitted the request.
POOL_KEY = "hpcgate.admission_pool"
#: Where AdmissionLimit leaves the request's ``AdmissionSlot``.
SLOT_KEY = "hpcgate.admission_slot"


class AdmissionLimit:
    """At most ``limit`` requests in flight per pool; the rest wait in the event loop, holding
    nothing.

    Pools: ``agent`` (``/agent/...``, ``agent_limit``), ``login`` (``/auth/login``,
    ``login_limit``) and ``default`` (everything else, ``limit``). Why separate pools: a flood
    of logins (each an argon2 hash) or of any user route must never queue the agents' polls,
    and a login flood must not fill the slots of logged-in users either. A pool without its
    own limit shares ``default``. A request admitted without waiting records a wait of
    exactly 0, so ``Server-Timing`` tells "queued" from "not queued".

    Long-lived streams (the log SSE, which takes short sessions per poll) are exempt.
    """

    EXEMPT = frozenset({"/logs/stream"})

    def __init__(
        self,
        app: Any,
        limit: int,
        *,
        agent_limit: int | None = None,
        login_limit: int | None = None,
    ) -> None:
        self.app = app
        self.limit = max(1, limit)
        self.limits = {"default": self.limit}
        if agent_limit is not None:
            self.limits["agent"] = max(1, agent_limit)
        if login_limit is not None:
            self.limits["login"] = max(1, login_limit)
        self._sems: dict[str, asyncio.Semaphore] = {}

    def pool(self, path: str) -> str:
        if path.startswith("/agent/") and "agent" in self.limits:
            return "agent"
        if path == "/auth/login" and "login" in self.limits:
            return "login"
        return "default"

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("path") in self.EXEMPT:
            await self.app(scope, receive, send)
            return
        name = self.pool(scope.get("path", ""))
        sem = self._sems.get(name)
        if sem is None:  # created in the running loop (a Semaphore binds to its loop)
            sem = self._sems[name] = asyncio.Semaphore(self.limits[name])
        extensions = scope.setdefault("extensions", {})
        extensions[POOL_KEY] = name
        if sem.locked():
            t0 = time.perf_counter()
            await sem.acquire()
            extensions[WAIT_KEY] = time.perf_counter() - t0
        else:
            await sem.acquire()  # free slot: returns at once, without yielding
            extensions[WAIT_KEY] = 0.0
        slot = extensions[SLOT_KEY] = AdmissionSlot(sem)
        try:
            await self.app(scope, receive, send)
        finally:
            if slot.held:
                sem.release()


class AdmissionSlot:
    """The admission a request holds; a long-poll gives it back while it waits (issue 16).

    Why: an agent's ``pull?wait=`` may wait 25 s for work. Holding its slot meanwhile would
    let a few hundred waiting agents starve the pool that admits their ordinary polls.
    """

    def __init__(self, sem: asyncio.Semaphore) -> None:
        self._sem = sem
        self.held = True

    @asynccontextmanager
    async def released(self) -> AsyncIterator[None]:
        """Without the slot inside the block; queued for it again (like a new request) after.

        A request cancelled while queueing again ends without a slot, so nothing is released
        twice."""
        self._sem.release()
        self.held = False
        try:
            yield
        finally:
            await self._sem.acquire()
            self.held = True


@asynccontextmanager
async def admission_released(scope: Any) -> AsyncIterator[None]:
    """``AdmissionSlot.released`` for this request, or nothing when no limit admitted it."""
    slot = scope.get("extensions", {}).get(SLOT_KEY)
    if slot is None:
        yield
        return
    async with slot.released():
        yield


class ServerTiming:
    """Adds ``Server-Timing: admit;dur=…, app;dur=…, pool;desc=…`` to every HTTP response.

    Durations in milliseconds; ``admit`` is exactly 0 when the request did not queue, and
    ``pool`` names the admission pool (``default``, ``agent``, ``login``).

    Why: a client that sees a slow answer can tell the server's share (waiting for admission,
    then handling) from the network's and its own; ``bench/bench_load_agents.py`` reports both.
    The header is W3C-standard and browsers show it in their network panel. Durations only,
    nothing about the request's content.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()

        async def timed_send(message: Any) -> None:
            if message["type"] == "http.response.start":
                total_ms = (time.perf_counter() - t0) * 1000
                extensions = scope.get("extensions", {})
                wait_ms = extensions.get(WAIT_KEY, 0.0) * 1000
                value = f"admit;dur={wait_ms:.3f}, app;dur={max(0.0, total_ms - wait_ms):.1f}"
                if POOL_KEY in extensions:
                    value += f', pool;desc="{extensions[POOL_KEY]}"'
                headers = list(message.get("headers", []))
                headers.append((b"server-timing", value.encode("ascii")))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, timed_send)
