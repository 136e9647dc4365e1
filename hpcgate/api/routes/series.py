"""Resource series of a cluster (its heartbeats' load over time), downsampled server-side
by ``services/series.py``. Every logged-in user reads them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from hpcgate.api.deps import CurrentUser, SessionDep
from hpcgate.api.routes.steps import series_out
from hpcgate.api.schemas.calculations import SeriesOut
from hpcgate.services import series

router = APIRouter(tags=["series"])


@router.get("/clusters/{cluster_id}/heartbeats", response_model=SeriesOut)
def cluster_heartbeats(
    cluster_id: int,
    user: CurrentUser,
    session: SessionDep,
    since: datetime | None = None,
    until: datetime | None = None,
    points: Annotated[int, Query(ge=1, le=2000)] = 300,
) -> SeriesOut:
    return series_out(series.cluster_heartbeats(session, cluster_id, since, until, points))
