"""``create_ml_app``: the ML-API (``hpcgate ml-api``), a FastAPI app in front of model containers.

Routes (all but ``/health`` need ``Authorization: Bearer <access JWT>`` issued by the main
API; the ML-API verifies it with the shared key and never issues one). Who the caller is
- role, blocked, revoked sessions - is the main API's answer to ``GET /auth/me`` with that
token, kept at most ``role_cache_s`` (5 s) per token (``ml/identity.py``); the token's
``role`` claim is never trusted:

* ``GET /health`` - engine and main API reachability (public);
* ``GET /models``, ``GET /models/{id}`` - registrations with live state (any user);
* ``POST /models`` - register a model (admins): forwarded to the main API with the caller's
  token (the main API checks again);
* ``POST /models/{id}/run``, ``POST /models/{id}/stop``, ``DELETE /models/{id}``,
  ``GET /models/{id}/logs`` - admins;
* ``POST /models/{id}/invocations`` - any user: forwarded to the container's
  ``/invocations`` (body and content type preserved). ``?calculation_id=N`` also stores the
  prediction against calculation N in the main API (as the caller).

Errors are JSON ``{"detail", "code"}``: 401 bad token (or refused by the main API), 403
not admin, 404 unknown model, 503 model not serving or the main API unreachable (nobody is
let in without its word), 504 model too slow, 413 body too large.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import httpx
from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from hpcgate import __version__
from hpcgate.api.errors import install_error_handlers
from hpcgate.auth.jwt import verify_access_token
from hpcgate.domain.access import Role
from hpcgate.errors import Forbidden, TooLarge, Unauthorized
from hpcgate.settings import Settings
from ml.engine import ContainerEngine, DockerEngine, EngineError
from ml.health import Watchdog
from ml.identity import CallerIdentity, IdentityLookup
from ml.manager import GatewayTimeout, ModelManager, ServiceUnavailable
from ml.reporting import MainApiClient, StateReporter, UserForwarder
from ml.settings import MlApiConfig

log = logging.getLogger(__name__)

ModelId = Annotated[int, Path(ge=1, le=2**63 - 1)]
_bearer = HTTPBearer(auto_error=False, scheme_name="AccessToken")
_HOP_HEADERS = ("content-type", "content-length", "content-encoding")


async def _caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> CallerIdentity:
    """The caller as the main API sees them now (the token's own claims are not trusted)."""
    if credentials is None or not credentials.credentials:
        raise Unauthorized("not authenticated: send Authorization: Bearer <access token>")
    settings: Settings = request.app.state.settings
    verify_access_token(credentials.credentials, settings)  # garbage never leaves this process
    identity: IdentityLookup = request.app.state.identity
    return await identity.caller(credentials.credentials)


async def _admin(caller: Annotated[CallerIdentity, Depends(_caller)]) -> CallerIdentity:
    if caller.role is not Role.ADMIN:
        raise Forbidden("requires the admin role")
    return caller


Caller = Annotated[CallerIdentity, Depends(_caller)]
Admin = Annotated[CallerIdentity, Depends(_admin)]


async def _manager(request: Request) -> ModelManager:
    manager: ModelManager = request.app.state.manager
    return manager


Manager = Annotated[ModelManager, Depends(_manager)]


def create_ml_app(
    settings: Settings,
    config: MlApiConfig,
    *,
    engine: ContainerEngine | None = None,
    main_api: MainApiClient | None = None,
    watchdog: bool = True,
) -> FastAPI:
    """The ML-API. ``engine``/``main_api`` default to Docker and the configured main API.

    Starting it (the lifespan) recovers running models from container labels and starts
    the watchdog; stopping it leaves the containers running for the next ML-API.
    """
    config = config.with_shared(settings.ml)
    if main_api is None and config.api_key is not None:
        main_api = MainApiClient(
            config.main_api_url,
            config.api_key.get_secret_value(),
            timeout=config.main_api_timeout_s,
        )
    own_engine = engine is None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        nonlocal engine
        if engine is None:
            engine = DockerEngine(config.docker_host, container_port=config.container_port)
        manager = ModelManager(engine, config, main_api, StateReporter(main_api))
        app.state.manager = manager
        try:
            await run_in_threadpool(manager.recover)
        except EngineError as exc:
            log.error("recovery from container labels failed: %s", exc)
        dog = Watchdog(
            manager.tick,
            manager.sync,
            interval=config.ping_interval,
            sync_interval=config.sync_interval_s,
        )
        app.state.watchdog = dog
        if watchdog:
            dog.start()
        # the proxy: pooled keep-alive connections to the containers' published ports
        app.state.proxy = httpx.AsyncClient(
            timeout=config.proxy_timeout_s,
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
        )
        app.state.forwarder = UserForwarder(
            config.main_api_url,
            timeout=config.main_api_timeout_s,
            api_key=config.api_key.get_secret_value() if config.api_key is not None else None,
        )
        app.state.identity = IdentityLookup(
            config.main_api_url, ttl_s=config.role_cache_s, timeout=config.main_api_timeout_s
        )
        try:
            yield
        finally:
            dog.stop()
            await app.state.proxy.aclose()
            await app.state.forwarder.aclose()
            await app.state.identity.aclose()
            manager.close()
            if main_api is not None:
                main_api.close()
            if own_engine and engine is not None:
                engine.close()

    app = FastAPI(
        title="hpcgate ML-API",
        version=__version__,
        description="Trained models as containers: run, watch, invoke.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.config = config
    if config.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(config.cors_origins),
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )
    install_error_handlers(app)

    @app.get("/health", tags=["health"])
    def health(request: Request) -> JSONResponse:
        manager: ModelManager = request.app.state.manager
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

    @app.get("/models", tags=["models"])
    def list_models(caller: Caller, manager: Manager) -> list[dict[str, Any]]:
        manager.refresh_registry()
        return manager.list()

    @app.post("/models", tags=["models"], status_code=201)
    async def register_model(request: Request, admin: Admin) -> JSONResponse:
        """Forwarded to the main API's ``POST /ml/models`` as the caller (admins only)."""
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"detail": "body must be JSON", "code": "invalid_input"}, 422)
        status, out = await request.app.state.forwarder.call(
            "POST", "/ml/models", request.headers["authorization"], body
        )
        if status == 201:
            manager: ModelManager = request.app.state.manager
            await run_in_threadpool(manager.refresh_registry)
        return JSONResponse(out, status_code=status)

    @app.get("/models/{model_id}", tags=["models"])
    def get_model(model_id: ModelId, caller: Caller, manager: Manager) -> dict[str, Any]:
        return manager.snapshot(model_id)

    @app.post("/models/{model_id}/run", tags=["models"])
    def run_model(model_id: ModelId, admin: Admin, manager: Manager) -> dict[str, Any]:
        """Start the model's container and wait for its first ``GET /ping`` (503 if it
        never answers: the body says why, and the model is ``failed``)."""
        return manager.run(model_id)

    @app.post("/models/{model_id}/stop", tags=["models"])
    def stop_model(model_id: ModelId, admin: Admin, manager: Manager) -> dict[str, Any]:
        return manager.stop(model_id)

    @app.delete("/models/{model_id}", tags=["models"], status_code=204)
    def delete_model(model_id: ModelId, admin: Admin, manager: Manager) -> Response:
        """Remove the model's containers; the registration stays in the main API."""
        manager.delete(model_id)
        return Response(status_code=204)

    @app.get("/models/{model_id}/logs", tags=["models"])
    def model_logs(
        model_id: ModelId,
        admin: Admin,
        manager: Manager,
        tail: Annotated[int, Query(ge=1, le=10_000)] = 200,
    ) -> dict[str, Any]:
        return manager.logs(model_id, tail)

    @app.post("/models/{model_id}/invocations", tags=["invocations"])
    async def invoke(
        model_id: ModelId,
        request: Request,
        caller: Caller,
        calculation_id: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    ) -> Response:
        manager: ModelManager = request.app.state.manager
        rt = manager.models.get(model_id)
        if rt is not None and rt.state == "running" and rt.host_port is not None:
            host, port = config.publish_host, rt.host_port  # fast path: no I/O
        else:
            host, port, rt = await run_in_threadpool(manager.endpoint, model_id)
        body = await _read_body(request, config.max_body_bytes)
        headers = {"Content-Type": request.headers.get("content-type", "application/json")}
        if "accept" in request.headers:
            headers["Accept"] = request.headers["accept"]
        proxy: httpx.AsyncClient = request.app.state.proxy
        try:
            upstream = await proxy.post(
                f"http://{host}:{port}/invocations", content=body, headers=headers
            )
        except httpx.TimeoutException:
            raise GatewayTimeout(
                f"model {model_id} did not answer within {config.proxy_timeout_s:g} s"
            ) from None
        except httpx.TransportError as exc:
            raise ServiceUnavailable(
                f"model {model_id} is not reachable ({type(exc).__name__}); "
                "the watchdog restarts it if it stays down"
            ) from None
        out_headers = {"X-Hpcgate-Model": f"{rt.name}:{rt.version}" if rt else str(model_id)}
        if calculation_id is not None and 200 <= upstream.status_code < 300:
            stored = await _store_prediction(
                request,
                model_id,
                calculation_id,
                caller.user_id,
                headers["Content-Type"],
                body,
                upstream,
            )
            out_headers.update(stored)
        return Response(
            content=upstream.content,
            status_code=upstream.status_code,
            media_type=upstream.headers.get("content-type"),
            headers=out_headers,
        )

    return app


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


