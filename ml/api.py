"""``create_ml_app``: the ML-API (``hpcgate ml-api``), a FastAPI app in front of model containers.

Routes (all but ``/health`` need ``Authorization: Bearer <access JWT>`` issued by the main
API; the ML-API verifies it with the shared key and never issues one). Who the caller is
- role, blocked, revoked sessions - is the main API's answer to ``GET /auth/me`` with that
token, kept at most ``role_cache_s`` (5 s) per token (``ml/identity.py``); the token's
``role`` claim is never trusted. What the caller may do is ``hpcgate.domain.access`` - the
main API's own policy table (``ml/deps.py``):

* ``GET /health`` - engine and main API reachability (public);
* ``GET /metrics`` - Prometheus (``ml/metrics.py``): the scrape token ``metrics.token``
  or ``metrics.read`` (admins), as on the main API;
* ``GET /models``, ``GET /models/{id}`` - registrations with live state (``ml_model.read``);
* ``POST /models`` - register a model (``ml_model.manage``): forwarded to the main API with
  the caller's token (the main API checks again);
* ``POST /models/{id}/run``, ``POST /models/{id}/stop``, ``DELETE /models/{id}``,
  ``GET /models/{id}/logs`` - ``ml_model.manage``;
* ``POST /models/{id}/invocations`` - ``ml_model.invoke``: forwarded to the container's
  ``/invocations`` (body and content type preserved). ``?calculation_id=N`` also stores the
  prediction against calculation N in the main API (as the caller).

Errors are JSON ``{"detail", "code"}``: 401 bad token (or refused by the main API), 403
not permitted, 404 unknown model, 503 model not serving or the main API unreachable
(nobody is let in without its word), 504 model too slow, 413 body too large.

From hpcgate the ML-API uses only what every hpcgate process shares: the settings (JWT key
and issuer, ``Settings.ml``), token verification, the error types and the access policy.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from hpcgate import __version__
from hpcgate.metrics.asgi import RequestMetrics
from hpcgate.settings import Settings
from ml.engine import ContainerEngine
from ml.errors import install_error_handlers
from ml.lifespan import ml_lifespan
from ml.metrics import ML_REQUEST_SECONDS
from ml.reporting import MainApiClient
from ml.routes import ROUTERS
from ml.routes.metrics import router as metrics_router
from ml.settings import MlApiConfig


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
    app = FastAPI(
        title="hpcgate ML-API",
        version=__version__,
        description="Trained models as containers: run, watch, invoke.",
        lifespan=ml_lifespan(config, engine, main_api, watchdog=watchdog),
    )
    app.state.settings = settings
    app.state.config = config
    if config.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(config.cors_origins),
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )
    install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    app.include_router(metrics_router)
    app.add_middleware(RequestMetrics, histogram=ML_REQUEST_SECONDS)  # outermost
    return app
