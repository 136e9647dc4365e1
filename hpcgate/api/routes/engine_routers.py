"""Routers of the calculation engine: calculations, steps, results, agents, heartbeats."""

from __future__ import annotations

from fastapi import APIRouter

from hpcgate.api.routes import agent, analyses, calculations, inputs, ml_models

ENGINE_ROUTERS: list[APIRouter] = [
    calculations.router,
    calculations.steps_router,
    calculations.series_router,
    inputs.router,
    agent.router,
    analyses.analyses_router,
    analyses.reports_router,
    analyses.molecules_router,
    *ml_models.ROUTERS,
]
