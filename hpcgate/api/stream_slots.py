"""Per-user slots for long-lived responses (the log SSE stream): at most N at once per user.

Why: each open stream costs a query per poll for as long as it lives, and the streams are
exempt from the admission limit (they would hold a slot for minutes). Without a bound one
user could open thousands and keep the database busy. The count lives in the API process
(a stream is bound to the process that serves it), so the bound is per process.

A slot is released exactly once, whichever way the response ends (see
``SlotStreamingResponse``): a generator that never started would not run its ``finally``.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterable, Iterable
from typing import Any

from starlette.responses import StreamingResponse


class StreamSlot:
    """One held slot; ``release`` is idempotent."""

    def __init__(self, owner: StreamSlots, user_id: int) -> None:
        self._owner = owner
        self.user_id = user_id
        self._released = False

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._owner._release(self.user_id)


class StreamSlots:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[int, int] = {}

    def acquire(self, user_id: int, limit: int) -> StreamSlot | None:
        """A slot for ``user_id``, or None when they already hold ``limit``."""
        with self._lock:
            held = self._held.get(user_id, 0)
            if held >= limit:
                return None
            self._held[user_id] = held + 1
        return StreamSlot(self, user_id)

    def held(self, user_id: int) -> int:
        with self._lock:
            return self._held.get(user_id, 0)

    def _release(self, user_id: int) -> None:
        with self._lock:
            left = self._held.get(user_id, 0) - 1
            if left > 0:
                self._held[user_id] = left
            else:
                self._held.pop(user_id, None)


class SlotStreamingResponse(StreamingResponse):
    """A ``StreamingResponse`` that releases its slot when the ASGI call ends, however."""

    def __init__(
        self,
        content: AsyncIterable[str] | Iterable[str],
        slot: StreamSlot,
        **kwargs: Any,
    ) -> None:
        super().__init__(content, **kwargs)
        self.slot = slot

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.slot.release()
