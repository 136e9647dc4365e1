"""Run a coroutine to completion from a synchronous test, whatever the main thread holds.

Playwright's sync API (the e2e tests, same pytest session, run first) keeps an event loop
running on the main thread until the session ends, so a plain ``asyncio.run`` in a later
test raises "cannot be called from a running event loop". A thread of its own has none.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


def run_coroutine(coro: Coroutine[Any, Any, T]) -> T:
    with ThreadPoolExecutor(1, thread_name_prefix="test-asyncio") as pool:
        return pool.submit(asyncio.run, coro).result()
