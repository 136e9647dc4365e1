"""Follow a running step's output file as Server-Sent Events (``GET .../tail``).

Each poll reads what was appended since the last offset (local and SSH: a ranged read;
agent: one relay trip), splits it into display lines (``output_text``) and sends::

    retry: 3000                      (once)
    event: line                      (one per line; the last of a batch carries
    id: <byte offset>                 the offset to resume from: Last-Event-ID)
    data: <text>
    event: skipped                   (data: bytes not shown - the job wrote faster than
                                      outputs.tail_max_bytes per poll)
    : keepalive
    event: done                      (data {"state"}: the step ended; the stream is over)
    event: end                       (data {"reason"}: max_duration or unauthorized;
                                      a client reconnects with Last-Event-ID)

Bounds: ``tail_max_bytes`` per poll (older bytes are skipped, never queued), lines cut at
``tail_max_line`` characters, the log stream's per-user slots and ``max_duration_s``.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import anyio
from starlette.concurrency import run_in_threadpool

from hpcgate.domain.states import StepState
from hpcgate.engine.outputs import Chunk
from hpcgate.services.output_text import LineSplitter

LIVE = frozenset({StepState.QUEUED, StepState.RUNNING})
TAIL_START = 16 << 10  # a new stream starts with the last 16 KiB


@dataclass(frozen=True)
class TailBounds:
    poll_s: float
    max_bytes: int
    max_line: int
    max_duration_s: float
    heartbeat_s: float = 15.0


class TailStopped(Exception):
    """The poll cannot go on (the file became unreadable, the cluster went away): the stream
    ends with ``event: end`` and this reason."""


#: One poll: the step's state (None: the caller lost access) and the bytes at an offset
#: (None: the file does not exist yet).
Poll = Callable[[int, int], tuple[StepState | None, Chunk | None]]


def _event(kind: str, data: str, event_id: int | None = None) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {kind}\ndata: {data}\n\n"


async def follow(
    poll: Poll,
    bounds: TailBounds,
    start: int | None,
    disconnected: Callable[[], Awaitable[bool]],
) -> AsyncIterator[str]:
    """The SSE text of one tail; ``start``: a byte offset (None: the last ``TAIL_START``)."""
    splitter = LineSplitter(bounds.max_line)
    yield "retry: 3000\n\n"
    began = time.monotonic()
    next_beat = began + bounds.heartbeat_s
    offset = start
    while True:
        if await disconnected():
            return
        try:
            state, chunk = await run_in_threadpool(poll, offset or 0, bounds.max_bytes)
        except TailStopped as exc:
            yield _event("end", json.dumps({"reason": str(exc)}))
            return
        if state is None:
            yield _event("end", json.dumps({"reason": "unauthorized"}))
            return
        sent = False
        if chunk is not None:
            if offset is None or chunk.size < (offset or 0):
                # First poll (or the file was truncated): start near the end.
                offset = max(0, chunk.size - TAIL_START) if offset is None else 0
                splitter.reset()
                continue
            behind = chunk.size - offset - len(chunk.data)
            lines = splitter.feed(chunk.data)
            offset += len(chunk.data)
            if behind > bounds.max_bytes:
                yield _event("skipped", str(chunk.size - bounds.max_bytes - offset))
                offset = chunk.size - bounds.max_bytes
                splitter.reset()
            last = len(lines) - 1
            for i, line in enumerate(lines):
                yield _event("line", line, offset - splitter.pending if i == last else None)
            sent = bool(lines) or behind > 0
            if behind > 0:
                continue  # more is already there: read it before sleeping
        if state not in LIVE:
            for line in splitter.flush():
                yield _event("line", line, offset)
            yield _event("done", json.dumps({"state": state.value}))
            return
        now = time.monotonic()
        if now - began >= bounds.max_duration_s:
            yield _event("end", json.dumps({"reason": "max_duration"}))
            return
        if sent:
            next_beat = now + bounds.heartbeat_s
        elif now >= next_beat:
            yield ": keepalive\n\n"
            next_beat = now + bounds.heartbeat_s
        await anyio.sleep(bounds.poll_s)
