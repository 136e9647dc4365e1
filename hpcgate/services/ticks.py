"""Which periodic ticks the worker runs, and how often (the engine adds its ticks here)."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session, sessionmaker

from hpcgate.settings import Settings

Tick = Callable[[], None]


def worker_ticks(
    settings: Settings, factory: sessionmaker[Session]
) -> dict[str, tuple[float, Tick]]:
    return {}
