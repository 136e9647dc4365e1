"""API request latency as a pure-ASGI layer (no task per request, streams pass through).

The label is the matched route's template (``/calculations/{calc_id}``), read from the scope
after routing, never the raw path: a scan of random URLs adds one ``unmatched`` series, not
thousands.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import Histogram

from hpcgate.metrics.registry import HTTP_REQUEST_SECONDS


class RequestMetrics:
    """``histogram``: the API's by default; the ML-API passes its own."""

    def __init__(self, app: Any, histogram: Histogram = HTTP_REQUEST_SECONDS) -> None:
        self.app = app
        self.histogram = histogram

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        start = time.perf_counter()

        async def send_status(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.histogram.labels(
                scope.get("method", "GET"), template, f"{status // 100}xx"
            ).observe(time.perf_counter() - start)
