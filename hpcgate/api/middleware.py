"""Pure-ASGI middleware of the API process: admission control and server-side timing.

Both are plain ASGI callables (no ``BaseHTTPMiddleware``): they add no task per request and
stream responses through untouched, which matters at hundreds of polling agents.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

#: Where AdmissionLimit leaves the seconds a request waited for admission (ServerTiming reads it).
WAIT_KEY = "hpcgate.admission_wait_s"


class AdmissionLimit:
    """At most ``limit`` requests in flight; the rest wait in the event loop, holding nothing.

    Long-lived streams (the log SSE, which takes short sessions per poll) are exempt.
    """

    EXEMPT = frozenset({"/logs/stream"})

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = max(1, limit)
        self._sem: asyncio.Semaphore | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("path") in self.EXEMPT:
            await self.app(scope, receive, send)
            return
        if self._sem is None:
            self._sem = asyncio.Semaphore(self.limit)
        t0 = time.perf_counter()
        async with self._sem:
            scope.setdefault("extensions", {})[WAIT_KEY] = time.perf_counter() - t0
            await self.app(scope, receive, send)


class ServerTiming:
    """Adds ``Server-Timing: admit;dur=…, app;dur=…`` (milliseconds) to every HTTP response.

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
                wait_ms = scope.get("extensions", {}).get(WAIT_KEY, 0.0) * 1000
                value = f"admit;dur={wait_ms:.1f}, app;dur={max(0.0, total_ms - wait_ms):.1f}"
                headers = list(message.get("headers", []))
                headers.append((b"server-timing", value.encode("ascii")))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, timed_send)
