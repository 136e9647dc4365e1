"""APScheduler wiring for ``hpcgate worker``: periodic ticks that call services (no logic here).

Every tick is a plain function in ``services/`` so tests call it directly; here we only
schedule it with ``coalesce=True`` and ``max_instances=1`` so a slow tick never piles up.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from apscheduler.events import EVENT_SCHEDULER_SHUTDOWN
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, sessionmaker

from hpcgate.db.models import WorkerHeartbeat
from hpcgate.db.session import session_scope
from hpcgate.metrics.exporter import timed_tick
from hpcgate.services.dispatch_loop import stop_all
from hpcgate.settings import Settings

log = logging.getLogger(__name__)

Tick = Callable[[], None]


def worker_name() -> str:
    """Stable per host: a restarted worker resumes its own claims at once."""
    return os.environ.get("HPCGATE_WORKER_NAME") or f"worker@{socket.gethostname()}"


def record_worker_heartbeat(
    factory: sessionmaker[Session],
    name: str,
    kind: str = "worker",
    info: dict[str, object] | None = None,
) -> None:
    with session_scope(factory) as session:
        now = datetime.now(UTC)
        stmt = insert(WorkerHeartbeat).values(
            name=name, kind=kind, last_seen_at=now, info=info or {}
        )
        session.execute(
            stmt.on_conflict_do_update(
                index_elements=[WorkerHeartbeat.name],
                set_={"last_seen_at": now, "info": stmt.excluded.info},
            )
        )


def _guarded(name: str, fn: Tick) -> Tick:
    def run() -> None:
        try:
            with timed_tick("worker", name):  # hpcgate_tick_duration_seconds, ..._failures_total
                fn()
        except Exception:
            log.exception("tick %s failed", name)

    run.__name__ = name
    return run


def build_scheduler(
    settings: Settings, factory: sessionmaker[Session], ticks: dict[str, tuple[float, Tick]]
) -> BackgroundScheduler:
    scheduler = BackgroundScheduler(
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 30},
        timezone="UTC",
    )
    name = worker_name()
    all_ticks = {
        "worker_heartbeat": (
            max(settings.scheduler.poll_interval_s, 1.0),
            lambda: record_worker_heartbeat(factory, name),
        ),
        **ticks,
    }
    for tick_name, (interval, fn) in all_ticks.items():
        scheduler.add_job(
            _guarded(tick_name, fn),
            "interval",
            seconds=interval,
            id=tick_name,
            next_run_time=datetime.now(UTC),
        )
    # Threads started by ticks (the event-driven dispatcher) stop with the scheduler.
    scheduler.add_listener(lambda _: stop_all(), EVENT_SCHEDULER_SHUTDOWN)
    return scheduler


def run_forever(scheduler: BackgroundScheduler, stop: threading.Event) -> None:
    scheduler.start()
    try:
        stop.wait()
    finally:
        scheduler.shutdown(wait=True)
