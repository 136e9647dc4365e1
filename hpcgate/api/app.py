"""``create_app(settings)``: the FastAPI application factory (no module-level app)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.routing import APIRoute
from sqlalchemy import Engine

from hpcgate import __version__
from hpcgate.api.errors import install_error_handlers
from hpcgate.api.middleware import AdmissionLimit, ServerTiming
from hpcgate.api.routes import ROUTERS
from hpcgate.api.unhandled import UnhandledErrors
from hpcgate.db.session import make_engine, make_sessionmaker
from hpcgate.metrics.asgi import RequestMetrics
from hpcgate.services.metrics_state import install as install_state_collector
from hpcgate.settings import Settings


def _operation_id(route: APIRoute) -> str:
    """Readable names for the generated portal client: ``calculations-list_calculations``."""
    tag = route.tags[0] if route.tags else "default"
    return f"{tag}-{route.name}"


def create_app(settings: Settings, *, engine: Engine | None = None) -> FastAPI:
    owns_engine = engine is None
    engine = engine or make_engine(settings)
    capacity = _pool_capacity(engine)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Sync routes and dependencies run in a thread pool and each request holds at most one
        # pooled connection from its first query to its end. If more requests are in flight
        # than threads or connections, threads can all wait for connections while the holders
        # wait for a thread: a deadlock until the pool times out (seen at 200 agents). So:
        # threads = connections, and AdmissionLimit admits at most that many requests.
        import anyio.to_thread

        anyio.to_thread.current_default_thread_limiter().total_tokens = max(4, capacity)
        # Everything imported so far lives as long as the process: keep it out of the cyclic
        # GC's generations, so full collections stay short (they showed as p99 latency spikes).
        import gc

        gc.collect()
        gc.freeze()
        from hpcgate.services.parse_pool import get_pool

        get_pool(settings.parse_workers, settings.parse_timeout_s).warm()  # not on 1st POST
        yield
        from hpcgate.api.work_signal import close_work_signal

        await close_work_signal(app)  # the long-polls' LISTEN connection (issue 16)
        if owns_engine:
            engine.dispose()

    app = FastAPI(
        title="hpcgate",
        version=__version__,
        description="Calculations on HPC clusters, analyses and ML predictions.",
        generate_unique_id_function=_operation_id,
        lifespan=lifespan,
        max_body_size=settings.max_body_mb << 20,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessionmaker = make_sessionmaker(engine)
    install_error_handlers(app)
    app.add_middleware(UnhandledErrors)  # innermost: a 500 that keeps the connection
    app.add_middleware(AdmissionLimit, **_admission_pools(capacity, settings))
    app.add_middleware(ServerTiming)  # it also times admission
    app.add_middleware(RequestMetrics)  # added last = outermost: latency as clients see it
    install_state_collector(app.state.sessionmaker)  # the database-wide gauges of /metrics
    for router in ROUTERS:
        app.include_router(router)
    from hpcgate.api.portal import mount_portal

    mount_portal(app)
    return app


def _admission_pools(capacity: int, settings: Settings) -> dict[str, int]:
    """Pool sizes for ``AdmissionLimit``: agents and logins get their own, and all of them
    together never exceed the connection pool (``capacity`` >= 4), so no thread ever waits
    for a connection held by a thread that waits for it."""
    agent = max(1, min(settings.agent_concurrency, capacity // 3))
    login = max(1, min(settings.login_concurrency, capacity // 6))
    default = max(1, min(settings.api_concurrency, capacity - agent - login))
    return {"limit": default, "agent_limit": agent, "login_limit": login}


def _pool_capacity(engine: Engine) -> int:
    """How many connections the engine's pool can hand out at once (40 by default)."""
    pool = engine.pool
    size = getattr(pool, "size", None)
    overflow = getattr(pool, "_max_overflow", 0)
    if callable(size):
        return max(4, int(size()) + max(int(overflow), 0))
    return 40
