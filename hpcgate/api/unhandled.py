"""A 500 for an unexpected error that keeps the client's connection open.

Starlette's outermost ``ServerErrorMiddleware`` answers 500 and then re-raises, so that the
server can log the error; uvicorn, seeing an exception after the response started, closes
the transport. A keep-alive client (an agent, the portal, a script with one ``httpx``
client) then loses its connection, and its *next* request fails with a reset. This layer
sits inside the others, answers the 500 itself (JSON, like every other error, without
internals), logs the traceback once, and does not re-raise: the connection stays usable.
An error after the response started cannot be answered any more, so that one propagates
and the connection is closed, as it must be.
"""

from __future__ import annotations

import logging

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)


class UnhandledErrors:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            if started:
                raise
            log.exception("unhandled error in %s %s", scope.get("method"), scope.get("path"))
            response = JSONResponse(
                {"detail": "internal server error", "code": "internal_error"}, status_code=500
            )
            await response(scope, receive, send)