def _as_record(raw: bytes, content_type: str, limit: int) -> dict[str, Any]:
    """What is stored in ``predictions.request``/``response``: the JSON object when it is
    one and fits, else a bounded text, else a digest."""
    if len(raw) > limit:
        return {"truncated": True, "bytes": len(raw), "sha256": hashlib.sha256(raw).hexdigest()}
    if "json" in content_type:
        with contextlib.suppress(ValueError):
            value = json.loads(raw)
            if isinstance(value, dict):
                return value
            return {"instances": value} if isinstance(value, list) else {"value": value}
    return {"text": raw.decode("utf-8", errors="replace").replace("\x00", "")}


async def _store_prediction(
    request: Request,
    model_id: int,
    calculation_id: int,
    user_id: int,
    content_type: str,
    body: bytes,
    upstream: httpx.Response,
) -> dict[str, str]:
    """Stored with the ML-API's own key (users cannot write predictions), for the caller."""
    config: MlApiConfig = request.app.state.config
    record = {
        "model_id": model_id,
        "calculation_id": calculation_id,
        "user_id": user_id,
        "request": _as_record(body, content_type, config.record_max_bytes),
        "response": _as_record(
            upstream.content, upstream.headers.get("content-type", ""), config.record_max_bytes
        ),
    }
    status, out = await request.app.state.forwarder.call("POST", "/predictions", None, record)
    if status == 201 and isinstance(out, dict) and "id" in out:
        return {"X-Hpcgate-Prediction-Id": str(out["id"])}
    detail = out.get("detail") if isinstance(out, dict) else out
    log.warning("prediction for calculation %s not stored: %s %s", calculation_id, status, detail)
    text = f"{status}: {str(detail)[:200]}".replace("\n", " ").replace("\r", " ")
    return {"X-Hpcgate-Prediction-Error": text.encode("ascii", "replace").decode()}
