"""Routers of the calculation engine: calculations, steps, results, agents, heartbeats."""

from __future__ import annotations

from fastapi import APIRouter

from hpcgate.api.routes import agent, calculations, ml_models

ENGINE_ROUTERS: list[APIRouter] = [
    calculations.router,
    calculations.steps_router,
    calculations.series_router,
    agent.router,
    *ml_models.ROUTERS,
]
