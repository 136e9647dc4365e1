"""``GET /metrics``: the API process's Prometheus metrics and the database-wide gauges.

Not public: the numbers say who runs how much where. Prometheus sends the configured bearer
token (``metrics.token``); an admin can read them with a login too.
"""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from hpcgate.api.deps import BearerCredentials, SessionDep, SettingsDep, get_current_user
from hpcgate.domain.access import Action, require

router = APIRouter(tags=["metrics"])


@router.get("/metrics", response_class=Response, include_in_schema=False)
def metrics(session: SessionDep, settings: SettingsDep, credentials: BearerCredentials) -> Response:
    token = settings.metrics.token
    presented = credentials.credentials if credentials else ""
    if not (token and hmac.compare_digest(presented, token.get_secret_value())):
        user = get_current_user(session, settings, credentials)  # 401 without a valid login
        require(Action.METRICS_READ, user)  # 403 below admin
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
