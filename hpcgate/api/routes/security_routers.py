"""Routers of the security layer: auth, users, clusters, API keys, logs, notifications."""

from __future__ import annotations

from fastapi import APIRouter

SECURITY_ROUTERS: list[APIRouter] = []
