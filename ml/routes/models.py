"""Models: registrations with live state (``ml_model.read``), and what admins do with them
(``ml_model.manage``): register, run, stop, remove containers, read container logs."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from ml.deps import Manager, MayManageModels, MayReadModels, ModelId

router = APIRouter(prefix="/models", tags=["models"])


@router.get("")
def list_models(_: MayReadModels, manager: Manager) -> list[dict[str, Any]]:
    manager.refresh_registry()
    return manager.list()


@router.post("", status_code=201)
async def register_model(request: Request, _: MayManageModels, manager: Manager) -> JSONResponse:
    """Forwarded to the main API's ``POST /ml/models`` as the caller (who checks again)."""
    try:
        body = await request.json()
    except ValueError:
        return JSONResponse({"detail": "body must be JSON", "code": "invalid_input"}, 422)
    status, out = await request.app.state.forwarder.call(
        "POST", "/ml/models", request.headers["authorization"], body
    )
    if status == 201:
        await run_in_threadpool(manager.refresh_registry)
    return JSONResponse(out, status_code=status)


@router.get("/{model_id}")
def get_model(model_id: ModelId, _: MayReadModels, manager: Manager) -> dict[str, Any]:
    return manager.snapshot(model_id)


@router.post("/{model_id}/run")
def run_model(model_id: ModelId, _: MayManageModels, manager: Manager) -> dict[str, Any]:
    """Start the model's container and wait for its first ``GET /ping`` (503 if it
    never answers: the body says why, and the model is ``failed``)."""
    return manager.run(model_id)


@router.post("/{model_id}/stop")
def stop_model(model_id: ModelId, _: MayManageModels, manager: Manager) -> dict[str, Any]:
    return manager.stop(model_id)


@router.delete("/{model_id}", status_code=204)
def delete_model(model_id: ModelId, _: MayManageModels, manager: Manager) -> Response:
    """Remove the model's containers; the registration stays in the main API."""
    manager.delete(model_id)
    return Response(status_code=204)


@router.get("/{model_id}/logs")
def model_logs(
    model_id: ModelId,
    _: MayManageModels,
    manager: Manager,
    tail: Annotated[int, Query(ge=1, le=10_000)] = 200,
) -> dict[str, Any]:
    return manager.logs(model_id, tail)
