"""``GET /health``: the container engine and the main API reachable? (public)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from hpcgate import __version__
from ml.deps import Manager
from ml.engine import EngineError

router = APIRouter(tags=["health"])


@router.get("/health")
def health(manager: Manager) -> JSONResponse:
    body: dict[str, Any] = {"status": "ok", "version": __version__}
    try:
        manager.engine.ping()
        body["engine"] = "ok"
    except EngineError as exc:
        body["engine"], body["status"] = str(exc), "degraded"
    body["main_api"] = (
        "not configured"
        if manager.main_api is None
        else "ok"
        if manager.main_api.healthy()
        else "unreachable"
    )
    body["models"] = {rt.model_id: rt.state for rt in list(manager.models.values())}
    body["pending_reports"] = len(manager.reporter.pending())
    return JSONResponse(body, status_code=200 if body["engine"] == "ok" else 503)
