"""Routers of the security layer: auth, users, clusters, API keys, logs, notifications."""

from __future__ import annotations

from fastapi import APIRouter

from hpcgate.api.routes import auth, cluster_accounts, clusters, logs, notifications, users

SECURITY_ROUTERS: list[APIRouter] = [
    auth.router,
    users.router,
    clusters.router,
    clusters.ml_keys_router,
    cluster_accounts.router,
    logs.router,
    logs.agent_router,
    notifications.router,
]
