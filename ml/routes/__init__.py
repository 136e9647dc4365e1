"""The ML-API's routes, one module per area; ``ROUTERS`` is what ``create_ml_app`` mounts."""

from __future__ import annotations

from ml.routes import health, invocations, models

ROUTERS = (health.router, models.router, invocations.router)
