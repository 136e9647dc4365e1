"""``/health`` and ``/docs`` on the real database."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from hpcgate.api.app import create_app
from hpcgate.db.session import make_sessionmaker
from hpcgate.settings import Settings
from hpcgate.worker import record_worker_heartbeat

pytestmark = pytest.mark.integration


def test_health_reports_database_and_workers(settings: Settings, db_engine: Engine) -> None:
    app = create_app(settings, engine=db_engine)
    with TestClient(app) as client:
        body = client.get("/health").json()
        assert body["status"] == "ok"
        assert body["database"]["status"] == "ok"
        record_worker_heartbeat(make_sessionmaker(db_engine), "worker@test:1")
        body = client.get("/health").json()
        names = [w["name"] for w in body["worker"]["workers"]]
        assert "worker@test:1" in names
        assert body["worker"]["status"] == "ok"
        assert client.get("/docs").status_code == 200
        schema = client.get("/openapi.json").json()
        assert "/health" in schema["paths"]
