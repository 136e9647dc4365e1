"""Liveness and readiness: the database and the workers' last heartbeats."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Response
from sqlalchemy import select, text
from sqlalchemy.exc import SQLAlchemyError

from hpcgate.api.deps import SessionDep, SettingsDep
from hpcgate.db.models import WorkerHeartbeat

router = APIRouter(tags=["health"])


@router.get("/health")
def health(session: SessionDep, settings: SettingsDep, response: Response) -> dict[str, Any]:
    """``status`` is ``ok`` when the database answers; workers are reported, not required."""
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
        response.status_code = 503
    worker_status = (
        "ok" if any(w["status"] == "ok" for w in workers) else ("stale" if workers else "none")
    )
    return {
        "status": "ok" if db["status"] == "ok" else "error",
        "database": db,
        "worker": {"status": worker_status, "workers": workers},
    }
