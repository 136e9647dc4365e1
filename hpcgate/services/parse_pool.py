"""CPU-heavy preparation of request bodies in worker processes, with a time limit.

Why processes: parsing a user's input files (fdf, pw.x namelists, every variant of a sweep)
is pure Python and holds the GIL. Run in an API thread, one hostile input stalls every
request of the process, agents' polls included, and a thread cannot be stopped. A worker
process can: when a call outlives ``parse_timeout_s`` its worker is killed and replaced,
and the request gets a 422 that says so. Callers waiting for a free worker longer than the
same limit get a 503. The waiting request thread blocks in ``poll`` (no GIL held).

Workers fork from a ``forkserver`` (a clean, single-threaded process that preloaded the
parsers), never from the multi-threaded API process itself. Functions and arguments travel
by pickle, so a call must be a module-level function of plain data (no session, no ORM).
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing as mp
import queue
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any, TypeVar

from hpcgate.errors import HpcgateError, InvalidInput, ServiceBusy

log = logging.getLogger(__name__)
T = TypeVar("T")

_PRELOAD = [
    "hpcgate.codes.registry",
    "hpcgate.services.calculations",
    "hpcgate.services.prepare_inputs",
    "hpcgate.codes.siesta.inputs",
    "sisl.io.siesta",
]


def _serve(conn: Connection) -> None:
    """A worker's loop: run ``(fn, args)``, answer ``(kind, payload)``; exit at EOF."""
    while True:
        try:
            fn, args = conn.recv()
        except (EOFError, OSError):
            return
        try:
            answer: tuple[str, Any] = ("ok", fn(*args))
        except HpcgateError as exc:
            answer = ("error", (type(exc), exc.message, exc.details))
        except Exception as exc:  # a bug: the caller raises it as a 500
            answer = ("crash", f"{type(exc).__name__}: {exc}")
        try:
            conn.send(answer)
        except Exception as exc:  # an unpicklable result is a bug too
            conn.send(("crash", f"cannot return the result: {exc}"))


class _Worker:
    def __init__(self, ctx: Any) -> None:
        self.conn, child = ctx.Pipe()
        self.process: BaseProcess = ctx.Process(
            target=_serve, args=(child,), name="hpcgate-parse", daemon=True
        )
        self.process.start()
        child.close()

    def kill(self) -> None:
        self.process.kill()
        self.process.join(timeout=5)
        self.conn.close()


class ParsePool:
    """``workers`` processes; ``run(fn, *args)`` returns ``fn(*args)`` or raises."""

    def __init__(self, workers: int, timeout_s: float) -> None:
        self.workers = workers
        self.timeout_s = timeout_s
        self._ctx = mp.get_context("forkserver")
        self._ctx.set_forkserver_preload(_PRELOAD)
        self._idle: queue.LifoQueue[_Worker] = queue.LifoQueue()
        self._started = 0
        self._lock = threading.Lock()
        self._closed = False

    def _take(self) -> _Worker:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            if self._started < self.workers:
                self._started += 1
                try:
                    return _Worker(self._ctx)
                except BaseException:
                    self._started -= 1
                    raise
        try:
            return self._idle.get(timeout=self.timeout_s)
        except queue.Empty:
            raise ServiceBusy(
                "the server is busy preparing other calculations' inputs; retry in a moment"
            ) from None

    def _retire(self, worker: _Worker) -> None:
        worker.kill()
        with self._lock:
            self._started -= 1

    def run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._closed:
            raise ServiceBusy("the server is shutting down")
        worker = self._take()
        try:
            worker.conn.send((fn, args))
            if not worker.conn.poll(self.timeout_s):
                self._retire(worker)
                log.warning("input preparation exceeded %.1f s: worker killed", self.timeout_s)
                raise InvalidInput(
                    f"preparing these inputs took longer than {self.timeout_s:g} s, so they "
                    "were refused: simplify or split the input files"
                )
            kind, payload = worker.conn.recv()
        except (EOFError, OSError) as exc:
            self._retire(worker)
            raise RuntimeError(f"an input-preparation worker died: {exc}") from None
        except BaseException:
            if worker.process.is_alive() and not worker.conn.closed:
                self._retire(worker)  # interrupted mid-call: its answer would be stale
            raise
        self._idle.put(worker)
        if kind == "ok":
            return payload  # type: ignore[no-any-return]
        if kind == "error":
            cls, message, details = payload
            raise cls(message, **details)
        raise RuntimeError(f"input preparation failed: {payload}")

    def warm(self) -> threading.Thread:
        """Start every worker now, in the background (the API calls it at startup): the
        forkserver's start and the parsers' imports cost seconds of CPU, which otherwise land
        on the first calculations created after a restart (issue 16's burst of POSTs)."""

        def start() -> None:
            with self._lock:
                wanted = max(0, self.workers - self._started)
                self._started += wanted
            for _ in range(wanted):
                try:
                    worker = _Worker(self._ctx)
                except BaseException:
                    with self._lock:
                        self._started -= 1
                    log.warning("could not start an input-preparation worker", exc_info=True)
                    continue
                if self._closed:
                    worker.kill()
                    continue
                self._idle.put(worker)

        thread = threading.Thread(target=start, name="parse-pool-warm", daemon=True)
        thread.start()
        return thread

    def busy(self) -> int:
        """Workers running a call now (for health reports and tests)."""
        with self._lock:
            return self._started - self._idle.qsize()

    def close(self) -> None:
        self._closed = True
        while True:
            try:
                worker = self._idle.get_nowait()
            except queue.Empty:
                break
            worker.kill()


_pools: dict[tuple[int, float], ParsePool] = {}
_pools_lock = threading.Lock()


def get_pool(workers: int, timeout_s: float) -> ParsePool:
    """One pool per configuration per process (settings decide its size and limit)."""
    key = (workers, timeout_s)
    with _pools_lock:
        pool = _pools.get(key)
        if pool is None:
            pool = _pools[key] = ParsePool(workers, timeout_s)
        return pool


@atexit.register
def _close_all() -> None:
    for pool in list(_pools.values()):
        pool.close()
