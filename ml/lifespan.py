"""What the ML-API holds while it runs, built at start-up and closed at shutdown.

Start-up recovers running models from container labels and starts the watchdog; shutdown
leaves the containers running for the next ML-API.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import httpx
from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool

from ml.engine import ContainerEngine, DockerEngine, EngineError
from ml.health import Watchdog
from ml.identity import IdentityLookup
from ml.manager import ModelManager
from ml.reporting import MainApiClient, StateReporter, UserForwarder
from ml.settings import MlApiConfig

log = logging.getLogger(__name__)

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def ml_lifespan(
    config: MlApiConfig,
    engine: ContainerEngine | None,
    main_api: MainApiClient | None,
    *,
    watchdog: bool,
) -> Lifespan:
    """``engine`` None: Docker at ``config.docker_host``, created and closed here."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own = engine or DockerEngine(config.docker_host, container_port=config.container_port)
        manager = ModelManager(own, config, main_api, StateReporter(main_api))
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
        _open_clients(app, config)
        try:
            yield
        finally:
            dog.stop()
            await _close_clients(app)
            manager.close()
            if main_api is not None:
                main_api.close()
            if engine is None:
                own.close()

    return lifespan


def _open_clients(app: FastAPI, config: MlApiConfig) -> None:
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


async def _close_clients(app: FastAPI) -> None:
    await app.state.proxy.aclose()
    await app.state.forwarder.aclose()
    await app.state.identity.aclose()
