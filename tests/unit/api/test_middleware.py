"""The API's pure-ASGI middleware: admission limit and the Server-Timing header."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Coroutine
from typing import Any

from hpcgate.api.middleware import AdmissionLimit, ServerTiming
from tests.helpers.aio import run_coroutine


def _run(coro: Coroutine[Any, Any, None]) -> None:
    run_coroutine(coro)


def _call(app: Any, path: str = "/x") -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    _run(app({"type": "http", "path": path, "headers": []}, receive, send))
    return sent


async def _ok(scope: Any, receive: Any, send: Any) -> None:
    await asyncio.sleep(0.02)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"x-a", b"1")]})
    await send({"type": "http.response.body", "body": b"ok"})


def test_server_timing_reports_admission_and_handling() -> None:
    sent = _call(ServerTiming(AdmissionLimit(_ok, limit=2)))
    start = sent[0]
    headers = dict(start["headers"])
    assert headers[b"x-a"] == b"1"  # the app's own headers are kept
    value = headers[b"server-timing"].decode()
    match = re.fullmatch(r'admit;dur=([\d.]+), app;dur=([\d.]+), pool;desc="default"', value)
    assert match, value
    assert float(match[2]) >= 15  # the 20 ms the handler slept
    assert sent[1] == {"type": "http.response.body", "body": b"ok"}


def test_admission_limit_queues_beyond_the_limit() -> None:
    in_flight = 0
    peak = 0

    async def app(scope: Any, receive: Any, send: Any) -> None:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    limited = ServerTiming(AdmissionLimit(app, limit=3))
    waits: list[float] = []

    async def main() -> None:
        async def one() -> None:
            out: list[dict[str, Any]] = []

            async def send(message: dict[str, Any]) -> None:
                out.append(message)

            async def receive() -> dict[str, Any]:
                return {"type": "http.request", "body": b""}

            await limited({"type": "http", "path": "/y", "headers": []}, receive, send)
            timing = dict(out[0]["headers"])[b"server-timing"].decode()
            waits.append(float(timing.split("admit;dur=")[1].split(",")[0]))

        await asyncio.gather(*(one() for _ in range(12)))

    _run(main())
    assert peak == 3
    assert max(waits) >= 20  # the last of 12 waited for three earlier rounds of 10 ms


def test_exempt_stream_is_not_limited() -> None:
    sent = _call(ServerTiming(AdmissionLimit(_ok, limit=1)), path="/logs/stream")
    assert b"server-timing" in dict(sent[0]["headers"])


def _timing(out: list[dict[str, Any]]) -> tuple[float, str]:
    value = dict(out[0]["headers"])[b"server-timing"].decode()
    match = re.fullmatch(r'admit;dur=([\d.]+), app;dur=[\d.]+, pool;desc="(\w+)"', value)
    assert match, value
    return float(match[1]), match[2]


def test_agents_and_logins_have_pools_of_their_own() -> None:
    """A saturated default pool and a saturated login pool never queue an agent request:
    its admission wait is exactly 0 (not queued), while the floods did queue."""
    release = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if not scope["path"].startswith("/agent/"):
            await release.wait()  # floods hold their slots until the agent got through
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    limited = ServerTiming(AdmissionLimit(app, limit=2, agent_limit=1, login_limit=1))
    results: dict[str, list[tuple[float, str]]] = {"agent": [], "flood": []}

    async def one(path: str, kind: str) -> None:
        out: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            out.append(message)

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b""}

        await limited({"type": "http", "path": path, "headers": []}, receive, send)
        results[kind].append(_timing(out))

    async def main() -> None:
        floods = [asyncio.create_task(one("/auth/login", "flood")) for _ in range(5)]
        floods += [asyncio.create_task(one("/calculations", "flood")) for _ in range(5)]
        await asyncio.sleep(0.05)  # every flood request is admitted or queued by now
        for _ in range(3):
            await one("/agent/pull", "agent")
        release.set()
        await asyncio.gather(*floods)

    _run(main())
    assert results["agent"] == [(0.0, "agent")] * 3
    pools = sorted({pool for _, pool in results["flood"]})
    assert pools == ["default", "login"]
    queued = [pool for wait, pool in results["flood"] if wait > 0]
    assert queued.count("login") == 4  # one slot: four of five logins waited
    assert queued.count("default") == 3  # two slots: three of five waited
