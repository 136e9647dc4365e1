"""``GET /metrics``: the API process's Prometheus metrics and the database-wide gauges.

Not public: the numbers say who runs how much where. Prometheus sends the configured bearer
token (``metrics.token``); an admin can read them with a login too.
"""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from hpcgate.api.deps import MetricsReader

router = APIRouter(tags=["metrics"])


@router.get("/metrics", response_class=Response, include_in_schema=False)
def metrics(_: MetricsReader) -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
