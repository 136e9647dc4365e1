"""Liveness and readiness: does the database answer, and when did each worker last beat."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from hpcgate.db.models import WorkerHeartbeat
from hpcgate.settings import Settings


def health_report(session: Session, settings: Settings) -> dict[str, Any]:
    """``status`` is ``ok`` when the database answers; workers are reported, not required
    (a worker is ``stale`` after three poll intervals, at least 30 s, without a beat)."""
    db: dict[str, Any]
    workers: list[dict[str, Any]] = []
    try:
        version = session.execute(text("SHOW server_version")).scalar_one()
        db = {"status": "ok", "server_version": version}
        now = datetime.now(UTC)
        stale_after = max(3 * settings.scheduler.poll_interval_s, 30.0)
        for hb in session.scalars(select(WorkerHeartbeat).order_by(WorkerHeartbeat.name)):
            age = (now - hb.last_seen_at).total_seconds()
            workers.append(
                {
                    "name": hb.name,
                    "kind": hb.kind,
                    "last_seen_at": hb.last_seen_at.isoformat(),
                    "age_s": round(age, 1),
                    "status": "ok" if age <= stale_after else "stale",
                }
            )
    except SQLAlchemyError as exc:
        db = {"status": "error", "error": type(exc).__name__}
    worker_status = (
        "ok" if any(w["status"] == "ok" for w in workers) else ("stale" if workers else "none")
    )
    return {
        "status": "ok" if db["status"] == "ok" else "error",
        "database": db,
        "worker": {"status": worker_status, "workers": workers},
    }
