"""One call for "something happened to a calculation": a log line and the notifications."""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from hpcgate.db.models import Calculation, Cluster, ServiceLog
from hpcgate.settings import Settings

log = logging.getLogger(__name__)


def timeline_line(
    s: Session, calc: Calculation, event: str, message: str, *, level: str = "info",
    **context: object,
) -> None:  # fmt: skip
    """A line of the calculation's log feed (its timeline), and no mail."""
    s.add(
        ServiceLog(
            source="engine",
            level=level,
            message=f"calculation {calc.id} ({calc.name}) {event}: {message}"[:8000],
            calculation_id=calc.id,
            cluster_id=calc.cluster_id,
            context={"event": event, **context},
        )
    )


def calculation_event(
    s: Session, calc: Calculation, event: str, message: str, *, level: str, settings: Settings
) -> None:
    timeline_line(s, calc, event, message, level="error" if level == "error" else "info")
    from hpcgate.services.notify import notify_calculation_event

    notify_calculation_event(s, calc, event, message, level=level, settings=settings)


def cluster_event(
    s: Session, cluster: Cluster, event: str, message: str, *, settings: Settings
) -> None:
    s.add(
        ServiceLog(
            source="engine",
            level="warning",
            message=f"cluster {cluster.name} {event}: {message}"[:8000],
            cluster_id=cluster.id,
            context={"event": event},
        )
    )
    from hpcgate.services.notify import notify_cluster_event

    notify_cluster_event(s, cluster, event, message, settings=settings)
