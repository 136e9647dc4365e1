"""New work for a cluster, heard in the API process: what ``POST /agent/pull?wait=`` waits on.

One listening connection per API process (``LISTEN hpcgate_work``, an asyncio task started by
the first long-poll), however many agents wait: a waiting request holds no pooled connection,
no thread and no admission slot, only an ``asyncio.Event``. Each cluster has a generation
counter, read before the request's first claim: work committed between that claim and the
wait is not missed. When the listening connection drops, every waiter is woken (it may have
missed a notification) and the task reconnects; meanwhile waits simply run to their bound,
and the agents' ordinary polling carries on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import psycopg

from hpcgate.services.wakeup import LISTENER_APP_NAME, WORK_CHANNEL, parse_cluster_id

log = logging.getLogger(__name__)

_RECONNECT_S = 2.0


class WorkSignal:
    def __init__(self, url: str) -> None:
        self.url = url
        self.connects = 0
        self.backend_pid: int | None = None
        self._generation: dict[int, int] = {}
        self._everyone = 0
        self._events: dict[int, asyncio.Event] = {}
        self._task: asyncio.Task[None] | None = None

    def generation(self, cluster_id: int) -> int:
        return self._generation.get(cluster_id, 0) + self._everyone

    def waiting(self, cluster_id: int) -> bool:
        """Whether a request is waiting for work of ``cluster_id`` (for tests and debugging)."""
        return cluster_id in self._events

    async def wait(self, cluster_id: int, since: int, timeout: float) -> bool:
        """True as soon as work for ``cluster_id`` was notified after ``since`` was read."""
        self.ensure_listening()
        if self.generation(cluster_id) != since:
            return True
        event = self._events.get(cluster_id)
        if event is None:
            event = self._events[cluster_id] = asyncio.Event()
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            return self.generation(cluster_id) != since
        return True

    def wake(self, cluster_id: int | None) -> None:
        if cluster_id is None:
            self._everyone += 1
            events, self._events = list(self._events.values()), {}
        else:
            self._generation[cluster_id] = self._generation.get(cluster_id, 0) + 1
            event = self._events.pop(cluster_id, None)
            events = [event] if event is not None else []
        for event in events:
            event.set()

    def ensure_listening(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._listen())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    async def _listen(self) -> None:
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(
                    self.url, autocommit=True, application_name=LISTENER_APP_NAME,
                    connect_timeout=10,
                )
                async with conn:
                    await conn.execute(f"LISTEN {WORK_CHANNEL}")
                    self.connects += 1
                    self.backend_pid = conn.info.backend_pid
                    self.wake(None)  # anything notified before LISTEN took effect
                    async for note in conn.notifies():
                        self.wake(parse_cluster_id(note.payload))
            except psycopg.Error as exc:
                log.warning("API: not listening for new work (retrying): %s", exc)
            self.wake(None)
            await asyncio.sleep(_RECONNECT_S)


def work_signal(app: Any) -> WorkSignal:
    """The app's signal, created on first use (its URL is the app's database)."""
    signal: WorkSignal | None = getattr(app.state, "work_signal", None)
    if signal is None:
        from hpcgate.services.wakeup import libpq_url

        signal = app.state.work_signal = WorkSignal(libpq_url(app.state.engine))
    return signal


async def close_work_signal(app: Any) -> None:
    signal: WorkSignal | None = getattr(app.state, "work_signal", None)
    if signal is not None:
        await signal.close()
