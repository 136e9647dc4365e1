"""Wake-ups through PostgreSQL ``LISTEN``/``NOTIFY``: new work for a cluster (issue 16).

Why NOTIFY: it is transactional. ``notify_work`` runs inside the transaction that creates or
approves a calculation, so the worker and the API's long-polls hear of it only once it is
committed, never for work that was rolled back, and never before the rows are visible. The
payload is the cluster id; a listener that lost its connection treats the reconnection as a
wake-up for every cluster (it may have missed notifications meanwhile).
"""

from __future__ import annotations

from sqlalchemy import Engine, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

WORK_CHANNEL = "hpcgate_work"
#: application_name of listening connections: visible in pg_stat_activity (and to the tests).
LISTENER_APP_NAME = "hpcgate-listener"


def notify_work(session: Session, cluster_id: int) -> None:
    """Queue a wake-up for ``cluster_id``; PostgreSQL delivers it when the session commits."""
    session.execute(select(func.pg_notify(WORK_CHANNEL, str(cluster_id))))


def libpq_url(engine_or_url: Engine | str) -> str:
    """A plain ``postgresql://`` URL (with its password) for a psycopg connection of our own."""
    url = make_url(engine_or_url.url if isinstance(engine_or_url, Engine) else engine_or_url)
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def parse_cluster_id(payload: str) -> int | None:
    """The cluster id of a notification; anything else (a hand-made NOTIFY) wakes everyone."""
    try:
        return int(payload)
    except ValueError:
        return None
