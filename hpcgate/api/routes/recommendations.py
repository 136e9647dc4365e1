"""``POST /calculations/recommendation``: a learned walltime and memory for a new calculation.

Anyone who may create (and preview) calculations may ask; nothing is saved. The rules,
the model and its cache live in ``services/recommender/`` (``docs/recommender.md``).
"""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter

from hpcgate.api.deps import CurrentUser, SessionDep, SettingsDep
from hpcgate.api.schemas.recommendations import RecommendationIn, RecommendationOut
from hpcgate.services.recommender.service import RecommendationRequest, recommend

router = APIRouter(prefix="/calculations", tags=["calculations"])


@router.post("/recommendation", response_model=RecommendationOut)
def recommend_resources(
    body: RecommendationIn, user: CurrentUser, session: SessionDep, settings: SettingsDep
) -> RecommendationOut:
    """p50/p90 walltime and memory from similar finished runs, or the queue's defaults."""
    request = RecommendationRequest(
        cluster_id=body.cluster_id,
        logical_queue=body.logical_queue,
        code=body.code,
        configuration=body.configuration,
    )
    return RecommendationOut.model_validate(asdict(recommend(session, request, settings)))
