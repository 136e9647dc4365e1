"""Every router of the API, in the order the application mounts them (and OpenAPI lists
them). A new route module adds its routers here, nowhere else."""

from __future__ import annotations

from fastapi import APIRouter

from hpcgate.api.routes import (
    agent,
    analyses,
    auth,
    calculations,
    cluster_accounts,
    cluster_telemetry,
    clusters,
    health,
    inputs,
    logs,
    metrics,
    ml_models,
    model_accuracy,
    notifications,
    outputs,
    recommendations,
    series,
    steps,
    usage,
    users,
)

ROUTERS: list[APIRouter] = [
    health.router,
    metrics.router,
    # the security layer: accounts, clusters, keys, logs, notifications
    auth.router,
    users.router,
    clusters.router,
    clusters.ml_keys_router,
    cluster_telemetry.router,
    cluster_accounts.router,
    logs.router,
    logs.agent_router,
    notifications.router,
    # the calculation engine: calculations, steps, inputs, agents, results, ML
    calculations.router,
    recommendations.router,
    steps.router,
    usage.router,
    series.router,
    inputs.router,
    outputs.router,
    agent.router,
    outputs.agent_router,
    analyses.analyses_router,
    analyses.reports_router,
    analyses.molecules_router,
    ml_models.router,
    ml_models.ml_api_router,
    ml_models.predictions_router,
    model_accuracy.router,
]
