"""An unexpected error answers 500 and leaves the client's keep-alive connection usable.

Before: Starlette's ServerErrorMiddleware answered 500 and re-raised, uvicorn then closed the
transport, and the client's *next* request on that connection failed with a reset. Here a
real uvicorn server (loopback) serves the real app with one extra route that raises; one
httpx client sends the failing request and then ordinary ones, and the server saw them all
arrive from the same client port: one TCP connection, never dropped.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import Request
from sqlalchemy import Engine

from hpcgate.api.app import create_app
from hpcgate.settings import Settings
from tests.helpers.live_api import live_server

pytestmark = pytest.mark.integration


def test_a_500_keeps_the_connection_and_says_nothing_internal(
    isolated_settings: Settings, isolated_engine: Engine
) -> None:
    app = create_app(isolated_settings, engine=isolated_engine)
    peers: list[Any] = []

    @app.get("/test-only/boom")
    def boom(request: Request) -> None:
        peers.append(request.client.port if request.client else None)
        raise RuntimeError("secret internal detail /var/lib/x")

    @app.get("/test-only/peer")
    def peer(request: Request) -> dict[str, Any]:
        peers.append(request.client.port if request.client else None)
        return {"ok": True}

    with live_server(app) as base, httpx.Client(base_url=base, timeout=10) as client:
        first = client.get("/test-only/boom")
        assert first.status_code == 500
        assert first.json() == {"detail": "internal server error", "code": "internal_error"}
        assert "secret" not in first.text
        for _ in range(3):
            after = client.get("/test-only/peer")
            assert after.status_code == 200
        second_error = client.get("/test-only/boom")
        assert second_error.status_code == 500
        assert client.get("/test-only/peer").status_code == 200
    assert len(peers) == 6
    assert len(set(peers)) == 1, f"the connection was re-opened: client ports {peers}"
