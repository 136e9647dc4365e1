"""The live tail of the log as Server-Sent Events (``GET /logs/stream``).

It polls ``service_logs`` by id (no LISTEN/NOTIFY: works through any connection pooler,
one indexed query per ``poll_s``) and holds no database connection between polls. The
format is described in ``hpcgate/api/routes/logs.py``; this module decides where a stream
starts, how long it lives and what it sends.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio
from sqlalchemy.orm import Session

from hpcgate.errors import InvalidInput
from hpcgate.services.logs import latest_log_id
from hpcgate.settings import LogStreamSettings

BATCH = 500  # lines per poll at most; a full batch is read again at once (a backlog)

# The next lines after an id, or None when the caller lost access.
Fetch = Callable[[int], Awaitable[list[dict[str, Any]] | None]]


@dataclass(frozen=True)
class StreamPlan:
    start: int  # send the lines after this id
    poll_s: float
    heartbeat_s: float
    max_duration_s: float


def plan_stream(
    session: Session,
    bounds: LogStreamSettings,
    *,
    after_id: int | None,
    last_event_id: str | None,
    poll_s: float,
    heartbeat_s: float,
    max_duration_s: float,
) -> StreamPlan:
    """Where and how a stream runs: ``after_id``, else the ``Last-Event-ID`` a reconnecting
    client sends, else the newest line now; the duration is capped by the server's bound."""
    if poll_s < bounds.min_poll_s:
        raise InvalidInput(f"poll_s: at least {bounds.min_poll_s:g} s")
    if after_id is not None:
        start = after_id
    elif last_event_id and last_event_id.isascii() and last_event_id.isdigit():
        start = int(last_event_id)
    else:
        start = latest_log_id(session)
    return StreamPlan(
        start=start,
        poll_s=poll_s,
        heartbeat_s=heartbeat_s,
        max_duration_s=min(max_duration_s, bounds.max_duration_s),
    )


def _end(last: int, reason: str) -> str:
    return f"event: end\ndata: {json.dumps({'last_id': last, 'reason': reason})}\n\n"


async def sse_events(
    plan: StreamPlan, fetch: Fetch, disconnected: Callable[[], Awaitable[bool]]
) -> AsyncIterator[str]:
    """The stream's events until the client goes, loses access or the duration is over;
    a keepalive comment every ``heartbeat_s`` without lines."""
    last = plan.start
    yield "retry: 3000\n\n"
    started = time.monotonic()
    next_beat = started + plan.heartbeat_s
    while True:
        if await disconnected():
            return
        rows = await fetch(last)
        if rows is None:
            yield _end(last, "unauthorized")
            return
        for row in rows:
            last = row["id"]
            yield f"id: {last}\nevent: log\ndata: {json.dumps(row)}\n\n"
        if len(rows) == BATCH:
            continue  # a backlog: keep reading before sleeping
        now = time.monotonic()
        if now - started >= plan.max_duration_s:
            yield _end(last, "max_duration")
            return
        if rows:
            next_beat = now + plan.heartbeat_s
        elif now >= next_beat:
            yield ": keepalive\n\n"
            next_beat = now + plan.heartbeat_s
        await anyio.sleep(min(plan.poll_s, max(started + plan.max_duration_s - now, 0.0)))
