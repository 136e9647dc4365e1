"""Issue 15 item 7: log streams (``GET /logs/stream``, SSE) are bounded, against the live API.

Exploits replayed as a plain user over real HTTP (uvicorn on loopback, real PostgreSQL):

* open many streams at once: the one beyond ``log_stream.max_per_user`` is a 429, other users
  are not affected, and a closed stream frees its slot;
* poll the database as fast as possible (``poll_s=0.01``): 422, below the server's floor;
* keep a stream forever (``max_duration_s=3600``): the server ends it at its own maximum
  with ``event: end`` (``reason: "max_duration"``);
* keep streaming after being blocked or after an admin revoked the sessions: the stream ends
  at its next poll (``reason: "unauthorized"``), long before its maximum duration.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import httpx
import pytest

from tests.security.conftest import PASSWORD, SecurityStack

pytestmark = pytest.mark.integration

MAX_PER_USER = 2
MAX_DURATION_S = 5.0


@pytest.fixture(scope="module")
def security_settings_overrides() -> dict[str, Any]:
    return {
        "log_stream": {
            "max_per_user": MAX_PER_USER,
            "min_poll_s": 1.0,
            "max_duration_s": MAX_DURATION_S,
        }
    }


def _new_user(s: SecurityStack) -> tuple[int, str]:
    """A fresh plain user (created through the API) and their access token."""
    email = f"streamer.{uuid.uuid4().hex[:8]}@example.org"
    with s.api("admin") as admin:
        r = admin.post("/users", json={"email": email, "password": PASSWORD})
        assert r.status_code == 201, r.text
        user_id = int(r.json()["id"])
    r = httpx.post(
        s.base_url + "/auth/login", json={"email": email, "password": PASSWORD}, timeout=20
    )
    assert r.status_code == 200, r.text
    return user_id, str(r.json()["access_token"])


@contextmanager
def _stream(s: SecurityStack, token: str, **params: Any) -> Iterator[httpx.Response]:
    params = {"poll_s": 1, "heartbeat_s": 1, **params}
    with (
        httpx.Client(base_url=s.base_url, timeout=httpx.Timeout(30, read=30)) as client,
        client.stream(
            "GET", "/logs/stream", params=params, headers={"Authorization": f"Bearer {token}"}
        ) as response,
    ):
        yield response


def _events(response: httpx.Response) -> list[dict[str, Any]]:
    """Read the SSE stream until the server ends it (``event: end``) or closes it."""
    out: list[dict[str, Any]] = []
    event: dict[str, Any] = {}
    for line in response.iter_lines():
        if line.startswith("event: "):
            event["event"] = line[7:]
        elif line.startswith("data: "):
            event["data"] = json.loads(line[6:])
        elif line == "" and event:
            out.append(event)
            if event.get("event") == "end":
                return out
            event = {}
    return out


def test_poll_below_the_floor_is_refused(security_stack: SecurityStack) -> None:
    _, token = _new_user(security_stack)
    with _stream(security_stack, token, poll_s=0.01) as r:
        r.read()
    assert r.status_code == 422
    assert "poll_s" in r.json()["detail"]


def test_streams_per_user_are_limited(security_stack: SecurityStack) -> None:
    s = security_stack
    _, token = _new_user(s)
    _, other_token = _new_user(s)
    with ExitStack() as open_streams:
        for _ in range(MAX_PER_USER):
            r = open_streams.enter_context(_stream(s, token, max_duration_s=30))
            assert r.status_code == 200
        with _stream(s, token) as extra:
            extra.read()
        assert extra.status_code == 429, extra.text
        assert extra.json()["code"] == "rate_limited"
        assert int(extra.headers["retry-after"]) >= 1
        # the limit is per user: someone else still streams
        with _stream(s, other_token, max_duration_s=0) as r:
            assert r.status_code == 200
            assert _events(r)[-1]["data"]["reason"] == "max_duration"
    # the client closed its streams: the server notices at the next poll and frees the slots
    deadline = time.monotonic() + 20
    while True:
        with _stream(s, token, max_duration_s=0) as again:
            again.read()
        if again.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert again.status_code == 200, "closed streams never gave their slots back"


def test_the_server_ends_a_stream_at_its_maximum(security_stack: SecurityStack) -> None:
    _, token = _new_user(security_stack)
    with _stream(security_stack, token, max_duration_s=3600) as r:
        assert r.status_code == 200
        events = _events(r)
    assert events[-1]["event"] == "end"
    assert events[-1]["data"]["reason"] == "max_duration"


@pytest.mark.parametrize("how", ["block", "revoke-sessions"])
def test_a_stream_ends_when_its_user_loses_access(security_stack: SecurityStack, how: str) -> None:
    s = security_stack
    user_id, token = _new_user(s)
    seen: list[dict[str, Any]] = []
    opened = threading.Event()

    def read() -> None:
        with _stream(s, token, max_duration_s=3600) as r:
            assert r.status_code == 200
            opened.set()
            seen.extend(_events(r))

    actor = "moderator" if how == "block" else "admin"
    with s.api(actor) as api:  # logged in before the stream opens: one call after it
        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        assert opened.wait(20), "the stream did not open"
        r = api.post(f"/users/{user_id}/{how}")
        assert r.status_code in (200, 204), r.text
    reader.join(timeout=20)
    assert not reader.is_alive(), "the stream of a user who lost access kept running"
    assert seen
    assert seen[-1]["event"] == "end"
    # the server's maximum (5 s) cannot be what ended it: the reason says why
    assert seen[-1]["data"]["reason"] == "unauthorized"
    with _stream(s, token) as again:
        again.read()
    assert again.status_code == 401
