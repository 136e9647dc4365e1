"""Which periodic ticks the worker runs, and how often.

Imports stay inside the functions, as they were: importing this module loads none of the
worker's parts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from hpcgate.settings import Settings

Tick = Callable[[], None]
Ticks = dict[str, tuple[float, Tick]]


def worker_ticks(settings: Settings, factory: sessionmaker[Session]) -> Ticks:
    """Every tick the worker runs: name -> (interval in seconds, function)."""
    from hpcgate.services.connections import ClusterConnections

    engine: Engine = factory.kw["bind"]
    # With settings: local clusters' jobs run as the job account (issue 15), never as us.
    connections = ClusterConnections(settings.paths.template_overrides, settings=settings)
    return {
        **_event_threads(engine, factory, connections, settings),
        **_cluster_ticks(engine, factory, connections, settings),
        **_housekeeping_ticks(factory, settings),
    }


def _event_threads(
    engine: Engine, factory: sessionmaker[Session], connections: Any, settings: Settings
) -> Ticks:
    """Dispatch and the end watch run in threads of their own, woken by events (NOTIFY, a
    job's end); their ticks only (re)start those threads (issue 16)."""
    from hpcgate.services.dispatch import dispatch_tick
    from hpcgate.services.dispatch_loop import DispatchLoop, register
    from hpcgate.services.end_watch import EndWatcher
    from hpcgate.services.wakeup import libpq_url
    from hpcgate.worker import worker_name

    sched = settings.scheduler
    name = worker_name()
    loop: DispatchLoop

    def dispatch() -> None:
        dispatch_tick(
            engine, factory, connections, settings, claimed_by=name, stopping=lambda: loop.stopping
        )

    # The poll interval stays the safety net behind the notifications.
    loop = register(DispatchLoop(libpq_url(engine), dispatch, sched.poll_interval_s))
    # Jobs announce their end in the end spool (local, and SSH through a stream).
    ends = register(EndWatcher(engine, factory, connections, settings))
    return {
        "dispatch": (sched.poll_interval_s, loop.ensure_started),
        "end_watch": (sched.poll_interval_s, ends.ensure_started),
    }


def _cluster_ticks(
    engine: Engine, factory: sessionmaker[Session], connections: Any, settings: Settings
) -> Ticks:
    """The periodic harvest (the events' safety net), cluster liveness and cleanup."""
    from hpcgate.db.session import session_scope
    from hpcgate.services.cluster_health import mark_offline_clusters
    from hpcgate.services.cluster_ticks import harvest_tick, heartbeat_tick
    from hpcgate.services.scratch_cleanup import cleanup_tick

    sched = settings.scheduler

    def offline() -> None:
        with session_scope(factory) as s:
            mark_offline_clusters(s, sched.offline_after_s, settings)

    return {
        "harvest": (
            sched.poll_interval_s,
            lambda: harvest_tick(engine, factory, connections, settings),
        ),
        "cluster_heartbeat": (
            sched.heartbeat_interval_s,
            lambda: heartbeat_tick(factory, connections),
        ),
        "offline_clusters": (sched.heartbeat_interval_s, offline),
        "cleanup": (
            max(sched.poll_interval_s * 6, 60.0),
            lambda: cleanup_tick(engine, factory, connections),
        ),
    }


def _housekeeping_ticks(factory: sessionmaker[Session], settings: Settings) -> Ticks:
    """Unused uploads, telemetry retention and the notification outbox (services/mail.py)."""
    from hpcgate.services.input_blobs import prune_unused_blobs
    from hpcgate.services.mail import DEFAULT_INTERVAL_S, send_due_mail
    from hpcgate.services.telemetry_retention import roll_up

    def unused_inputs() -> None:
        prune_unused_blobs(factory, settings.inputs.keep_unused_days)

    def telemetry_retention() -> None:
        roll_up(factory, settings.telemetry)

    def send_mail() -> None:
        send_due_mail(factory, settings)

    return {
        "unused_inputs": (3600.0, unused_inputs),
        "telemetry_retention": (settings.telemetry.interval_s, telemetry_retention),
        "send_mail": (DEFAULT_INTERVAL_S, send_mail),
    }
