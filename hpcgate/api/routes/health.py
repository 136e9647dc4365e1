"""Liveness and readiness: the database and the workers' last heartbeats."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from hpcgate.api.deps import SessionDep, SettingsDep
from hpcgate.services.health import health_report

router = APIRouter(tags=["health"])


@router.get("/health")
def health(session: SessionDep, settings: SettingsDep, response: Response) -> dict[str, Any]:
    """``status`` is ``ok`` when the database answers (503 otherwise); workers are reported,
    not required."""
    report = health_report(session, settings)
    if report["status"] != "ok":
        response.status_code = 503
    return report
