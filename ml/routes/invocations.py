"""``POST /models/{id}/invocations`` (``ml_model.invoke``): forwarded to the model's container.

Body and content type are passed through; ``?calculation_id=N`` also stores the prediction
against calculation N in the main API, for the caller (``ml/predictions.py``). 503 when
the model is not serving, 504 when it is too slow, 413 when the body is too large.
"""

from __future__ import annotations

import contextlib
from typing import Annotated

import httpx
from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from hpcgate.errors import TooLarge
from ml.deps import Manager, MayInvokeModels, ModelId
from ml.errors import GatewayTimeout, ServiceUnavailable
from ml.manager import ModelManager
from ml.metrics import ML_INVOCATIONS
from ml.predictions import Invocation, store_prediction
from ml.runtime import ModelRuntime
from ml.settings import MlApiConfig

router = APIRouter(prefix="/models", tags=["invocations"])


@router.post("/{model_id}/invocations")
async def invoke(
    model_id: ModelId,
    request: Request,
    caller: MayInvokeModels,
    manager: Manager,
    calculation_id: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
) -> Response:
    config: MlApiConfig = request.app.state.config
    host, port, rt = await _endpoint(manager, config, model_id)
    body = await _read_body(request, config.max_body_bytes)
    headers = {"Content-Type": request.headers.get("content-type", "application/json")}
    if "accept" in request.headers:
        headers["Accept"] = request.headers["accept"]
    upstream = await _forward(request.app.state.proxy, config, model_id, host, port, body, headers)
    ML_INVOCATIONS.labels(str(model_id), f"{upstream.status_code // 100}xx").inc()
    out_headers = {"X-Hpcgate-Model": f"{rt.name}:{rt.version}" if rt else str(model_id)}
    if calculation_id is not None and 200 <= upstream.status_code < 300:
        call = Invocation(
            model_id, calculation_id, caller.user_id, headers["Content-Type"], body, upstream
        )
        stored = await store_prediction(request.app.state.forwarder, call, config.record_max_bytes)
        out_headers.update(stored)
    return Response(
        content=upstream.content,
        status_code=upstream.status_code,
        media_type=upstream.headers.get("content-type"),
        headers=out_headers,
    )


async def _endpoint(
    manager: ModelManager, config: MlApiConfig, model_id: int
) -> tuple[str, int, ModelRuntime | None]:
    rt = manager.models.get(model_id)
    if rt is not None and rt.state == "running" and rt.host_port is not None:
        return config.publish_host, rt.host_port, rt  # fast path: no I/O
    return await run_in_threadpool(manager.endpoint, model_id)


async def _forward(
    proxy: httpx.AsyncClient,
    config: MlApiConfig,
    model_id: int,
    host: str,
    port: int,
    body: bytes,
    headers: dict[str, str],
) -> httpx.Response:
    try:
        return await proxy.post(f"http://{host}:{port}/invocations", content=body, headers=headers)
    except httpx.TimeoutException:
        raise GatewayTimeout(
            f"model {model_id} did not answer within {config.proxy_timeout_s:g} s"
        ) from None
    except httpx.TransportError as exc:
        raise ServiceUnavailable(
            f"model {model_id} is not reachable ({type(exc).__name__}); "
            "the watchdog restarts it if it stays down"
        ) from None


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        with contextlib.suppress(ValueError):
            if int(declared) > limit:
                raise TooLarge(f"request body larger than {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"request body larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
