"""``GET /metrics``: the ML-API's Prometheus metrics (``ml/metrics.py``), protected like the
main API's: the scrape token ``metrics.token`` (shared settings) or ``metrics.read``."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from hpcgate.domain.access import Action, require
from ml.deps import get_caller

router = APIRouter(tags=["metrics"])
_bearer = HTTPBearer(auto_error=False, scheme_name="AccessToken")


async def metrics_reader(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """As on the main API: the scrape token (``metrics.token``, shared settings) or a
    caller who may ``metrics.read`` (an admin's access token)."""
    token = request.app.state.settings.metrics.token
    presented = credentials.credentials if credentials else ""
    if token and hmac.compare_digest(presented, token.get_secret_value()):
        return
    require(Action.METRICS_READ, await get_caller(request, credentials))


@router.get("/metrics", response_class=Response, include_in_schema=False)
def metrics(_: Annotated[None, Depends(metrics_reader)]) -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
