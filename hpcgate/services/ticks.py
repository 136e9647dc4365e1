"""Which periodic ticks the worker runs, and how often."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session, sessionmaker

from hpcgate.settings import Settings

Tick = Callable[[], None]


def worker_ticks(
    settings: Settings, factory: sessionmaker[Session]
) -> dict[str, tuple[float, Tick]]:
    from hpcgate.db.session import session_scope
    from hpcgate.services.cluster_ticks import cleanup_tick, harvest_tick, heartbeat_tick
    from hpcgate.services.connections import ClusterConnections
    from hpcgate.services.dispatch import dispatch_tick
    from hpcgate.services.harvest import mark_offline_clusters
    from hpcgate.worker import worker_name

    engine = factory.kw["bind"]
    # With settings: local clusters' jobs run as the job account (issue 15), never as us.
    connections = ClusterConnections(settings.paths.template_overrides, settings=settings)
    sched = settings.scheduler
    name = worker_name()

    def offline() -> None:
        with session_scope(factory) as s:
            mark_offline_clusters(s, sched.offline_after_s, settings)

    from hpcgate.services.dispatch_loop import DispatchLoop, register
    from hpcgate.services.wakeup import libpq_url

    loop: DispatchLoop

    def dispatch() -> None:
        dispatch_tick(
            engine, factory, connections, settings, claimed_by=name, stopping=lambda: loop.stopping
        )

    # Dispatch runs in its own thread, woken by NOTIFY (new or approved work) and every poll
    # interval; this tick only (re)starts that thread (issue 16).
    loop = register(DispatchLoop(libpq_url(engine), dispatch, sched.poll_interval_s))
    from hpcgate.services.end_watch import EndWatcher

    # Local clusters' jobs announce their end in the end spool: harvested at once (issue 16).
    ends = register(EndWatcher(engine, factory, connections, settings))
    ticks: dict[str, tuple[float, Tick]] = {
        "dispatch": (sched.poll_interval_s, loop.ensure_started),
        "end_watch": (sched.poll_interval_s, ends.ensure_started),
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
    from hpcgate.services.input_blobs import prune_unused_blobs

    def unused_inputs() -> None:
        prune_unused_blobs(factory, settings.inputs.keep_unused_days)

    ticks["unused_inputs"] = (3600.0, unused_inputs)
    # Security layer: deliver the notification outbox (hpcgate/services/mail.py).
    from hpcgate.services.mail import DEFAULT_INTERVAL_S, send_due_mail

    def send_mail() -> None:
        send_due_mail(factory, settings)

    ticks["send_mail"] = (DEFAULT_INTERVAL_S, send_mail)
    return ticks
